#!/usr/bin/env python3
"""Where a trial's time goes: reads a KALE_TRACE file of a sequential `kale tune`
(`--parallel 1`) and prints, for the events of a trial after the first (the first
runs the shared steps), the median time since the trial started and the median gap
since the event before it, in the order the events happen.

Usage: KALE_TRACE=/tmp/trace kale tune nb.ipynb ... --parallel 1
       bench/trace_report.py /tmp/trace
"""
import collections
import statistics
import sys


def trials(lines):
    """[(number, [(t_us, label)])] per trial, from trial.launch to trial.stored."""
    out, current = [], None
    for line in lines:
        parts = line.split()
        if len(parts) < 4:
            continue
        t, who, event, rest = int(parts[0]), parts[2], parts[3], parts[4:]
        if who == "kale" and event == "trial.launch":
            current = (int(rest[0]), [])
        if current is None:
            continue
        # Step names say which step an event belongs to; pids and ids vary per trial.
        detail = rest[0] if rest and event.startswith(("step.", "start", "started", "shared", "inputs",
                                                         "cells", "outputs", "snapshot", "ended")) else ""
        if who == "step":
            detail = rest[0] if rest else ""
        current[1].append((t, ("%s %s %s" % (who, event, detail)).strip()))
        if who == "kale" and event == "trial.stored":
            out.append(current)
            current = None
    return out


def main():
    with open(sys.argv[1]) as f:
        runs = trials(f)
    runs = [r for r in runs if r[0] > 0]
    if not runs:
        sys.exit("no trial after the first in %s" % sys.argv[1])
    since_start = collections.defaultdict(list)
    for _, events in runs:
        t0 = events[0][0]
        seen = collections.Counter()
        for t, label in events:
            seen[label] += 1
            key = label if seen[label] == 1 else "%s #%d" % (label, seen[label])
            since_start[key].append((t - t0) / 1000)
    rows = sorted(((statistics.median(v), k, len(v)) for k, v in since_start.items()))
    print("%d trials; median ms since the trial started, and gap from the line above" % len(runs))
    prev = 0.0
    for at, key, n in rows:
        print("%8.1f %+7.1f  %s%s" % (at, at - prev, key, "" if n == len(runs) else "  (%d trials)" % n))
        prev = at
    totals = [(e[-1][0] - e[0][0]) / 1000 for _, e in runs]
    print("median trial: %.1f ms" % statistics.median(totals))


if __name__ == "__main__":
    main()
