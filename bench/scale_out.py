#!/usr/bin/env python3
"""Helpers of bench/scale-out.sh (JSON lines in, JSON lines or a table out).

  scale_out.py combine --case C --figure submit|cycle --replicas N --split S FILE...
      one retryd_loadgen result per replica -> one line with the summed throughput, the worst
      p50/p99 of the parts, and the parts themselves
  scale_out.py tag-pgbench < bench/pgbench_envelopes.sh output
      adds "case": "pgbench" to each line (and "figure": its "what")
  scale_out.py summary OUT.jsonl
      the throughput table of one run and the ratios within it, as one JSON line
  scale_out.py table OUT.jsonl
      the same as a Markdown table, for BENCHMARKS.md
"""
import json
import sys


def combine(argv):
    import argparse
    ap = argparse.ArgumentParser(prog="scale_out.py combine")
    ap.add_argument("--case", required=True)
    ap.add_argument("--figure", required=True, choices=["submit", "cycle"])
    ap.add_argument("--replicas", type=int, required=True)
    ap.add_argument("--split", required=True)
    ap.add_argument("files", nargs="+")
    a = ap.parse_args(argv)
    parts = []
    for path in a.files:
        with open(path) as f:
            parts.append(json.loads(f.read().strip().splitlines()[-1]))
    if a.figure == "submit":
        rate = sum(p["throughput_ops_s"] for p in parts)
        lat = [p.get("latency_ms", {}) for p in parts]
    else:
        rate = sum(p["throughput_cycles_s"] for p in parts)
        lat = [p.get("cycle_latency_ms", {}) for p in parts]
    out = {
        "case": a.case, "replicas": a.replicas, "figure": a.figure, "split": a.split,
        "throughput_s": round(rate, 1),
        "concurrency": sum(p["concurrency"] for p in parts),
        "p50_ms": max((l.get("p50") or 0) for l in lat),
        "p99_ms": max((l.get("p99") or 0) for l in lat),
        "errors": sum(p.get("errors", 0) for p in parts),
        "parts": [{k: p.get(k) for k in ("target", "concurrency", "throughput_ops_s", "throughput_cycles_s",
                                         "duration_s", "errors", "pool_exhausted", "empty_leases")
                   if k in p} for p in parts],
    }
    if a.figure == "cycle" and any(p.get("pool_exhausted") for p in parts):
        out["warning"] = "a load generator's pool ran dry before the window ended"
    print(json.dumps(out))


def tag_pgbench():
    for line in sys.stdin:
        if line.strip():
            d = json.loads(line)
            d = {"case": "pgbench", "figure": d.get("what"), **d}
            print(json.dumps(d), flush=True)


def load(path):
    with open(path) as f:
        return [json.loads(l) for l in f if l.strip()]


def summarize(rows):
    table = {}  # "sqlite" / "postgres/N" -> {"submit": x, "cycle": y}
    for r in rows:
        if r.get("case") in ("sqlite", "postgres") and "throughput_s" in r:
            key = r["case"] if r["case"] == "sqlite" else f"postgres/{r['replicas']}"
            table.setdefault(key, {})[r["figure"]] = r["throughput_s"]
        elif r.get("case") == "postgres" and "skipped" in r:
            table.setdefault(f"postgres/{r['replicas']}", {})["skipped"] = r["skipped"]
    meta = next((r for r in rows if r.get("case") == "meta"), {})
    conc = meta.get("concurrency")
    inserts = {r["clients"]: r["tps"] for r in rows if r.get("case") == "pgbench" and r.get("figure") == "insert"}
    ceiling = next((r for r in rows if r.get("case") == "pgbench" and r.get("figure") == "insert_ceiling"), None)
    lifecycle = next((r for r in rows if r.get("case") == "pgbench" and r.get("figure") == "cycle"), None)
    ratios = {}

    def ratio(name, a, b):
        if a and b:
            ratios[name] = round(a / b, 3)

    pg1 = table.get("postgres/1", {})
    for key, v in table.items():
        if not key.startswith("postgres/"):
            continue
        for fig in ("submit", "cycle"):
            ratio(f"{key} {fig} / postgres/1", v.get(fig), pg1.get(fig))
            ratio(f"{key} {fig} / sqlite", v.get(fig), table.get("sqlite", {}).get(fig))
            if ceiling:
                ratio(f"{key} {fig} / pgbench INSERT ceiling", v.get(fig), ceiling["tps"])
            if conc in inserts:
                ratio(f"{key} {fig} / pgbench INSERT at {conc} clients", v.get(fig), inserts[conc])
        if lifecycle:
            ratio(f"{key} cycle / pgbench 4-commit lifecycle at {lifecycle['clients']} clients",
                  v.get("cycle"), lifecycle["lifecycles_s"])
    if ceiling:
        ratio("sqlite submit / pgbench INSERT ceiling", table.get("sqlite", {}).get("submit"), ceiling["tps"])
    fsync = {r["when"]: r["fdatasync_us"] for r in rows if r.get("case") == "fsync"}
    return {"summary": True, "concurrency": conc, "table": table, "fdatasync_us": fsync,
            "pgbench_insert_tps_by_clients": inserts,
            "pgbench_insert_ceiling": ceiling and {"clients": ceiling["clients"], "tps": ceiling["tps"]},
            "pgbench_lifecycles_s": lifecycle and lifecycle["lifecycles_s"], "ratios": ratios}


def table(rows):
    s = summarize(rows)
    print(f"| setup (one run, {s['concurrency']} in flight) | submit/s | cycles/s |")
    print("|---|---:|---:|")
    for key in sorted(s["table"], key=lambda k: (k != "sqlite", k)):
        v = s["table"][key]
        if "skipped" in v:
            print(f"| {key} | skipped: {v['skipped']} | |")
        else:
            print(f"| {key} | {v.get('submit', 0):.0f} | {v.get('cycle', 0):.0f} |")
    for c, tps in sorted(s["pgbench_insert_tps_by_clients"].items()):
        print(f"| pgbench INSERT, {c} clients | {tps:.0f} | |")
    if s["pgbench_lifecycles_s"]:
        print(f"| pgbench lifecycle (4 commits) | | {s['pgbench_lifecycles_s']:.0f} |")
    print()
    if s["fdatasync_us"]:
        print(f"- pg_test_fsync, one 8 kB fdatasync: {s['fdatasync_us']} us")
    for k, v in s["ratios"].items():
        print(f"- {k}: {v}")


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    cmd, rest = sys.argv[1], sys.argv[2:]
    if cmd == "combine":
        combine(rest)
    elif cmd == "tag-pgbench":
        tag_pgbench()
    elif cmd == "summary":
        print(json.dumps(summarize(load(rest[0]))))
    elif cmd == "table":
        table(load(rest[0]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
