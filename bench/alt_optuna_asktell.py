"""Optuna's cost of one ask+tell at n trials (in-memory storage), measured the way
`cargo run -p kale-search --example bench -- overhead` measures ours: the median of
the ask+tell times of trials n-9..n.

Runs inside the alternatives' venv (bench/.venv-alt).
Usage: python alt_optuna_asktell.py SAMPLER TRIALS SEED   (SAMPLER: tpe | random)
Prints JSON: {"branin2d": ms, "hartmann6d": ms}.
"""
import json
import math
import statistics
import sys
import time

import optuna

H_ALPHA = [1.0, 1.2, 3.0, 3.2]
H_A = [[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14],
       [3, 3.5, 1.7, 10, 17, 8], [17, 8, 0.05, 10, 0.1, 14]]
H_P = [[0.1312, 0.1696, 0.5569, 0.0124, 0.8283, 0.5886],
       [0.2329, 0.4135, 0.8307, 0.3736, 0.1004, 0.9991],
       [0.2348, 0.1451, 0.3522, 0.2883, 0.3047, 0.6650],
       [0.4047, 0.8828, 0.8732, 0.5743, 0.1091, 0.0381]]


def branin(p):
    x1, x2 = p["x1"], p["x2"]
    b, c = 5.1 / (4 * math.pi ** 2), 5 / math.pi
    return (x2 - b * x1 ** 2 + c * x1 - 6) ** 2 + 10 * (1 - 1 / (8 * math.pi)) * math.cos(x1) + 10


def hartmann6(p):
    x = [p["x%d" % i] for i in range(6)]
    return -sum(H_ALPHA[i] * math.exp(-sum(H_A[i][j] * (x[j] - H_P[i][j]) ** 2 for j in range(6)))
                for i in range(4))


PROBLEMS = {
    "branin2d": (branin, {"x1": (-5.0, 10.0), "x2": (0.0, 15.0)}),
    "hartmann6d": (hartmann6, {"x%d" % i: (0.0, 1.0) for i in range(6)}),
}


def main():
    kind, n, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    result = {}
    for name, (f, bounds) in PROBLEMS.items():
        sampler = (optuna.samplers.TPESampler(seed=seed) if kind == "tpe"
                   else optuna.samplers.RandomSampler(seed=seed))
        study = optuna.create_study(direction="minimize", sampler=sampler)
        dists = {k: optuna.distributions.FloatDistribution(lo, hi) for k, (lo, hi) in bounds.items()}
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            trial = study.ask(dists)
            study.tell(trial, f(trial.params))
            times.append((time.perf_counter() - t0) * 1e3)
        result[name] = statistics.median(times[n - 10:n])
    print(json.dumps(result))


if __name__ == "__main__":
    main()
