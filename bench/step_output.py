#!/usr/bin/env python3
"""Benchmark: what a step printing a lot to stdout costs kale.

A one-step notebook prints --mb megabytes of 50-byte lines. The same Python program
runs (a) as the step of `kale run --no-cache --quiet` (its output copied to the step's
`stdout.log` and, line by line, to the reporter), and (b) on its own, its stdout into
a pipe read by `cat > /dev/null`, with the same `PYTHONUNBUFFERED=1` kale gives its
steps (so both write a line at a time). Rounds alternate; medians of the wall time.
With --baseline-kale OTHER, that binary runs too (e.g. main's, to compare).

Usage: bench/step_output.py [--kale target/release/kale] [--python .venv/bin/python]
       [--mb 50] [--rounds 5] [--baseline-kale OTHER_KALE]
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def program(mb):
    lines = mb * 1_000_000 // 50
    return "line = 'x' * 49\nfor _ in range(%d):\n    print(line)\nscore = 1" % lines


def notebook(mb):
    def code(src, tags):
        return {"cell_type": "code", "metadata": {"tags": tags}, "source": src,
                "outputs": [], "execution_count": None}
    return {"cells": [code(program(mb), ["step:loud"]), code("print(score)", ["pipeline-metrics"])],
            "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


def timed(cmd, env, shell=False):
    """Wall seconds of the command."""
    t0 = time.perf_counter()
    p = subprocess.run(cmd, env=env, shell=shell, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        sys.exit("failed: %s\n%s" % (cmd, p.stderr.decode(errors="replace")))
    return wall


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kale", default=os.path.join(ROOT, "target/release/kale"))
    ap.add_argument("--baseline-kale")
    ap.add_argument("--python", default=os.path.join(ROOT, ".venv/bin/python"))
    ap.add_argument("--mb", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=5)
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="kale-step-output-")
    try:
        nb = os.path.join(work, "loud.ipynb")
        with open(nb, "w") as f:
            json.dump(notebook(a.mb), f)
        prog = os.path.join(work, "loud.py")
        with open(prog, "w") as f:
            f.write(program(a.mb))
        env = dict(os.environ, KALE_PYTHON=a.python, PYTHONUNBUFFERED="1")
        kales = [("kale", a.kale)] + ([("baseline kale", a.baseline_kale)] if a.baseline_kale else [])
        results = {name: [] for name, _ in kales}
        results["python into a pipe"] = []
        for r in range(a.rounds):
            for name, binary in kales:
                results[name].append(timed([binary, "run", nb, "--no-cache", "--quiet"], env))
                shutil.rmtree(os.path.join(work, ".kale", "runs"), ignore_errors=True)
            results["python into a pipe"].append(
                timed("'%s' '%s' | cat > /dev/null" % (a.python, prog), env, shell=True))
            print("round %d: %s" % (r + 1, ", ".join(
                "%s %.2f s" % (k, v[-1]) for k, v in results.items())), file=sys.stderr)
        base = statistics.median(results["python into a pipe"])
        print("| %d MB of step stdout, %d rounds | wall, median | over python into a pipe |" % (a.mb, a.rounds))
        print("|---|---|---|")
        for name, runs in results.items():
            wall = statistics.median(runs)
            extra = "-" if name == "python into a pipe" else "%+.2f s" % (wall - base)
            print("| %s | %.2f s | %s |" % (name, wall, extra))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
