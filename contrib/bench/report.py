#!/usr/bin/env python3
"""Tables for contrib/bench.sh: median per metric and filesystem, kinko's ratios.

usage: report.py RESULTS.tsv ROUNDS "KINDS" "FSES" "METRICS"
TSV columns: kind fs round metric value unit (one header line).
Exit status 1 if any run failed (mount, fsbench, small_verify != 1), else 0.
"""
import csv
import statistics
import sys
from collections import defaultdict

PEERS = ("gocryptfs", "securefs")


def higher_is_better(metric):
    return not metric.endswith("_s")


def fmt(metric, v):
    if v is None:
        return "fail"
    if metric.endswith("_iops"):
        return "%.0f" % v
    if metric.endswith("_s"):
        return "%.3f" % v
    return "%.1f" % v


def num(s):
    try:
        v = float(s)
    except ValueError:
        return None
    return v if v == v else None  # drop nan


def ratio(metric, kinko, other):
    """> 1 means kinko is better, for time and throughput metrics alike."""
    if kinko is None or other is None or kinko <= 0 or other <= 0:
        return None
    return kinko / other if higher_is_better(metric) else other / kinko


def main():
    path, rounds, kinds, fses, metrics = sys.argv[1:6]
    rounds, kinds, fses, metrics = int(rounds), kinds.split(), fses.split(), metrics.split()
    vals = defaultdict(list)            # (kind, fs, metric) -> [float]
    runs = defaultdict(dict)            # (kind, fs, round) -> {metric: value}
    with open(path, newline="") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            if row["round"] == "rss":
                continue
            runs[(row["kind"], row["fs"], row["round"])][row["metric"]] = row["value"]
            v = num(row["value"])
            if v is not None:
                vals[(row["kind"], row["fs"], row["metric"])].append(v)

    failures, warnings = [], []
    for (kind, fs, rnd), m in sorted(runs.items()):
        where = f"{kind}/{fs} round {rnd}"
        if m.get("mount_ok") != "1":
            failures.append(f"FAIL: {fs} did not mount ({where})")
            continue
        if m.get("fsbench_rc", "0") != "0":
            failures.append(f"FAIL: fsbench exited {m.get('fsbench_rc')} ({where})")
        if m.get("small_verify") != "1":
            failures.append(f"FAIL: small_verify={m.get('small_verify', 'missing')} "
                            f"({where}): files read back differ from what was written")
        for metric in metrics:
            if num(m.get(metric, "fail")) is None:
                failures.append(f"FAIL: {metric}={m.get(metric, 'missing')} ({where})")
        if m.get("drop_caches_ok") != "1":
            warnings.append(f"WARNING: drop_caches did not work ({where}): reads may be cached")
    shas = {m.get("small_tree_sha256") for m in runs.values() if m.get("small_tree_sha256")}
    if len(shas) > 1:
        warnings.append(f"WARNING: small_tree_sha256 differs between runs: {sorted(shas)}")

    short = any(0 < len(vals[(k, f, m)]) < rounds for k in kinds for f in fses for m in metrics)
    for kind in kinds:
        med = {}
        for fs in fses:
            for metric in metrics:
                v = vals.get((kind, fs, metric), [])
                med[(fs, metric)] = statistics.median(v) if v else None
        head = ["metric"] + fses
        if "kinko" in fses and any(p in fses for p in PEERS):
            head.append("kinko/best-peer")
        if "kinko" in fses and "passthrough" in fses:
            head.append("kinko/passthrough")
        if "kinko" in fses and "kinko-noaudit" in fses:
            head.append("audit-cost")
        rows = []
        for metric in metrics:
            row = [metric]
            for fs in fses:
                cell = fmt(metric, med[(fs, metric)])
                n = len(vals.get((kind, fs, metric), []))
                if 0 < n < rounds:
                    cell += "*"
                row.append(cell)
            if "kinko/best-peer" in head:
                peers = [(med[(p, metric)], p) for p in PEERS
                         if p in fses and med[(p, metric)] is not None]
                if peers:
                    best = (max if higher_is_better(metric) else min)(peers)
                    r = ratio(metric, med[("kinko", metric)], best[0])
                    row.append("%.2f (%s)" % (r, best[1]) if r is not None else "fail")
                else:
                    row.append("fail")
            if "kinko/passthrough" in head:
                r = ratio(metric, med[("kinko", metric)], med[("passthrough", metric)])
                row.append("%.2f" % r if r is not None else "fail")
            if "audit-cost" in head:
                # how much more time (or less throughput) the audit log costs: 1.05 = 5 %
                r = ratio(metric, med[("kinko-noaudit", metric)], med[("kinko", metric)])
                row.append("%.3f" % r if r is not None else "fail")
            rows.append(row)
        widths = [max(len(str(r[i])) for r in [head] + rows) for i in range(len(head))]
        print()
        print(f"== backing: {kind}  (median of {rounds} round{'s' if rounds != 1 else ''}; "
              f"ratios > 1 mean kinko is better) ==")
        for r in [head] + rows:
            print("  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w)
                            for i, (c, w) in enumerate(zip(r, widths))))
    if short:
        print(f"* = median of fewer than {rounds} successful runs")
    print()
    for w in warnings:
        print(w)
    for f in failures:
        print("!!!!! " + f)
    if not failures:
        print(f"small_verify == 1 in all {sum(1 for m in runs.values() if m.get('mount_ok') == '1')}"
              f" runs; every filesystem mounted in every round")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
