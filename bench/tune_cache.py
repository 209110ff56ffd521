#!/usr/bin/env python3
"""Benchmark: a 20-trial `kale tune` of a notebook with an expensive
parameter-independent step, with and without the step cache, and kale's
per-trial overhead over the Python work itself.

Usage: bench/tune_cache.py [--kale target/release/kale] [--python .venv/bin/python]
       [--trials 20] [--prepare-seconds 2.0] [--parallel 2]

The notebook: `prepare` sleeps PREPARE seconds (standing in for data loading)
and does not use the tuned parameters; `train` computes a cheap objective from
the tuned `x` and `y`. Overhead per trial = trial wall time minus the time the
steps spent inside their Python code (from each step's status.json), i.e. what
kale adds: process start, input loading, output saving, bookkeeping.
"""
import argparse
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def notebook(prepare_seconds):
    def code(src, tags):
        return {"cell_type": "code", "metadata": {"tags": tags}, "source": src,
                "outputs": [], "execution_count": None}
    cells = [
        code("import time\nimport math", ["imports"]),
        code("x = 0.0\ny = 1", ["pipeline-parameters"]),
        code("time.sleep(%s)\ntable = [math.sin(i) for i in range(10000)]" % prepare_seconds,
             ["step:prepare"]),
        code("score = -(x - 1.5) ** 2 - abs(y - 3) + sum(table[:10]) * 0", ["step:train", "prev:prepare"]),
        code("print(score)", ["pipeline-metrics"]),
    ]
    return {"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


def tune(kale, python, nb, name, trials, parallel, no_cache):
    cmd = [kale, "tune", nb, "--objective", "score", "--algorithm", "random", "--seed", "1",
           "--param", "x=double:0..3", "--param", "y=int:0..6",
           "--max-trials", str(trials), "--parallel", str(parallel), "--name", name, "--json"]
    if no_cache:
        cmd.append("--no-cache")
    env = dict(os.environ, KALE_PYTHON=python)
    t0 = time.perf_counter()
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if out.returncode != 0:
        sys.exit("kale tune failed:\n" + out.stderr)
    return wall, json.loads(out.stdout)


def overheads(db, name):
    con = sqlite3.connect(db)
    (eid,) = con.execute("SELECT id FROM experiments WHERE name = ?", (name,)).fetchone()
    rows = con.execute("SELECT seconds, run_dir FROM trials WHERE experiment_id = ? AND status = 'succeeded'",
                       (eid,)).fetchall()
    result = []
    for seconds, run_dir in rows:
        work = 0.0
        manifest = json.load(open(os.path.join(run_dir, "manifest.json")))
        for step in manifest["steps"]:
            if step["status"] != "succeeded":
                continue
            status = json.load(open(os.path.join(run_dir, "steps", step["name"], "status.json")))
            work += status.get("seconds", 0.0)
        result.append((seconds, work, seconds - work))
    return result


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kale", default=os.path.join(ROOT, "target", "release", "kale"))
    ap.add_argument("--python", default=os.environ.get("KALE_PYTHON") or shutil.which("python3"))
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--prepare-seconds", type=float, default=2.0)
    ap.add_argument("--parallel", type=int, default=2)
    args = ap.parse_args()
    if not os.path.exists(args.kale):
        subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    work = tempfile.mkdtemp(prefix="kale-bench-")
    nb = os.path.join(work, "bench.ipynb")
    json.dump(notebook(args.prepare_seconds), open(nb, "w"))

    cached_wall, cached = tune(args.kale, args.python, nb, "cached", args.trials, args.parallel, False)
    uncached_wall, uncached = tune(args.kale, args.python, nb, "uncached", args.trials, args.parallel, True)
    db = os.path.join(work, ".kale", "kale.db")
    cached_oh = overheads(db, "cached")
    uncached_oh = overheads(db, "uncached")

    def med(xs):
        return statistics.median(xs) if xs else float("nan")

    print("## kale tune: %d trials, parallel %d, param-independent step %.1fs" %
          (args.trials, args.parallel, args.prepare_seconds))
    print()
    print("| variant | wall s | cache hits / misses | median trial s | median Python work s | median kale overhead s |")
    print("|---|---|---|---|---|---|")
    for label, wall, doc, oh in (("with cache", cached_wall, cached, cached_oh),
                                  ("without cache", uncached_wall, uncached, uncached_oh)):
        print("| %s | %.2f | %d / %d | %.3f | %.3f | %.3f |" % (
            label, wall, doc["cache"]["hits"], doc["cache"]["misses"],
            med([o[0] for o in oh]), med([o[1] for o in oh]), med([o[2] for o in oh])))
    print()
    print("speed-up from the cache: %.1fx" % (uncached_wall / cached_wall))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
