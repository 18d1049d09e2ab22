#!/usr/bin/env python3
"""Summarises benches/room_log.sh's fan-out runs (fanout.jsonl) as Markdown:
medians over reps, the highest rate sustained with p99 < 50 ms (median p99,
every rep delivering >= 99 %), same-rep ratios, and the issue's targets.

    python3 benches/room_log_summary.py target/room-log/fanout.jsonl
"""
import json
import statistics
import sys
from collections import defaultdict

SUSTAINED_P99_US = 50_000
SUSTAINED_DELIVERED = 0.99


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def figures(x):
    r = x["report"] or {}
    f = r.get("fanout") or {}
    lat = r.get("latency") or {}
    errors = r.get("errors") or {}
    secs = (r.get("warmup_s") or 0) + (r.get("duration_s") or 0)
    log = x.get("log")
    expected = f.get("expected") or 0
    return {
        "p99": lat.get("p99_us") if r else None,
        "p50": lat.get("p50_us") if r else None,
        "deliveries": f.get("deliveries_per_s"),
        "delivered": (f.get("delivered", 0) / expected) if expected else 0.0,
        "acked": f.get("acked_per_s"),
        "errors": errors.get("total", 1) if r else 1,
        "kinds": errors.get("kinds") or {},
        "cpu": ((r.get("server") or {}).get("cpu_percent")),
        "us_per": ((r.get("server") or {}).get("us_per") or {}).get("delivery"),
        "gen_cpu": r.get("cpu_percent"),
        "appends": log["appends"] / secs if log and secs else None,
        "fsyncs": log["fsyncs"] / secs if log and secs else None,
        "batch": log["appends"] / log["fsyncs"] if log and log["fsyncs"] else None,
    }


def sustained(fig):
    return fig["p99"] is not None and 0 < fig["p99"] < SUSTAINED_P99_US and fig["delivered"] >= SUSTAINED_DELIVERED


def fmt(v, spec="{:,.0f}"):
    return "–" if v is None else spec.format(v)


def ms(us):
    return "–" if us is None else (f"{us / 1000:.1f} ms" if us < 10_000 else f"{us / 1000:.0f} ms")


def main(path):
    runs = [json.loads(line) for line in open(path) if line.strip()]
    by = defaultdict(list)  # (part, server, rate) -> [(rep, figures)]
    for x in runs:
        by[(x["part"], x["server"], x["rate"])].append((x["rep"], figures(x)))
    out = []
    w = out.append
    targets = []
    for part, title in (("room", "1 room × 1,000 members, 1 sender"), ("rooms", "100 rooms × 10, 100 senders")):
        servers = []
        rates = sorted({x["rate"] for x in runs if x["part"] == part})
        for x in runs:
            if x["part"] == part and x["server"] not in servers:
                servers.append(x["server"])
        if not servers:
            continue
        reps = sorted({x["rep"] for x in runs if x["part"] == part})
        w(f"### {title}\n")
        w("| rate msgs/s | server | deliveries/s | acked msgs/s | p50 | p99 (each rep) | delivered | server CPU "
          "| server µs/delivery | generator CPU | appends/s | fsyncs/s | msgs per fsync | errors |")
        w("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for rate in rates:
            for s in servers:
                fs = [f for _, f in sorted(by.get((part, s, rate), []), key=lambda t: t[0])]
                if not fs:
                    continue
                kinds = defaultdict(int)
                for f in fs:
                    for k, n in f["kinds"].items():
                        kinds[k] += n
                errs = sum(f["errors"] for f in fs)
                err = f"{errs:,}" + (" (" + ", ".join(f"{k} {n:,}" for k, n in sorted(kinds.items())) + ")" if kinds else "")
                each = ", ".join(ms(f["p99"]) for f in fs)
                w(f"| {rate:,} | {s} | {fmt(median([f['deliveries'] for f in fs]))} | "
                  f"{fmt(median([f['acked'] for f in fs]))} | {ms(median([f['p50'] for f in fs]))} | "
                  f"{ms(median([f['p99'] for f in fs]))} ({each}) | {min(f['delivered'] for f in fs):.1%} | "
                  f"{fmt(median([f['cpu'] for f in fs]), '{:.0f} %')} | {fmt(median([f['us_per'] for f in fs]), '{:.3f}')} | "
                  f"{fmt(median([f['gen_cpu'] for f in fs]), '{:.0f} %')} | "
                  f"{fmt(median([f['appends'] for f in fs]))} | {fmt(median([f['fsyncs'] for f in fs]))} | "
                  f"{fmt(median([f['batch'] for f in fs]), '{:.1f}')} | {err} |")
        w("")
        if part == "room":
            # Each rep's highest sustained rate; the figure is their median,
            # ratios are taken rep by rep.
            best = {}
            per_rep = defaultdict(dict)
            for s in servers:
                for rep in reps:
                    good = [r for r in rates for (rp, f) in by.get((part, s, r), []) if rp == rep and sustained(f)]
                    per_rep[s][rep] = max(good) if good else 0
                best[s] = median([per_rep[s][r] for r in reps])
            w("Highest rate with p99 < 50 ms and ≥ 99 % delivered: the median over reps of each rep's "
              "highest (each rep's in parentheses; a rep stops raising a server's rate after two failures in a row):\n")
            for s in servers:
                reps_s = ", ".join(fmt(per_rep[s][r]) for r in reps)
                w(f"- {s}: {fmt(best[s])} msgs/s ({reps_s})")
            w("")

            def ratio(a, b):
                each = [per_rep[a][r] / per_rep[b][r] for r in reps if per_rep[b][r]]
                return median(each), each

            for a, b, bound, what in (
                ("memory", "old", 0.9, "new build (log in memory) ÷ old build"),
                ("interval", "old", None, "new build (fsync interval) ÷ old build"),
                ("always", "old", None, "new build (fsync always) ÷ old build"),
                ("interval", "memory", 0.9, "fsync interval ÷ in memory"),
                ("always", "memory", None, "fsync always ÷ in memory"),
            ):
                if a in best and b in best:
                    r, each = ratio(a, b)
                    targets.append((f"1 × 1,000, highest rate with p99 < 50 ms: {what}", r, bound, each))
        if part == "rooms" and "always" in servers:
            clean = []
            for rate in rates:
                fs = [f for _, f in by.get((part, "always", rate), [])]
                if fs and all(f["errors"] == 0 for f in fs):
                    clean.append(median([f["acked"] for f in fs]))
            best_acked = max([c for c in clean if c is not None], default=None)
            targets.append(("100 × 10, acknowledged msgs/s with fsync always (highest median over rates "
                            "with no refusal or error)", best_acked, 50_000, []))
    w("### Targets\n")
    w("| target | measured | wanted | met |")
    w("| --- | --- | --- | --- |")
    for what, v, bound, each in targets:
        shown = "–" if v is None else (f"{v:,.0f}" if bound and bound > 100 else f"{v:.2f}")
        if each:
            shown += " (per rep: " + ", ".join(f"{e:.2f}" for e in each) + ")"
        if bound is None:
            w(f"| {what} | {shown} | – | – |")
        else:
            met = "not measured" if v is None else ("yes" if v >= bound else "**no**")
            w(f"| {what} | {shown} | ≥ {bound:,} | {met} |")
    print("\n".join(out))


if __name__ == "__main__":
    main(sys.argv[1])
