#!/usr/bin/env python3
"""Checks that the runtime image installs every shared library the built binaries load.

For each binary, `ldd` lists every library it loads (direct and transitive) and `dpkg -S` names
the Debian package that owns it. The runtime stage installs `install-deps.sh list-runtime`
(with their dependencies, as apt installs them) on debian:bookworm-slim, whose packages are
Debian's "required" set plus apt (debootstrap --variant=minbase). Checks:
  * every library's package is in that set (else the image would fail to start);
  * every directly linked library (DT_NEEDED) comes from a package that install-deps.sh names
    explicitly, or from the base image (libc6, libgcc-s1, libstdc++6), not merely from another
    package's dependencies;
  * every runtime package name exists in the apt sources (apt-get install --simulate).
Runtime packages nothing links against are reported (not an error).

usage: check_runtime_libs.py [BINARY...]   (default: the two binaries in build/)
"""
import os
import re
import subprocess
import sys

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.abspath(os.path.join(here, "..", ".."))
binaries = sys.argv[1:] or [os.path.join(root, "build/server/retryd"), os.path.join(root, "build/client/cli/retryctl")]
BASE_EXPLICIT = {"libc6", "libgcc-s1", "libstdc++6"}  # in debian:bookworm-slim (libstdc++6 via apt)


def run(*cmd, check=True):
    return subprocess.run(cmd, check=check, capture_output=True, text=True)


failures = []
# RUNTIME_PKGS (space-separated) replaces the list, for this check's own negative test.
runtime = (os.environ.get("RUNTIME_PKGS") or
           run("bash", os.path.join(root, "scripts/install-deps.sh"), "list-runtime").stdout).split()
if not runtime:
    sys.exit("FAIL: install-deps.sh list-runtime printed nothing")

sim = run("apt-get", "install", "--simulate", "--no-install-recommends", *runtime, check=False)
if sim.returncode != 0:
    failures.append("apt-get install --simulate of the runtime list failed:\n" + sim.stderr.strip())


def closure(pkgs):
    out = run("apt-cache", "depends", "--recurse", "--no-recommends", "--no-suggests", "--no-conflicts",
              "--no-breaks", "--no-replaces", "--no-enhances", *pkgs).stdout
    names = set()
    for line in out.splitlines():
        line = line.strip()
        m = re.match(r"^(?:\|?(?:Pre)?Depends:\s*)?<?([a-z0-9][a-z0-9+.-]+)(?::amd64)?>?$", line)
        if m:
            names.add(m.group(1))
    return names


installed_by_image = closure(runtime + ["apt"]) | set(runtime) | BASE_EXPLICIT


def priority(pkg):
    r = run("dpkg-query", "-W", "-f=${Priority} ${Essential}", pkg, check=False)
    return r.stdout.split() if r.returncode == 0 else []


def owner(path):
    candidates = [path, os.path.realpath(path)]
    for p in list(candidates):
        if p.startswith("/usr/lib/"):
            candidates.append(p[len("/usr"):])
        elif p.startswith("/lib/"):
            candidates.append("/usr" + p)
    for p in candidates:
        r = run("dpkg", "-S", p, check=False)
        if r.returncode == 0:
            return r.stdout.split(":")[0].strip()
    return None


used = set()
for b in binaries:
    if not os.access(b, os.X_OK):
        failures.append(f"{b}: not built (run scripts/build.sh first)")
        continue
    needed = set(re.findall(r"\(NEEDED\).*\[(.+?)\]", run("readelf", "-d", b).stdout))
    for line in run("ldd", b).stdout.splitlines():
        m = re.match(r"\s*(\S+)\s+=>\s+(\S+)", line)
        if not m:
            continue
        soname, path = m.groups()
        if path == "not":
            failures.append(f"{b}: {soname} not found on this machine")
            continue
        pkg = owner(path)
        if pkg is None:
            failures.append(f"{b}: {soname} ({path}) belongs to no Debian package (a locally built library?)")
            continue
        used.add(pkg)
        prio = priority(pkg)
        if pkg not in installed_by_image and "required" not in prio and "yes" not in prio:
            failures.append(f"{b}: {soname} comes from {pkg}, which the runtime stage does not install; "
                            f"add {pkg} to runtime_pkgs in scripts/install-deps.sh")
        elif soname in needed and pkg not in runtime and pkg not in BASE_EXPLICIT and "required" not in prio:
            failures.append(f"{b}: links {soname} directly, from {pkg}, which runtime_pkgs in "
                            f"scripts/install-deps.sh gets only as another package's dependency; name it")

unused = [p for p in runtime if p not in used and p != "ca-certificates"]
if unused:
    print("check_runtime_libs: note: runtime packages no binary links against yet: " + ", ".join(unused))
if failures:
    for f in failures:
        print("FAIL:", f)
    sys.exit(1)
print(f"check_runtime_libs: OK ({len(used)} packages behind the libraries of "
      f"{', '.join(os.path.relpath(b, root) for b in binaries)}: {', '.join(sorted(used))})")
