#!/usr/bin/env python3
"""Summarizes bench/run.sh's raw records: medians, same-round ratios, targets, a markdown table.

    python3 bench/summarize.py RECORDS.jsonl OUT.json

RECORDS.jsonl holds one {"kind", "round", "data"} object per line, as bench/run.sh writes them.
OUT.json gets every raw record plus the summary; the table goes to stdout.
"""
import json
import statistics
import sys
import time

TARGET_SCALE = 1_000_000


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(v, digits=1):
    if v is None:
        return "n/a"
    if isinstance(v, float) and abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:.{digits}f}" if isinstance(v, float) else f"{v:,}"


def main(records_path, out_path):
    records = [json.loads(line) for line in open(records_path) if line.strip()]
    by_kind = {}
    for r in records:
        by_kind.setdefault(r["kind"], []).append(r)
    meta = (by_kind.get("meta") or [{"data": {}}])[0]["data"]
    scale = meta.get("scale", 0)

    # Rounds: the three submit figures and the cycle, measured back to back on fresh servers.
    rounds = {}
    for kind in ("submit_retryd", "submit_noop", "submit_redis", "cycle"):
        for r in by_kind.get(kind, []):
            rounds.setdefault(r["round"], {})[kind] = r["data"]
    round_rows = []
    for n in sorted(rounds):
        d = rounds[n]
        rt = d.get("submit_retryd", {})
        no = d.get("submit_noop", {})
        rd = d.get("submit_redis", {})
        cy = d.get("cycle", {})
        row = {
            "round": n,
            "retryd_ops_s": rt.get("throughput_ops_s"),
            "retryd_p50_ms": rt.get("p50_ms"),
            "retryd_p99_ms": rt.get("p99_ms"),
            "retryd_max_ms": rt.get("max_ms"),
            "retryd_errors": rt.get("errors"),
            "noop_ops_s": no.get("throughput_ops_s"),
            "noop_p99_ms": no.get("p99_ms"),
            "redis_ops_s": rd.get("throughput_ops_s"),
            "redis_p99_ms": rd.get("p99_ms"),
            "cycle_s": cy.get("throughput_cycles_s") if cy.get("duration_s") else None,
            "cycle_pool_exhausted": cy.get("pool_exhausted"),
        }
        row["ratio_vs_noop"] = (row["retryd_ops_s"] / row["noop_ops_s"]
                                if row["retryd_ops_s"] and row["noop_ops_s"] else None)
        row["ratio_vs_redis"] = (row["retryd_ops_s"] / row["redis_ops_s"]
                                 if row["retryd_ops_s"] and row["redis_ops_s"] else None)
        round_rows.append(row)

    med = {k: median([row[k] for row in round_rows]) for k in
           ("retryd_ops_s", "retryd_p50_ms", "retryd_p99_ms", "retryd_max_ms", "noop_ops_s",
            "noop_p99_ms", "redis_ops_s", "redis_p99_ms", "cycle_s", "ratio_vs_noop",
            "ratio_vs_redis")}
    med["runs"] = len(round_rows)

    # Scale round.
    scale_out = {"scale": scale}
    preload = (by_kind.get("preload") or [{}])[0].get("data")
    calibration = (by_kind.get("preload_calibration") or [{}])[0].get("data") or {}
    if preload:
        parts = [p for p in (calibration, preload) if p]
        total = sum(p.get("submitted_ok", 0) for p in parts)
        elapsed = sum(p.get("elapsed_s", 0) for p in parts)
        scale_out["preload"] = {
            "submitted_ok": total,
            "elapsed_s": elapsed,
            "throughput_ops_s": total / elapsed if elapsed else None,
            "calibration_ops_s": calibration.get("throughput_ops_s"),
            "main_ops_s": preload.get("throughput_ops_s"),
            "errors": sum(p.get("errors", 0) for p in parts),
            "late_submits": preload.get("late_submits"),
            "due_from_unix_us": preload.get("due_from_unix_us"),
            "due_to_unix_us": preload.get("due_to_unix_us"),
            "due_in_window": preload.get("submitted_ok"),
        }
    startups = [r["data"] for r in by_kind.get("startup", [])]
    if startups:
        scale_out["startup"] = {
            "runs": len(startups),
            "to_serving_ms_median": median([s.get("to_rpc_ms") for s in startups]),
            "to_health_ms_median": median([s.get("to_health_ms") for s in startups]),
            "to_log_line_ms_median": median([s.get("to_log_line_ms") for s in startups]),
            "startup_seconds_logged_median": median(
                [s.get("startup_seconds_logged") for s in startups]),
            "scheduled_logged": [s.get("scheduled_logged") for s in startups],
            "to_serving_ms": [s.get("to_rpc_ms") for s in startups],
        }
    mem = {}
    loaded = (by_kind.get("memory_loaded") or [{}])[0].get("data")
    if loaded and scale:
        mem["rss_empty_kb"] = loaded["rss_empty_kb"]
        mem["rss_after_preload_kb"] = loaded["rss_kb"]
        mem["data_dir_bytes"] = loaded.get("data_dir_bytes")
        mem["bytes_per_envelope_after_preload"] = (
            (loaded["rss_kb"] - loaded["rss_empty_kb"]) * 1024 / scale)
    restarts = [r["data"] for r in by_kind.get("memory_restart", [])]
    if restarts and scale:
        rss = median([r["rss_kb"] for r in restarts])
        mem["rss_after_restart_kb_median"] = rss
        mem["bytes_per_envelope_after_restart"] = (rss - restarts[0]["rss_empty_kb"]) * 1024 / scale
    if mem:
        per = [mem.get("bytes_per_envelope_after_preload"),
               mem.get("bytes_per_envelope_after_restart")]
        mem["bytes_per_envelope"] = max(v for v in per if v is not None)
        scale_out["memory"] = mem
    late = (by_kind.get("lateness") or [{}])[0].get("data")
    if late:
        lat = {k: late.get(k) for k in ("p50_ms", "p99_ms", "max_ms", "count", "drained",
                                        "backlog", "early", "errors", "drain_rate_s",
                                        "elapsed_s", "workers", "batch")}
        lat["p999_ms"] = late.get("lateness_ms", {}).get("p999")
        if not late.get("count"):
            lat["p50_ms"] = lat["p99_ms"] = lat["max_ms"] = lat["p999_ms"] = None
        if preload and scale:
            # Envelopes that fell due while the workers ran: are they keeping up?
            lo, hi = preload["due_from_unix_us"], preload["due_to_unix_us"]
            start = late["started_unix_us"] + late.get("settle_s", 0) * 1e6
            end = late["ended_unix_us"]
            overlap = max(0.0, min(hi, end) - max(lo, start))
            in_window = preload.get("submitted_ok", scale)
            due = in_window * overlap / (hi - lo) if hi > lo else 0
            lat["due_while_draining"] = round(due)
            lat["offered_rate_s"] = in_window / ((hi - lo) / 1e6) if hi > lo else None
            lat["keeping_up"] = bool(due > 0 and late.get("count", 0) >= 0.95 * due)
        if late.get("backlog"):
            lat["note"] = ("the drain started after envelopes had fallen due (the preload or the "
                           "rounds ran longer than estimated): the backlog is left out of the "
                           "samples but delays the envelopes behind it; rerun, or set "
                           "LATENESS_OFFSET higher")
        scale_out["lateness"] = lat

    # Replay pacing: the loadgen's replay-pacing record (achieved vs the applied max_per_second).
    replay = (by_kind.get("replay") or [{"data": {"skipped": True}}])[0]["data"]
    replay_error_pct = replay.get("error_pct") if replay.get("achieved_rate") is not None else None

    # Targets of the issue.
    def target(name, value, op, limit, unit, scale_bound=False):
        ok = None if value is None else (value >= limit if op == ">=" else value <= limit)
        t = {"name": name, "value": value, "op": op, "target": limit, "unit": unit, "pass": ok}
        if scale_bound and scale != TARGET_SCALE:
            t["note"] = f"measured at SCALE={scale}; the target is at {TARGET_SCALE}"
        return t

    targets = [
        target("submit / no-op throughput", med["ratio_vs_noop"], ">=", 0.80, "ratio"),
        target("submit / Redis throughput", med["ratio_vs_redis"], ">=", 1.0, "ratio"),
        target("submit p99 latency", med["retryd_p99_ms"], "<=", 10.0, "ms"),
        target("lateness p99", (scale_out.get("lateness") or {}).get("p99_ms"), "<=", 25.0, "ms",
               True),
        target("start-up to serving", (lambda v: v / 1000 if v is not None else None)(
            (scale_out.get("startup") or {}).get("to_serving_ms_median")), "<=", 1.5, "s", True),
        target("RSS per scheduled envelope", (scale_out.get("memory") or {}).get(
            "bytes_per_envelope"), "<=", 64.0, "B", True),
        # Within ±5 %: |achieved - applied| / applied.
        target("replay pacing |error|", None if replay_error_pct is None else abs(replay_error_pct),
               "<=", 5.0, "%"),
    ]

    summary = {
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "meta": meta,
        "suite_elapsed_s": (by_kind.get("suite") or [{"data": {}}])[0]["data"].get("elapsed_s"),
        "medians": med,
        "rounds": round_rows,
        "scale_round": scale_out,
        "replay_pacing": replay,
        "targets": targets,
        "all_targets_pass": all(t["pass"] for t in targets if t["pass"] is not None),
        "raw": records,
    }
    with open(out_path, "w") as f:
        json.dump(summary, f, indent=2)
        f.write("\n")
    print(table(summary))


def table(s):
    m = s["medians"]
    sc = s["scale_round"]
    st = sc.get("startup", {})
    mem = sc.get("memory", {})
    lat = sc.get("lateness", {})
    rp = s.get("replay_pacing") or {}
    res = {t["name"]: t for t in s["targets"]}

    def verdict(name):
        t = res[name]
        v = "n/a" if t["pass"] is None else ("PASS" if t["pass"] else "FAIL")
        return v + (" (below target scale)" if "note" in t else "")

    n = m["runs"]
    lines = [
        f"retryd benchmarks: {n} rounds (medians), scale round at {sc.get('scale'):,} envelopes, "
        f"suite {s.get('suite_elapsed_s')} s",
        "",
        "| # | figure | measured | target | result |",
        "|---|---|---|---|---|",
        f"| 1 | submit throughput (ReportFailure, 1 KB, 64 in flight, durable) | "
        f"{fmt(m['retryd_ops_s'])} ops/s | | |",
        f"| 1 | submit latency p50 / p99 | {fmt(m['retryd_p50_ms'], 2)} / "
        f"{fmt(m['retryd_p99_ms'], 2)} ms | p99 <= 10 ms | {verdict('submit p99 latency')} |",
        f"| 2 | no-op gRPC server, same generator | {fmt(m['noop_ops_s'])} ops/s | | |",
        f"| 2 | retryd / no-op | {fmt(m['ratio_vs_noop'], 3)} | >= 0.80 | "
        f"{verdict('submit / no-op throughput')} |",
        f"| 3 | Redis ZADD 1 KB, appendfsync always, 64 clients | {fmt(m['redis_ops_s'])} ops/s "
        f"(p99 {fmt(m['redis_p99_ms'], 2)} ms) | | |",
        f"| 3 | retryd / Redis | {fmt(m['ratio_vs_redis'], 3)} | >= 1.0 | "
        f"{verdict('submit / Redis throughput')} |",
        f"| 4 | cycle (Lease + ReportSuccess, 64 in flight) | {fmt(m['cycle_s'])} cycles/s | | |",
        f"| 5 | dispatch lateness p50 / p99 (max) | {fmt(lat.get('p50_ms'), 2)} / "
        f"{fmt(lat.get('p99_ms'), 2)} ms ({fmt(lat.get('max_ms'), 1)} ms; "
        f"{fmt(lat.get('count'))} envelopes, keeping up: {lat.get('keeping_up')}) | p99 <= 25 ms | "
        f"{verdict('lateness p99')} |",
        f"| 6 | start-up to serving (kill -9, {st.get('runs', 0)} restarts) | "
        f"{fmt((st.get('to_serving_ms_median') or 0) / 1000, 3)} s (log line "
        f"{fmt((st.get('to_log_line_ms_median') or 0) / 1000, 3)} s) | <= 1.5 s | "
        f"{verdict('start-up to serving')} |",
        f"| 7 | RSS per scheduled envelope (after preload / after restart) | "
        f"{fmt(mem.get('bytes_per_envelope_after_preload'))} / "
        f"{fmt(mem.get('bytes_per_envelope_after_restart'))} B | <= 64 B | "
        f"{verdict('RSS per scheduled envelope')} |",
        replay_row(rp, verdict("replay pacing |error|")),
        "",
        "| round | retryd ops/s | p50 ms | p99 ms | no-op ops/s | Redis ops/s | /no-op | /Redis "
        "| cycles/s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in s["rounds"]:
        lines.append(
            f"| {r['round']} | {fmt(r['retryd_ops_s'])} | {fmt(r['retryd_p50_ms'], 2)} | "
            f"{fmt(r['retryd_p99_ms'], 2)} | {fmt(r['noop_ops_s'])} | {fmt(r['redis_ops_s'])} | "
            f"{fmt(r['ratio_vs_noop'], 3)} | {fmt(r['ratio_vs_redis'], 3)} | "
            f"{fmt(r['cycle_s'])} |")
    return "\n".join(lines)


def replay_row(rp, verdict):
    if rp.get("achieved_rate") is None:
        why = rp.get("error") or ("skipped" if rp.get("skipped") else "no record")
        return f"| 8 | replay pacing | not measured: {why} | within ±5 % | {verdict} |"
    capped = ", capped by policy" if rp.get("capped") else ""
    return (f"| 8 | replay pacing: achieved / applied max_per_second (requested "
            f"{fmt(rp.get('requested_rate'))}{capped}; {fmt(rp.get('window_s'))} s window) | "
            f"{fmt(rp['achieved_rate'])} / {fmt(rp.get('applied_rate'))} per s "
            f"({rp.get('error_pct', 0):+.2f} %) | within ±5 % | {verdict} |")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: summarize.py RECORDS.jsonl OUT.json")
    main(sys.argv[1], sys.argv[2])
