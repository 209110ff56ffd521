#!/usr/bin/env python3
"""Benchmark: what a cache hit costs when the cached data is large.

A 10-trial sequential `kale tune` of a notebook whose parameter-independent step
`make` reads a data file and produces a ~500 MB float64 array, and whose tuned step
`fit` reads it (a reduction over the array and the tuned `alpha`). Measured:

* hit validation: the time kale spent checking `make`'s cache entry in each trial
  (`cache_check_seconds` in the trial's manifest: the snapshot and the stat of the
  cached object), and the whole cached step (plus the hard link into the trial and
  its records). Neither may grow with the size of the data;
* per-trial overhead of kale over the same code in one Python process (data made
  once, the objective evaluated per trial), the loop Optuna users write. Optuna's
  RandomSampler drives it when optuna is installed, else a plain random loop.

The two are run alternating, ROUNDS times, and medians are quoted (shared, noisy
machines).

Usage: bench/cache_snapshot.py [--kale target/release/kale] [--python .venv/bin/python]
       [--megabytes 500] [--trials 10] [--rounds 3]
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

MAKE = ("scale = float(open('data.txt').read())\n"
        "data = np.arange({n}, dtype=np.float64) * scale")
FIT = "score = -float(np.abs(data[::1000] - alpha).mean())"


def notebook(n):
    def code(src, tags):
        return {"cell_type": "code", "metadata": {"tags": tags}, "source": src,
                "outputs": [], "execution_count": None}
    cells = [
        code("import numpy as np", ["imports"]),
        code("alpha = 0.5", ["pipeline-parameters"]),
        code(MAKE.format(n=n), ["step:make"]),
        code(FIT, ["step:fit", "prev:make"]),
        code("print(score)", ["pipeline-metrics"]),
    ]
    return {"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


IN_PROCESS = r"""
import json, random, sys, time
import numpy as np
n, trials = int(sys.argv[1]), int(sys.argv[2])
t0 = time.perf_counter()
scale = float(open('data.txt').read())
data = np.arange(n, dtype=np.float64) * scale
def objective(alpha):
    return -float(np.abs(data[::1000] - alpha).mean())
try:
    import optuna
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=1))
    t1 = time.perf_counter()
    study.optimize(lambda t: objective(t.suggest_float("alpha", 0.0, 1.0)), n_trials=trials)
    driver = "optuna RandomSampler"
except ImportError:
    rng = random.Random(1)
    t1 = time.perf_counter()
    for _ in range(trials):
        objective(rng.uniform(0.0, 1.0))
    driver = "plain random loop"
t2 = time.perf_counter()
print(json.dumps({"prepare": t1 - t0, "trials": t2 - t1, "driver": driver}))
"""


def kale_tune(kale, python, nb, name, trials):
    cmd = [kale, "tune", nb, "--objective", "score", "--algorithm", "random", "--seed", "1",
           "--param", "alpha=double:0..1", "--max-trials", str(trials), "--parallel", "1",
           "--name", name, "--json"]
    env = dict(os.environ, KALE_PYTHON=python)
    t0 = time.perf_counter()
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if out.returncode != 0:
        sys.exit("kale tune failed:\n" + out.stderr)
    return wall


def trial_times(work, name):
    import sqlite3

    con = sqlite3.connect(os.path.join(work, ".kale", "kale.db"))
    (eid,) = con.execute("SELECT id FROM experiments WHERE name = ?", (name,)).fetchone()
    rows = con.execute("SELECT seconds, run_dir FROM trials WHERE experiment_id = ? "
                       "AND status = 'succeeded' ORDER BY number", (eid,)).fetchall()
    hits, checks, trials = [], [], []
    for seconds, run_dir in rows:
        manifest = json.load(open(os.path.join(run_dir, "manifest.json")))
        make = next(s for s in manifest["steps"] if s["name"] == "make")
        if make["status"] == "cached":
            hits.append(make["seconds"])
            # Absent from kale builds older than the field: counts as unknown.
            checks.append(make.get("cache_check_seconds", float("nan")))
            trials.append(seconds)
    return hits, checks, trials


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kale", default=os.path.join(ROOT, "target", "release", "kale"))
    ap.add_argument("--python", default=os.environ.get("KALE_PYTHON") or shutil.which("python3"))
    ap.add_argument("--megabytes", type=int, default=500)
    ap.add_argument("--trials", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    if os.sep in args.python:
        args.python = os.path.abspath(args.python)
    args.kale = os.path.abspath(args.kale)
    n = args.megabytes * 1024 * 1024 // 8
    work = tempfile.mkdtemp(prefix="kale-bench-cache-")
    nb = os.path.join(work, "big.ipynb")
    json.dump(notebook(n), open(nb, "w"))
    with open(os.path.join(work, "data.txt"), "w") as f:
        f.write("1.0\n")

    hit_ms, check_ms, kale_trial_s, in_process_trial_s = [], [], [], []
    driver = None
    for r in range(args.rounds):
        # The first round computes `make` once; every later trial (and round) hits.
        kale_tune(args.kale, args.python, nb, "big-%d" % r, args.trials)
        hits, checks, trials = trial_times(work, "big-%d" % r)
        hit_ms.extend(h * 1000 for h in hits)
        check_ms.extend(c * 1000 for c in checks)
        kale_trial_s.extend(trials)
        out = subprocess.run([args.python, "-c", IN_PROCESS, str(n), str(args.trials)],
                             cwd=work, capture_output=True, text=True, check=True)
        doc = json.loads(out.stdout)
        driver = doc["driver"]
        in_process_trial_s.append(doc["trials"] / args.trials)

    med = statistics.median
    print("## Cache hits on a %d MB cached array: %d trials x %d rounds, sequential"
          % (args.megabytes, args.trials, args.rounds))
    print()
    print("| measure | median | min | max |")
    print("|---|---|---|---|")
    print("| checking the cache entry of `make` (snapshot + objects), ms | %.2f | %.2f | %.2f |"
          % (med(check_ms), min(check_ms), max(check_ms)))
    print("| cached `make` in a trial (check + link outputs + records), ms | %.2f | %.2f | %.2f |"
          % (med(hit_ms), min(hit_ms), max(hit_ms)))
    print("| kale trial wall time, s | %.3f | %.3f | %.3f |"
          % (med(kale_trial_s), min(kale_trial_s), max(kale_trial_s)))
    print("| in-process trial (%s), s | %.4f | %.4f | %.4f |"
          % (driver, med(in_process_trial_s), min(in_process_trial_s), max(in_process_trial_s)))
    print()
    print("kale's per-trial overhead over the in-process loop: %.3f s"
          % (med(kale_trial_s) - med(in_process_trial_s)))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
