#!/usr/bin/env python3
"""Documentation facts that users rely on, checked against the code they describe.

usage: check_docs.py REPO_ROOT

- Every repeated field of retryd.v1.Filter (proto/retryd/v1/envelope.proto) says in its comment
  how many values it takes: kMaxFilterValues of server/rpc/filter_convert.h.
- The README's metrics section lists every `grpc_code` label value retryd exports (kGrpcCodes of
  server/metrics/metrics.cc, CamelCase), so alert queries can be written from it.
- Every `helm template` command in a README passes `--kube-version` (the chart's kubeVersion is
  above Helm's offline default, so the command fails without it).
- client/go/README.md says how to depend on the module: a `replace` directive for the module
  path of client/go/go.mod.
Exits 1 listing every failed check.
"""
import pathlib
import re
import sys

root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ".")
errors = []


def read(rel):
    return (root / rel).read_text(encoding="utf-8")


# Filter limits.
max_values = re.search(r"kMaxFilterValues = (\d+);", read("server/rpc/filter_convert.h")).group(1)
proto = read("proto/retryd/v1/envelope.proto")
body = re.search(r"\nmessage Filter \{\n(.*?)\n\}", proto, re.S).group(1)
comment = []
for line in body.splitlines():
    s = line.strip()
    if s.startswith("//"):
        comment.append(s[2:].strip())
        continue
    if s.startswith("repeated "):
        field = s.split()[2]
        if f"At most {max_values} values" not in " ".join(comment):
            errors.append(f"envelope.proto: Filter.{field} does not say 'At most {max_values} values'")
    comment = []

# grpc_code label values.
metrics = read("server/metrics/metrics.cc")
codes = re.findall(r'"(\w+)"', re.search(r"kGrpcCodes = \{(.*?)\};", metrics, re.S).group(1))
readme = read("README.md")
section = readme[readme.index("## Metrics and alerts"):]
section = section[: section.index("\n## ", 1)]
for code in codes:
    if f"`{code}`" not in section:
        errors.append(f"README.md metrics section: grpc_code value `{code}` is not listed")

# helm template needs --kube-version.
for rel in ["README.md", "helm/retryd/README.md"]:
    for m in re.finditer(r"^\s*helm template .*$", read(rel), re.M):
        if "--kube-version" not in m.group(0):
            errors.append(f"{rel}: `{m.group(0).strip()}` lacks --kube-version")
if not re.search(r"^\s*helm template .*--kube-version", read("helm/retryd/README.md"), re.M):
    errors.append("helm/retryd/README.md: no offline `helm template ... --kube-version` command")

# The Go module: how to depend on it.
module = re.search(r"^module (\S+)", read("client/go/go.mod"), re.M).group(1)
if not re.search(rf"^replace {re.escape(module)} => \S+", read("client/go/README.md"), re.M):
    errors.append(f"client/go/README.md: no `replace {module} => ...` directive shown")

for e in errors:
    print("FAIL:", e)
if errors:
    sys.exit(1)
print(f"docs: {len(codes)} grpc codes, Filter limits, helm template, Go module: ok")
