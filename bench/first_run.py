#!/usr/bin/env python3
"""Benchmark: what the trial's own code costs in a new process, in CPU time.

Runs the tuned code of examples/digits.ipynb (fit an SVC, predict, two scores) over
the same parameters three ways, alternating trial by trial, and prints the median CPU
time of each (``time.thread_time``: no waiting for a core is counted):

* in a child forked from a server that imported scikit-learn and holds the data but
  never ran scikit-learn itself (the data is made in another child and mapped
  copy-on-write from .npy files, trial_overhead.SERVER_SETUP) — what a trial's step in
  kale starts from, without kale;
* in a child forked from a server that ran one trial before forking;
* in the loop's own process, after one trial (an in-process Optuna loop).

The first minus the second is the cost of the libraries' first run in a process (a
trial isolated in a new process pays it every time); the second minus the third, the
cost of being a forked child (copy-on-write faults, cold caches). No kale is involved.

Usage: bench/first_run.py [--python PYTHON] [--rounds 3]   (PYTHON: numpy and scikit-learn)
"""
import argparse
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from trial_overhead import DIGITS_CODE, SERVER_SETUP  # noqa: E402

MEASURE = SERVER_SETUP + r"""
import json, statistics, sys, time
TUNED_CODE = compile(TUNED, "<tuned steps>", "exec")


def trial(C):
    globals().update(C=C, gamma=0.001)
    t0 = time.thread_time()
    exec(TUNED_CODE, globals())
    return time.thread_time() - t0


def in_child(C):
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.write(w, repr(trial(C)).encode())
        os._exit(0)
    os.close(w)
    value = float(os.read(r, 100))
    os.close(r)
    os.waitpid(pid, 0)
    return value


def server(warm):
    # A process that forks a child per request; `warm`: it ran one trial first.
    requests_r, requests_w = os.pipe()
    answers_r, answers_w = os.pipe()
    if os.fork() == 0:
        os.close(requests_w)
        os.close(answers_r)
        if warm:
            trial(3.0)
        while True:
            C = os.read(requests_r, 100)
            if not C:
                os._exit(0)
            os.write(answers_w, repr(in_child(float(C))).encode())
    os.close(requests_r)
    os.close(answers_w)
    return requests_w, answers_r


servers = {"never ran it": server(False), "ran one trial": server(True)}
trial(3.0)
cpu = {name: [] for name in list(servers) + ["in-process"]}
for _ in range(int(sys.argv[1])):
    for C in (0.5, 1, 2, 5, 10, 20, 50):
        for name, (requests_w, answers_r) in servers.items():
            os.write(requests_w, str(C).encode())
            cpu[name].append(float(os.read(answers_r, 100)))
        cpu["in-process"].append(trial(C))
for requests_w, _ in servers.values():
    os.close(requests_w)  # the servers end
print(json.dumps(cpu))
"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--python", default=os.environ.get("KALE_PYTHON") or shutil.which("python3"))
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    out = subprocess.run([args.python, "-c", DIGITS_CODE + MEASURE, str(args.rounds)], capture_output=True,
                         text=True)
    if out.returncode != 0:
        sys.exit("the measurement failed (it needs numpy and scikit-learn in %s):\n%s"
                 % (args.python, out.stderr))
    import json
    import statistics

    cpu = json.loads(out.stdout)
    base = cpu["in-process"]
    n = len(base)
    print("| the trial's code (fit, predict, scores), CPU time, %d trials each | median | "
          "over in-process, median of the pairs |" % n)
    print("|---|---|---|")
    labels = {"never ran it": "child of a server that never ran scikit-learn",
              "ran one trial": "child of a server that ran one trial",
              "in-process": "in-process (after one trial)"}
    for name, values in cpu.items():
        print("| %s | %.1f ms | %+.1f ms |" % (
            labels[name], statistics.median(values) * 1e3,
            statistics.median([v - b for v, b in zip(values, base)]) * 1e3))


if __name__ == "__main__":
    main()
