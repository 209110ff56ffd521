"""The do-it-yourself alternative to `kale tune`: an Optuna study whose objective
executes the notebook with papermill and reads the metric from the executed copy.

Runs inside the alternatives' venv (bench/.venv-alt).
Usage: python alt_optuna_papermill.py NOTEBOOK TRIALS SEED WORKDIR
Prints one JSON object: trials completed, best value, best params.
"""
import json
import os
import sys

import optuna
import papermill


def main():
    notebook, trials, seed, workdir = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    def objective(trial):
        x = trial.suggest_float("x", 0.0, 3.0)
        y = trial.suggest_int("y", 0, 6)
        out = os.path.join(workdir, "trial-%d.ipynb" % trial.number)
        nb = papermill.execute_notebook(notebook, out, parameters={"x": x, "y": y},
                                        kernel_name="python3", progress_bar=False)
        # The last code cell prints the metric, as in the kale notebook.
        for cell in reversed(nb["cells"]):
            for output in cell.get("outputs", []):
                if output.get("output_type") == "stream" and output.get("text", "").strip():
                    return float(output["text"].strip().splitlines()[-1])
        raise RuntimeError("no metric printed")

    study = optuna.create_study(direction="maximize",
                                sampler=optuna.samplers.RandomSampler(seed=seed))
    study.optimize(objective, n_trials=trials)
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    print(json.dumps({"trials": len(done), "best": study.best_value,
                      "params": study.best_params}))


if __name__ == "__main__":
    main()
