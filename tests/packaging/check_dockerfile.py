#!/usr/bin/env python3
"""Checks that the top-level Dockerfile builds the way CI does, without a Docker engine.

CI runs .ci/run -> scripts/test.sh, which installs packages with `scripts/install-deps.sh MODE`
and configures/builds with `scripts/build.sh ARGS`. The Dockerfile's builder stage must run the
same build script with the same ARGS (so the CMake options cannot drift), never call apt-get or
configure CMake itself, and run the unit tests of every unit-test directory under tests/. Its
dependency mode may be CI's or a lighter one that CI's contains: every package of the `build`
mode and nothing CI does not install (the builder runs no integration tests, so it needs neither
prometheus nor curl). If it limits the build with BUILD_TARGETS, the targets must include
retryd, retryctl and retryd_unit_tests (every unit test). The runtime stage must install its
packages only with `install-deps.sh runtime`, run as a non-root user with a /data volume, an
exec-form ENTRYPOINT, STOPSIGNAL SIGTERM and a HEALTHCHECK that runs `retryctl ... health`.

usage: check_dockerfile.py [REPO_ROOT]      exit 0 when every check passes
"""
import json
import os
import re
import shlex
import subprocess
import sys

root = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", ".."))
failures = []


def check(cond, msg):
    if not cond:
        failures.append(msg)
    return cond


def read(rel):
    with open(os.path.join(root, rel)) as f:
        return f.read()


def logical_lines(text):
    """Joins backslash continuations, drops comments and blank lines."""
    out, cur = [], ""
    for raw in text.splitlines():
        line = raw.rstrip()
        if not cur and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if cur and line.lstrip().startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            cur += line[:-1] + " "
            continue
        out.append(cur + line)
        cur = ""
    if cur:
        out.append(cur)
    return out


def script_calls(text, script):
    """Argument lists of every `[bash] [path/]script ARGS...` call in shell text."""
    calls = []
    for cmd in re.split(r"&&|\|\||;|\n", text):
        try:
            words = shlex.split(cmd, comments=True)
        except ValueError:
            continue
        for i, w in enumerate(words):
            invoked = i == 0 or words[i - 1] in ("bash", "sh", "exec", "-x", "-e")
            if invoked and (w == script or w.endswith("/" + script)):
                args = []
                for a in words[i + 1:]:
                    if a in ("|", ">", ">>", "2>&1") or a.startswith(">"):
                        break
                    args.append(a)
                calls.append(args)
                break
    return calls


# --- What CI runs --------------------------------------------------------------------------
ci = read(".ci/run")
check(script_calls(ci, "test.sh"), ".ci/run no longer runs scripts/test.sh: update this check to what CI runs")
test_sh = read("scripts/test.sh")
ci_deps = script_calls(test_sh, "install-deps.sh")
ci_build = script_calls(test_sh, "build.sh")
check(len(ci_deps) == 1 and len(ci_build) == 1,
      f"scripts/test.sh should call install-deps.sh and build.sh once each, found {ci_deps} and {ci_build}")

# --- The Dockerfile -------------------------------------------------------------------------
instrs = []
for line in logical_lines(read("Dockerfile")):
    m = re.match(r"\s*([A-Za-z]+)\s*(.*)", line)
    instrs.append((m.group(1).upper(), m.group(2).strip()))

args_before_from = {}
stages = []  # [(from_line, [(instr, value)])]
for ins, val in instrs:
    if ins == "FROM":
        stages.append((val, []))
    elif not stages:
        if ins == "ARG" and "=" in val:
            k, v = val.split("=", 1)
            args_before_from[k] = v
    else:
        stages[-1][1].append((ins, val))

check(len(stages) == 2, f"expected a builder and a runtime stage, found {len(stages)} FROM lines")


def resolve(image):
    return re.sub(r"\$\{?(\w+)\}?", lambda m: args_before_from.get(m.group(1), m.group(0)), image)


for frm, _ in stages:
    image = resolve(frm.split()[0])
    check(re.match(r"^(docker\.io/)?(library/)?debian:(bookworm|12)(-slim)?(@sha256:[0-9a-f]{64})?$", image),
          f"FROM {frm}: the base must be Debian 12 (debian:bookworm[-slim]), got {image}")
if len(stages) == 2:
    check(" AS " in stages[0][0].upper(), "the first stage should be named (FROM ... AS build)")
    check(resolve(stages[1][0].split()[0]).endswith("-slim"), "the runtime stage should be debian:bookworm-slim")

build = stages[0][1] if stages else []
runtime = stages[1][1] if len(stages) > 1 else []
build_runs = "\n".join(v for i, v in build if i == "RUN")
runtime_runs = "\n".join(v for i, v in runtime if i == "RUN")

# Builder: same dependency script and mode, same build script and CMake options as CI.
d_deps = script_calls(build_runs, "install-deps.sh")
d_build = script_calls(build_runs, "build.sh")


def packages(mode):
    out = subprocess.run(["bash", os.path.join(root, "scripts", "install-deps.sh"), "list", mode],
                         capture_output=True, text=True)
    return set(out.stdout.split()) if out.returncode == 0 else None


if check(len(d_deps) == 1 and len(d_deps[0]) == 1, f"the builder should run install-deps.sh MODE once, runs {d_deps}") \
        and len(ci_deps) == 1 and len(ci_deps[0]) == 1 and d_deps != ci_deps:
    mine, ci_pkgs, build_pkgs = packages(d_deps[0][0]), packages(ci_deps[0][0]), packages("build")
    if check(mine is not None, f"install-deps.sh has no mode {d_deps[0][0]!r}"):
        check(not mine - ci_pkgs, f"builder runs install-deps.sh {d_deps[0][0]}, which installs "
              f"{sorted(mine - ci_pkgs)} that CI (install-deps.sh {ci_deps[0][0]}) does not")
        check(not build_pkgs - mine, f"builder runs install-deps.sh {d_deps[0][0]}, which lacks "
              f"{sorted(build_pkgs - mine)} of the build mode")
check(d_build == ci_build, f"builder runs build.sh {d_build}, CI (scripts/test.sh) runs {ci_build}")
m = re.search(r"\bBUILD_TARGETS=(\"[^\"]*\"|'[^']*'|\S+)", build_runs)
if m:
    targets = m.group(1).strip("\"'").split()
    for t in ("retryd", "retryctl", "retryd_unit_tests"):
        check(t in targets, f"the builder's BUILD_TARGETS {targets} leave out {t}")
check(not re.search(r"\bcmake\s+(-S|-B|-D|\.\s)", build_runs),
      "the builder configures CMake itself; it must go through scripts/build.sh like CI")
check(not re.search(r"\bcmake\s+--build\b", build_runs), "the builder runs cmake --build itself; use scripts/build.sh")
for stage_name, runs in (("builder", build_runs), ("runtime", runtime_runs)):
    check(not re.search(r"\bapt(-get)?\s+install\b", runs),
          f"the {stage_name} stage installs packages with apt directly; package names belong in scripts/install-deps.sh")
# Every unit-test directory (tests/<dir> holding *_test.cc, except the integration tests) is run.
unit_dirs = sorted(
    d for d in os.listdir(os.path.join(root, "tests"))
    if d not in ("integration", "packaging", "testing") and os.path.isdir(os.path.join(root, "tests", d))
    and any(f.endswith("_test.cc") for _, _, fs in os.walk(os.path.join(root, "tests", d)) for f in fs))
for d in unit_dirs:
    check(f"tests/{d}" in build_runs, f"the builder does not run the unit tests in tests/{d}")
check("--gtest" in build_runs or "ctest" in build_runs, "the builder does not run any tests")
check(re.search(r"cmake\s+--install\s+build\b", build_runs), "the builder should install with cmake --install build")

# Runtime stage.
check(script_calls(runtime_runs, "install-deps.sh") == [["runtime"]],
      f"the runtime stage must run `install-deps.sh runtime`, runs {script_calls(runtime_runs, 'install-deps.sh')}")
copies_from = [v for i, v in runtime if i == "COPY" and v.startswith("--from=")]
joined = " ".join(copies_from)
check("retryd" in joined and "retryctl" in joined, "the runtime stage must copy retryd and retryctl from the builder")
users = [v for i, v in runtime if i == "USER"]
check(users and users[-1].split(":")[0] not in ("root", "0"), f"the runtime stage must end as a non-root USER, has {users}")
vols = [v for i, v in runtime if i == "VOLUME"]
vol_paths = []
for v in vols:
    vol_paths += json.loads(v) if v.startswith("[") else v.split()
check("/data" in vol_paths, f"the runtime stage must declare VOLUME /data, has {vols}")
eps = [v for i, v in runtime if i == "ENTRYPOINT"]
ok_ep = False
if eps:
    try:
        ep = json.loads(eps[-1])
        ok_ep = isinstance(ep, list) and ep and ep[0].endswith("/retryd")
    except ValueError:
        pass
check(ok_ep, f"ENTRYPOINT must be exec form (a JSON array) starting with retryd, got {eps}")
cmds = [v for i, v in runtime if i == "CMD"]
if cmds:
    check(cmds[-1].startswith("["), "CMD must be exec form (a JSON array)")
check([v for i, v in runtime if i == "STOPSIGNAL"] == ["SIGTERM"], "the runtime stage must set STOPSIGNAL SIGTERM")
hcs = [v for i, v in runtime if i == "HEALTHCHECK"]
check(hcs and re.search(r"CMD\s+\[.*retryctl.*\"health\"", hcs[-1]),
      f"HEALTHCHECK must run retryctl health in exec form, got {hcs}")
check(not any(i == "ADD" for i, _ in build + runtime), "use COPY, not ADD")

# .dockerignore keeps local build trees and VCS data out of the context (and so out of the image).
di = read(".dockerignore").split()
check("build" in di or "build/" in di or "build*" in di, ".dockerignore must exclude build/")
check(".git" in di, ".dockerignore must exclude .git")

if failures:
    for f in failures:
        print("FAIL:", f)
    sys.exit(1)
print(f"check_dockerfile: OK (CI: install-deps.sh {' '.join(ci_deps[0])}; builder: install-deps.sh {' '.join(d_deps[0])}; "
      f"build.sh {' '.join(ci_build[0])}; "
      f"unit tests in {', '.join('tests/' + d for d in unit_dirs)})")
