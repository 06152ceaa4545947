#!/usr/bin/env python3
"""Fails when a script of the project calls a program that a brand-new machine lacks.

A brand-new machine of this project's kind has the Debian packages listed in
tests/packaging/fresh-machine-packages.txt; everything else must come from
scripts/install-deps.sh (the one list of package names). A tool installed by hand on a
developer's machine hides a missing install step, so this check looks at what the scripts call,
not at what happens to be installed:

  1. every program a script calls (a word that names a program in /usr/bin, /usr/sbin, /bin or
     /sbin once install-deps.sh has run) belongs to a package of the new machine or of
     install-deps.sh;
  2. no script defines a shell function named like a program (`buildah() { command buildah ...; }`
     once made `command -v buildah` succeed on a machine without buildah, which was then never
     installed), and tool checks use `type -P`, which sees programs only, not `command -v`.
     Each script checks its tools with `type -P` after installing them, so a program that no
     package provides stops the script at once with its name.

Run it after `scripts/install-deps.sh test` (scripts/test-packaging.sh does).
usage: check_fresh_machine.py [REPO_ROOT]     exit 0 when every check passes
"""
import glob
import os
import re
import shutil
import subprocess
import sys

root = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else
                       os.path.join(os.path.dirname(__file__), "..", ".."))
failures = []

SCRIPTS = sorted(glob.glob(os.path.join(root, "scripts", "*.sh")) +
                 glob.glob(os.path.join(root, "bench", "*.sh")) +
                 [os.path.join(root, ".ci", "run")])
SYSTEM_DIRS = ("/usr/bin/", "/usr/sbin/", "/bin/", "/sbin/")


def read(path):
    with open(path) as f:
        return f.read()


def fresh_packages():
    names = set()
    for line in read(os.path.join(root, "tests", "packaging", "fresh-machine-packages.txt")).splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            names.add(line)
    return names


def install_deps_packages():
    """Every package name of every mode of scripts/install-deps.sh."""
    script = os.path.join(root, "scripts", "install-deps.sh")
    text = read(script)
    modes = re.search(r"usage: \$0 ([a-z|]+)", text)
    if not modes:
        failures.append("scripts/install-deps.sh: no usage line listing its modes")
        return set()
    names = set()
    for mode in modes.group(1).split("|"):
        out = subprocess.run(["bash", script, "list", mode], capture_output=True, text=True)
        if out.returncode != 0:
            failures.append(f"install-deps.sh list {mode} failed: {out.stderr.strip()}")
        names.update(out.stdout.split())
    # golang-go is added only on a machine without Go; it is a package of the script all the same.
    names.update(re.findall(r"pkgs\+=\(([a-z0-9.+-]+)\)", text))
    return names


def strip_comments(text):
    """Drops shell comments: a # at the start of a line or after white space (not ${#x[@]})."""
    out = []
    for line in text.splitlines():
        out.append(re.sub(r"(^|\s)#.*", "", line))
    return "\n".join(out)


def package_of(path):
    out = subprocess.run(["dpkg", "-S", os.path.realpath(path)], capture_output=True, text=True)
    if out.returncode != 0:
        out = subprocess.run(["dpkg", "-S", path], capture_output=True, text=True)
    if out.returncode != 0 or not out.stdout:
        return None
    return out.stdout.split(":", 1)[0].split(",")[0].strip()


fresh = fresh_packages()
ours = install_deps_packages()
for path in SCRIPTS:
    if not os.path.exists(path):
        continue
    rel = os.path.relpath(path, root)
    text = strip_comments(read(path))
    functions = set(re.findall(r"^\s*([A-Za-z_][A-Za-z0-9_-]*)\s*\(\)\s*\{", text, re.M))
    variables = set(re.findall(r"\b([A-Za-z_][A-Za-z0-9_]*)=", text)) | \
        set(re.findall(r"\bfor\s+([A-Za-z_][A-Za-z0-9_]*)\s+in\b", text)) | \
        set(re.findall(r"\bread\s+(?:-\w+\s+)*([A-Za-z_ ]+)", text))
    # 2. No function hides a program; tool checks see programs only.
    for fn in sorted(functions):
        if shutil.which(fn) or re.search(rf"\bcommand\s+{re.escape(fn)}\b", text):
            failures.append(f"{rel}: the shell function {fn}() has the name of a program; "
                            f"`command -v {fn}` then succeeds without the program (rename the function)")
    for m in re.finditer(r"\bcommand\s+-v\b", text):
        line = text[:m.start()].count("\n") + 1
        failures.append(f"{rel}:{line}: `command -v` also finds functions and aliases; check tools with `type -P`")
    # 1. Every program called comes from a package a new machine has or install-deps.sh installs.
    words = set(re.findall(r"(?:^|[\s;|&(`$])([a-z][a-z0-9.+_-]{1,40})", text))
    for w in sorted(words - functions):
        p = shutil.which(w)
        if not p or not p.startswith(SYSTEM_DIRS):
            continue
        pkg = package_of(p)
        if pkg and pkg not in fresh and pkg not in ours:
            failures.append(f"{rel}: calls {w} (package {pkg}), which a new machine lacks and "
                            "scripts/install-deps.sh does not install")

for f in failures:
    print("FAIL:", f)
if failures:
    sys.exit(1)
print(f"check_fresh_machine: OK ({len(SCRIPTS)} scripts; {len(fresh)} packages of a new machine, "
      f"{len(ours)} of install-deps.sh)")
