"""Optuna 5.0 baselines for `examples/mo_bench.rs`: runs Optuna's NSGAIISampler
and TPESampler (default settings) on the same multi-objective problems and
writes every trial's objective values, so that the Rust example computes the
hypervolume of both sides with the same code and reference point.

    nice .venv/bin/python search/bench/optuna_mo.py --seeds 20 --trials 200 \
        --out target/mo_optuna.json

Output: one JSON object per line: {"problem", "sampler", "seed", "seconds",
"values": [[f1, f2, ...], ...]} in trial order (failed trials never occur).
The problem definitions must stay identical to the Rust ones (`problem()` in
`examples/mo_bench.rs`): every variable on [0, 1].
"""

import argparse
import json
import math
import sys
import time

import optuna


def zdt_g(x):
    return 1.0 + 9.0 * sum(x[1:]) / (len(x) - 1)


def zdt1(x):
    g = zdt_g(x)
    return (x[0], g * (1.0 - math.sqrt(x[0] / g)))


def zdt2(x):
    g = zdt_g(x)
    return (x[0], g * (1.0 - (x[0] / g) ** 2))


def zdt3(x):
    g = zdt_g(x)
    h = 1.0 - math.sqrt(x[0] / g) - (x[0] / g) * math.sin(10.0 * math.pi * x[0])
    return (x[0], g * h)


def dtlz2(x):
    m = 3
    g = sum((v - 0.5) ** 2 for v in x[m - 1:])
    a, b = x[0] * math.pi / 2, x[1] * math.pi / 2
    return (
        (1 + g) * math.cos(a) * math.cos(b),
        (1 + g) * math.cos(a) * math.sin(b),
        (1 + g) * math.sin(a),
    )


# name -> (function, number of variables, number of objectives)
PROBLEMS = {
    "zdt1": (zdt1, 10, 2),
    "zdt2": (zdt2, 10, 2),
    "zdt3": (zdt3, 10, 2),
    "dtlz2": (dtlz2, 12, 3),
}


def sampler(name, seed):
    if name == "optuna_nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed)
    if name == "optuna_tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if name == "optuna_tpe_mv":
        return optuna.samplers.TPESampler(seed=seed, multivariate=True)
    raise SystemExit(f"unknown sampler {name}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--problems", default="zdt1,zdt2,zdt3,dtlz2")
    ap.add_argument("--samplers", default="optuna_nsga2,optuna_tpe")
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--trials", type=int, default=200)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    assert optuna.__version__.startswith("5."), optuna.__version__
    with open(a.out, "a") as out:
        for prob in a.problems.split(","):
            f, n, m = PROBLEMS[prob]
            for name in a.samplers.split(","):
                for seed in range(a.first_seed, a.first_seed + a.seeds):
                    study = optuna.create_study(
                        directions=["minimize"] * m, sampler=sampler(name, seed)
                    )

                    def objective(trial):
                        x = [trial.suggest_float(f"x{i}", 0.0, 1.0) for i in range(n)]
                        return f(x)

                    t0 = time.perf_counter()
                    study.optimize(objective, n_trials=a.trials)
                    dt = time.perf_counter() - t0
                    vals = [list(t.values) for t in study.trials]
                    out.write(json.dumps({"problem": prob, "sampler": name, "seed": seed,
                                          "seconds": dt, "values": vals}) + "\n")
                    out.flush()
                    print(f"{prob} {name} seed {seed}: {dt:.1f}s", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
