#!/usr/bin/env python3
"""Benchmark: what a trial of `kale tune` costs beyond its own Python, against the
same code in one Python process driven by Optuna.

Two notebooks, each tuned with 20 sequential TPE trials (kale with `--parallel 1`,
Optuna in one process where the shared data is made once and the objective runs the
tuned steps' code, as a user would write it). The Optuna loop evaluates the parameters
kale's trials of the same round evaluated, in their order (enqueued): how long an SVC
takes to fit depends on its C and gamma, so two samplers' choices would differ in work,
not only in overhead. A third loop runs the same Optuna study with each trial in a
forked process of its own and nothing else (see FORKED_LOOP): the floor of a trial
isolated in its own process, which kale's trials are.

* `digits`: examples/digits.ipynb (load and scale the digits, fit an SVC over C and
  gamma, score it; the model goes from `train` to `evaluate`).
* `1gb`: a generated notebook whose cached step makes a 1 GiB float32 matrix (and
  its targets) and whose tuned step fits a ridge regression on every 64th row of it
  and scores it on other rows, over the ridge penalty.

Rounds alternate (kale, Optuna, Optuna forked, kale, ...); medians over rounds. Per trial is the
marginal cost of a trial: the time from the end of the first trial to the end of the
last, over the trials in between (the first runs the shared steps; every sampler
call, store write and process start in between is counted). For kale, the time
inside the steps' Python (from the step's start to its end, loading and saving
included: status.json) is also given. KALE_TRACE=FILE plus bench/trace_report.py
says where the rest goes.

The rounds' files are kept until the benchmark ends (the 1 GiB case needs ~2 GiB of
disk per kale round). --python is the Python of both kale's steps and the Optuna loop: it needs optuna, numpy
and scikit-learn (`python3 -m venv V && V/bin/pip install optuna==5.0.0 numpy scikit-learn`).

Usage: bench/trial_overhead.py [--kale target/release/kale] [--python .venv/bin/python]
       [--trials 20] [--rounds 3] [--case digits|1gb|all]   (Optuna in --python)
       [--baseline-kale OTHER/kale --baseline-label main]   (a third column, alternating)
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

# The in-process loops. Each case is its notebook's code in four parts: IMPORTS (the
# imports cell), SHARED (the cached steps: data every trial reads, named in
# SHARED_NAMES), sample(trial) (the pipeline parameters) and TUNED (the tuned steps;
# sets `value`).
#
# OPTUNA_LOOP runs them in one process: the shared data made once, each trial the tuned
# code, as a user would write it. FORKED_LOOP is the floor of a trial in a process of its
# own with nothing else a pipeline tool does: the process imports the modules and holds
# the shared data, made in a child (so that, like kale's fork server, it never ran the
# notebook's own code) and mapped copy-on-write from .npy files (as kale's server holds
# warm inputs); each trial runs in a forked child that the process forked while the
# trial before computed (as kale forks a spare), and an ended child is reaped by the
# kernel. Both print the seconds per trial of the trials after the first.
LOOP_HEAD = r"""
import json, os, sys, time
import optuna
optuna.logging.set_verbosity(optuna.logging.WARNING)
TUNED_CODE = compile(TUNED, "<tuned steps>", "exec")
"""
OPTUNA_LOOP = LOOP_HEAD + r"""
exec(IMPORTS)
exec(SHARED)
def objective(trial):
    globals().update(sample(trial))
    exec(TUNED_CODE, globals())
    return value
"""
# A process standing for kale's fork server: the imports, and the shared data made in a
# child and mapped from its files (which then go: the mappings keep them).
SERVER_SETUP = r"""
import os, shutil, tempfile
import numpy as np
exec(IMPORTS)
shared_dir = tempfile.mkdtemp()
pid = os.fork()
if pid == 0:
    exec(SHARED)
    for name in SHARED_NAMES:
        np.save(os.path.join(shared_dir, name + ".npy"), globals()[name])
    os._exit(0)
os.waitpid(pid, 0)
for name in SHARED_NAMES:
    globals()[name] = np.load(os.path.join(shared_dir, name + ".npy"), mmap_mode="c")
shutil.rmtree(shared_dir)
"""
FORKED_LOOP = LOOP_HEAD + SERVER_SETUP + r"""
import signal
signal.signal(signal.SIGCHLD, signal.SIG_IGN)

def fork_spare():
    params_r, params_w = os.pipe()
    value_r, value_w = os.pipe()
    if os.fork() == 0:
        os.close(params_w)
        os.close(value_r)
        with os.fdopen(params_r) as f:
            params = f.read()
        if not params:  # the loop ended
            os._exit(0)
        globals().update(json.loads(params))
        exec(TUNED_CODE, globals())
        os.write(value_w, json.dumps(value).encode())
        os._exit(0)
    os.close(params_r)
    os.close(value_w)
    return params_w, value_r

spare = [fork_spare()]
def objective(trial):
    params_w, value_r = spare.pop()
    os.write(params_w, json.dumps(sample(trial)).encode())
    os.close(params_w)
    spare.append(fork_spare())
    with os.fdopen(value_r) as f:
        return json.loads(f.read())
"""
LOOP_TAIL = r"""
done = []
study = optuna.create_study(direction=DIRECTION, sampler=optuna.samplers.TPESampler(seed=7))
if len(sys.argv) > 2:  # the parameters of kale's trials, in their order
    for params in json.load(open(sys.argv[2])):
        study.enqueue_trial(params)
study.optimize(objective, n_trials=int(sys.argv[1]),
               callbacks=[lambda study, trial: done.append(time.perf_counter())])
print(json.dumps({"per_trial": (done[-1] - done[0]) / (len(done) - 1), "best": study.best_value}))
"""

DIGITS_CODE = r'''
IMPORTS = """
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC
from sklearn.metrics import accuracy_score, f1_score
"""
SHARED = """
digits = load_digits()
X_train, X_test, y_train, y_test = train_test_split(
    digits.data, digits.target, test_size=0.3, random_state=0, stratify=digits.target)
scaler = StandardScaler().fit(X_train)
X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)
"""
SHARED_NAMES = ["X_train", "X_test", "y_train", "y_test"]
TUNED = """
model = SVC(C=C, gamma=gamma, kernel="rbf").fit(X_train, y_train)
predictions = model.predict(X_test)
f1_score(y_test, predictions, average="macro")
value = accuracy_score(y_test, predictions)
"""
DIRECTION = "maximize"
def sample(trial):
    return {"C": trial.suggest_float("C", 0.1, 100, log=True),
            "gamma": trial.suggest_float("gamma", 1e-4, 0.1, log=True)}
'''

# The 1 GiB notebook: `make` is the cached step, `fit` the tuned one.
BIG_MAKE = """rng = np.random.default_rng(0)
X = rng.standard_normal((4_194_304, 64), dtype=np.float32)
w_true = rng.standard_normal(64).astype(np.float32)
y = X @ w_true + rng.standard_normal(len(X), dtype=np.float32)"""
BIG_FIT = """A, b = X[0::64], y[0::64]
w = np.linalg.solve(A.T @ A + alpha * np.eye(64, dtype=np.float32), A.T @ b)
mse = float(np.mean((X[1::64] @ w - y[1::64]) ** 2))"""

BIG_CODE = "IMPORTS = 'import numpy as np'\nSHARED = %r\nTUNED = %r\n" % (
    BIG_MAKE, BIG_FIT + "\nvalue = mse") + r'''
SHARED_NAMES = ["X", "y"]
DIRECTION = "minimize"
def sample(trial):
    return {"alpha": trial.suggest_float("alpha", 1e-3, 1e3, log=True)}
'''


def big_notebook(path):
    def code(tags, source):
        return {"cell_type": "code", "execution_count": None, "metadata": {"tags": tags},
                "outputs": [], "source": source}

    nb = {"cells": [code(["imports"], "import numpy as np"),
                    code(["pipeline-parameters"], "alpha = 1.0"),
                    code(["step:make"], BIG_MAKE),
                    code(["step:fit", "prev:make"], BIG_FIT),
                    code(["pipeline-metrics"], "print(mse)")],
          "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                      "language": "python"}},
          "nbformat": 4, "nbformat_minor": 5}
    with open(path, "w") as f:
        json.dump(nb, f)


CASES = {
    "digits": {
        "title": "examples/digits.ipynb",
        "notebook": lambda work: shutil.copy(os.path.join(ROOT, "examples", "digits.ipynb"),
                                             os.path.join(work, "nb.ipynb")),
        "tune": ["--objective", "accuracy", "--algorithm", "tpe"],
        "code": DIGITS_CODE,
    },
    "1gb": {
        "title": "1 GiB of numpy data made by the cached step, read by the tuned step",
        "notebook": lambda work: big_notebook(os.path.join(work, "nb.ipynb")),
        "tune": ["--objective", "mse", "--goal", "minimize", "--algorithm", "tpe",
                 "--param", "alpha=double:1e-3..1e3:log"],
        "code": BIG_CODE,
    },
}


def kale_round(kale, python, work, case, name, trials, env):
    cmd = [kale, "tune", os.path.join(work, "nb.ipynb"), *case["tune"], "--seed", "7",
           "--max-trials", str(trials), "--parallel", "1", "--name", name, "--json"]
    t0 = time.perf_counter()
    out = subprocess.run(cmd, env=dict(os.environ, KALE_PYTHON=python, **env),
                         capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if out.returncode != 0:
        sys.exit("kale tune failed:\n" + out.stderr)
    con = sqlite3.connect(os.path.join(work, ".kale", "kale.db"))
    (eid,) = con.execute("SELECT id FROM experiments WHERE name = ?", (name,)).fetchone()
    rows = con.execute("SELECT finished_at, run_dir, params FROM trials WHERE experiment_id = ? "
                       "AND status = 'succeeded' ORDER BY number", (eid,)).fetchall()
    if len(rows) != trials:
        sys.exit("kale tune: %d of %d trials succeeded" % (len(rows), trials))
    per_trial = (rows[-1][0] - rows[0][0]) / (len(rows) - 1)
    user_code = []
    for _, run_dir, _ in rows[1:]:
        work_s = 0.0
        manifest = json.load(open(os.path.join(run_dir, "manifest.json")))
        for step in manifest["steps"]:
            if step["status"] == "succeeded":
                status = json.load(open(os.path.join(run_dir, "steps", step["name"], "status.json")))
                work_s += status.get("seconds", 0.0)
        user_code.append(work_s)
    # A mean, as the time per trial is (a median would leave out the slow trials).
    return wall, per_trial, statistics.mean(user_code), [json.loads(r[2]) for r in rows]


def loop_round(python, case, loop, trials, params):
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(params, f)
    t0 = time.perf_counter()
    try:
        out = subprocess.run([python, "-c", case["code"] + loop + LOOP_TAIL, str(trials), f.name],
                             capture_output=True, text=True)
    finally:
        os.unlink(f.name)
    wall = time.perf_counter() - t0
    if out.returncode != 0:
        sys.exit("the Optuna loop failed:\n" + out.stderr)
    return wall, json.loads(out.stdout)["per_trial"]


LOOPS = [("in-process Optuna", OPTUNA_LOOP), ("Optuna, a forked process per trial", FORKED_LOOP)]


def run_case(key, args):
    case = CASES[key]
    kales = [("kale tune", args.kale)]
    if args.baseline_kale:
        kales.append(("kale tune (%s)" % args.baseline_label, args.baseline_kale))
    runs = {label: ([], [], []) for label, _ in kales}
    loops = {label: ([], []) for label, _ in LOOPS}
    params = None
    env = {"KALE_FORK_SERVER": "0"} if args.no_fork_server else {}
    for r in range(args.rounds):
        for label, kale in kales:
            work = tempfile.mkdtemp(prefix="kale-bench-overhead-", dir=args.scratch)
            case["notebook"](work)
            measured = kale_round(kale, args.python, work, case, "overhead-%s-%d" % (key, r),
                                  args.trials, env)
            for into, value in zip(runs[label], measured):
                into.append(value)
            if params is None or label == kales[0][0]:
                params = measured[3]
        for label, loop in LOOPS:
            for into, value in zip(loops[label], loop_round(args.python, case, loop, args.trials,
                                                            params)):
                into.append(value)
        print("  round %d: %s" % (r + 1, ", ".join(
            ["%s %.1f ms/trial (%.2f s)" % (label, runs[label][1][-1] * 1e3, runs[label][0][-1])
             for label, _ in kales] +
            ["%s %.1f ms/trial (%.2f s)" % (label, loops[label][1][-1] * 1e3, loops[label][0][-1])
             for label, _ in LOOPS])), file=sys.stderr)
    med = statistics.median
    in_wall, in_trial = loops[LOOPS[0][0]]
    fork_wall, fork_trial = loops[LOOPS[1][0]]
    walls = [runs[l][0] for l, _ in kales] + [fork_wall]
    trials = [runs[l][1] for l, _ in kales] + [fork_trial]

    def row(title, cells):
        print("| %s | %s |" % (title, " | ".join(cells)))

    print("## %s: %d sequential TPE trials, %d rounds alternating" % (case["title"], args.trials,
                                                                     args.rounds))
    print()
    row("", [l for l, _ in kales] + [LOOPS[1][0], LOOPS[0][0]])
    print("|---|%s" % ("---|" * (len(kales) + 2)))
    row("whole command, s", ["%.2f (%.2fx)" % (med(w), med(w) / med(in_wall)) for w in walls] +
        ["%.2f" % med(in_wall)])
    row("per trial (after the first), ms", ["%.1f (%.2fx)" % (med(t) * 1e3, med(t) / med(in_trial))
                                            for t in trials] + ["%.1f" % (med(in_trial) * 1e3)])
    row("of which the steps' own Python (load, run, save), ms",
        ["%.1f" % (med(runs[l][2]) * 1e3) for l, _ in kales] + ["-", "-"])
    row("overhead per trial over the in-process loop, ms",
        ["%.1f" % ((med(t) - med(in_trial)) * 1e3) for t in trials] + ["-"])
    # The machine's speed drifts between rounds; a round's own difference (its runs a
    # few seconds apart) drifts less than the medians above.
    row("the same, median of each round's own difference, ms",
        ["%.1f" % (med([k - o for k, o in zip(t, in_trial)]) * 1e3) for t in trials] + ["-"])
    row("whole command over the in-process loop, per trial, median of the rounds, ms",
        ["%.1f" % (med([k - o for k, o in zip(w, in_wall)]) / args.trials * 1e3) for w in walls] +
        ["-"])
    row("per trial over the process-per-trial loop, median of each round's own difference, ms",
        ["%.1f" % (med([k - o for k, o in zip(runs[l][1], fork_trial)]) * 1e3) for l, _ in kales] +
        ["-", "-"])
    if len(kales) > 1:
        first = kales[0][0]
        row("per trial against `%s`, median of each round's own difference, ms" % first,
            ["-"] + ["%+.1f" % (med([b - a for a, b in zip(runs[first][1], runs[l][1])]) * 1e3)
                     for l, _ in kales[1:]] + ["-", "-"])
    print()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kale", default=os.path.join(ROOT, "target", "release", "kale"))
    ap.add_argument("--python", default=os.environ.get("KALE_PYTHON") or shutil.which("python3"))
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--case", choices=sorted(CASES) + ["all"], default="all")
    ap.add_argument("--baseline-kale", help="another kale binary to run alongside, alternating")
    ap.add_argument("--baseline-label", default="baseline")
    ap.add_argument("--no-fork-server", action="store_true",
                    help="run kale with KALE_FORK_SERVER=0 (every step a fresh process)")
    args = ap.parse_args()
    if os.sep in args.python:
        args.python = os.path.abspath(args.python)
    missing = subprocess.run([args.python, "-c", "import optuna, numpy, sklearn"],
                             capture_output=True, text=True)
    if missing.returncode != 0:
        sys.exit("%s cannot run the benchmark: %s\nhint: a venv with `pip install optuna==5.0.0 "
                 "numpy scikit-learn`, passed as --python" % (args.python, missing.stderr.strip().splitlines()[-1]))
    args.kale = os.path.abspath(args.kale)
    if args.baseline_kale:
        args.baseline_kale = os.path.abspath(args.baseline_kale)
    # Each round's files are deleted at the end, not before the next round: on an
    # ext4 without a journal, creating a file right after thousands were deleted
    # costs ~0.3 ms instead of ~0.04 (the allocator skips inodes freed in the last
    # seconds to minutes), which would be charged to the kale rounds.
    args.scratch = tempfile.mkdtemp(prefix="kale-bench-overhead-")
    try:
        for key in (sorted(CASES, reverse=True) if args.case == "all" else [args.case]):
            run_case(key, args)
    finally:
        shutil.rmtree(args.scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
