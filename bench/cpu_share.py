#!/usr/bin/env python3
"""Benchmark: two parallel trials of a BLAS-heavy notebook, with and without the
CPU share.

`kale tune --parallel 2` of a notebook whose tuned step multiplies large matrices
(numpy, multithreaded BLAS). With the share (the default), each step's thread
pools get cores / 2 threads; without it (the user's OMP/OPENBLAS/MKL variables set
to all cores, which kale then leaves alone, as each trial in its own process would
otherwise do) both trials start a pool sized to every core and compete. Rounds
alternate between the two; medians of the tune's wall time.

Usage: bench/cpu_share.py [--kale target/release/kale] [--python .venv/bin/python]
       [--trials 6] [--size 1500] [--rounds 3]
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
THREAD_VARS = ["OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
               "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "BLIS_NUM_THREADS"]


def notebook(size):
    def code(src, tags):
        return {"cell_type": "code", "metadata": {"tags": tags}, "source": src,
                "outputs": [], "execution_count": None}
    cells = [
        code("import numpy as np", ["imports"]),
        code("scale = 0.5", ["pipeline-parameters"]),
        code("rng = np.random.default_rng(0)\n"
             "a = rng.standard_normal((%d, %d))\n"
             "for _ in range(8):\n"
             "    a = np.tanh(a @ a.T * (scale / %d))\n"
             "score = float(np.abs(a).mean())" % (size, size, size),
             ["step:train"]),
        code("print(score)", ["pipeline-metrics"]),
    ]
    return {"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


def tune(kale, python, nb, name, trials, share):
    env = dict(os.environ, KALE_PYTHON=python)
    cores = str(os.cpu_count() or 1)
    for var in THREAD_VARS:
        if share:
            env.pop(var, None)
        else:
            env[var] = cores
    cmd = [kale, "tune", nb, "--objective", "score", "--algorithm", "random", "--seed", "1",
           "--param", "scale=double:0.1..1", "--max-trials", str(trials), "--parallel", "2",
           "--no-cache", "--name", name, "--json"]
    t0 = time.perf_counter()
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit("kale tune failed:\n" + out.stderr)
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kale", default=os.path.join(ROOT, "target", "release", "kale"))
    ap.add_argument("--python", default=os.environ.get("KALE_PYTHON") or shutil.which("python3"))
    ap.add_argument("--trials", type=int, default=6)
    ap.add_argument("--size", type=int, default=1500)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="kale-bench-cpu-")
    nb = os.path.join(work, "blas.ipynb")
    json.dump(notebook(args.size), open(nb, "w"))
    shared, unshared = [], []
    for r in range(args.rounds):
        shared.append(tune(args.kale, args.python, nb, "share-%d" % r, args.trials, True))
        unshared.append(tune(args.kale, args.python, nb, "all-%d" % r, args.trials, False))
    med = statistics.median
    print("## 2 parallel trials x %d, %dx%d matrix products, %d cores, %d rounds alternating"
          % (args.trials // 2, args.size, args.size, os.cpu_count() or 1, args.rounds))
    print()
    print("| variant | median wall s | all runs |")
    print("|---|---|---|")
    print("| CPU share (default) | %.2f | %s |" % (med(shared), ", ".join("%.2f" % x for x in shared)))
    print("| every trial sized to all cores | %.2f | %s |"
          % (med(unshared), ", ".join("%.2f" % x for x in unshared)))
    print()
    print("ratio (all cores / share): %.2fx" % (med(unshared) / med(shared)))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
