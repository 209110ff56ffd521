#!/usr/bin/env python3
"""Benchmark: what a trial of `kale tune examples/digits.ipynb` costs beyond its own
Python, against the same code in one Python process driven by Optuna.

Both sides run 20 sequential trials over the notebook's search space (C, gamma,
log-uniform) with their TPE sampler: kale with `--parallel 1`, Optuna in one
process where the data is loaded and scaled once and the objective fits the SVC
and scores it, as a user would write it. Rounds alternate (kale, Optuna, kale, ...);
medians of the wall time per trial. For kale, the time inside each step's Python
code (status.json) is also summed, so the overhead splits into the user's code and
kale's own (fork, loading inputs, saving outputs, bookkeeping).

Usage: bench/trial_overhead.py [--kale target/release/kale] [--python .venv/bin/python]
       [--trials 20] [--rounds 3]      (Optuna must be installed in --python)
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

IN_PROCESS = r"""
import json, sys, time
t0 = time.perf_counter()
import optuna
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC
from sklearn.metrics import accuracy_score
optuna.logging.set_verbosity(optuna.logging.WARNING)
digits = load_digits()
X_train, X_test, y_train, y_test = train_test_split(
    digits.data, digits.target, test_size=0.3, random_state=0, stratify=digits.target)
scaler = StandardScaler().fit(X_train)
X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)
def objective(trial):
    C = trial.suggest_float("C", 0.1, 100, log=True)
    gamma = trial.suggest_float("gamma", 1e-4, 0.1, log=True)
    model = SVC(C=C, gamma=gamma, kernel="rbf").fit(X_train, y_train)
    return accuracy_score(y_test, model.predict(X_test))
study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=7))
t1 = time.perf_counter()
study.optimize(objective, n_trials=int(sys.argv[1]))
t2 = time.perf_counter()
print(json.dumps({"setup": t1 - t0, "trials": t2 - t1, "best": study.best_value}))
"""


def kale_round(kale, python, work, name, trials):
    nb = os.path.join(work, "digits.ipynb")
    cmd = [kale, "tune", nb, "--objective", "accuracy", "--algorithm", "tpe", "--seed", "7",
           "--max-trials", str(trials), "--parallel", "1", "--name", name, "--json"]
    t0 = time.perf_counter()
    out = subprocess.run(cmd, env=dict(os.environ, KALE_PYTHON=python),
                         capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if out.returncode != 0:
        sys.exit("kale tune failed:\n" + out.stderr)
    con = sqlite3.connect(os.path.join(work, ".kale", "kale.db"))
    (eid,) = con.execute("SELECT id FROM experiments WHERE name = ?", (name,)).fetchone()
    rows = con.execute("SELECT seconds, run_dir FROM trials WHERE experiment_id = ? "
                       "AND status = 'succeeded' ORDER BY number", (eid,)).fetchall()
    per_trial, user_code = [], []
    # The first trial runs the shared steps; the rest are what a tune repeats.
    for seconds, run_dir in rows[1:]:
        work_s = 0.0
        manifest = json.load(open(os.path.join(run_dir, "manifest.json")))
        for step in manifest["steps"]:
            if step["status"] == "succeeded":
                status = json.load(open(os.path.join(run_dir, "steps", step["name"], "status.json")))
                work_s += status.get("seconds", 0.0)
        per_trial.append(seconds)
        user_code.append(work_s)
    return wall, statistics.median(per_trial), statistics.median(user_code)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kale", default=os.path.join(ROOT, "target", "release", "kale"))
    ap.add_argument("--python", default=os.environ.get("KALE_PYTHON") or shutil.which("python3"))
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    kale_wall, kale_trial, kale_user, optuna_wall, optuna_trial = [], [], [], [], []
    for r in range(args.rounds):
        work = tempfile.mkdtemp(prefix="kale-bench-overhead-")
        shutil.copy(os.path.join(ROOT, "examples", "digits.ipynb"), work)
        wall, trial, user = kale_round(args.kale, args.python, work, "digits-%d" % r, args.trials)
        kale_wall.append(wall)
        kale_trial.append(trial)
        kale_user.append(user)
        shutil.rmtree(work, ignore_errors=True)
        t0 = time.perf_counter()
        out = subprocess.run([args.python, "-c", IN_PROCESS, str(args.trials)],
                             capture_output=True, text=True, check=True)
        optuna_wall.append(time.perf_counter() - t0)
        optuna_trial.append(json.loads(out.stdout)["trials"] / args.trials)
    med = statistics.median
    print("## examples/digits.ipynb, %d sequential TPE trials, %d rounds alternating"
          % (args.trials, args.rounds))
    print()
    print("| | kale tune | in-process Optuna | ratio |")
    print("|---|---|---|---|")
    print("| whole command, s | %.2f | %.2f | %.2fx |"
          % (med(kale_wall), med(optuna_wall), med(kale_wall) / med(optuna_wall)))
    print("| per trial (after the first), ms | %.1f | %.1f | %.2fx |"
          % (med(kale_trial) * 1e3, med(optuna_trial) * 1e3, med(kale_trial) / med(optuna_trial)))
    print("| of which the steps' own Python code, ms | %.1f | - | - |" % (med(kale_user) * 1e3))
    print()
    print("kale's per-trial overhead over the in-process loop: %.1f ms"
          % ((med(kale_trial) - med(optuna_trial)) * 1e3))


if __name__ == "__main__":
    main()
