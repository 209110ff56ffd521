#!/usr/bin/env python3
"""The differential suite: does each pipeline compute what its notebook computes?

Every case notebook (tests/differential/cases/NAME.ipynb, with NAME.case.toml beside it)
and every runnable corpus notebook (corpus.toml) runs, with its default parameters and
with each set of overrides its sidecar lists, on:

  truth     the notebook top to bottom in one Jupyter kernel (truth.py)
  validate  `kale validate` (and, for cases listing parallel branches, `kale inspect`)
  run       `kale run --json -p ...`
  tune      `kale tune` with one trial at exactly those values: a `--space` file in
            which every parameter is a one-value categorical list, `--algorithm grid
            --max-trials 1`; the trial's metrics come from `kale experiments show --json`
  kfp       `kale compile --target kfp`, executed by KFP's own local engine (kfp.local,
            tests/kfp_local/run_pipeline.py) with each task in a fresh copy of the
            notebook's folder, as every step is a pod of its own on a cluster

and each target's metrics are compared with the truth's, exactly: integers as integers,
floats bit for bit (-0.0 is not 0.0). No tolerance is allowed anywhere: every case runs
the same code on the same data in the same interpreter, so any difference is a
difference in what was computed. Metrics a corpus notebook draws without a seed
(`random = [...]` in corpus.toml) differ from run to run even in Jupyter, so for those
only their presence is compared.

Each (case, parameters, target) comes out as one of:
  match     same metrics as the truth (for `validate`: `ok`, the notebook is accepted)
  DIVERGE   it ran and succeeded, with other metrics (both values shown)
  refused   kale refused the notebook (exit 2) with a located message; right for a case
            with `expect = "refused"` when the message has the case's `refused` text
  error     it failed at run time (the step, the exception)
  accepted  a case that must be refused ran instead
  serialized  branches a case lists as `parallel` were made to wait for each other
  skipped   the case needs a module this Python lacks (`requires`), e.g. torch

Every kale target runs with the test Python minus dill (a venv whose site-packages
links every package of the test Python but dill): issue #26 asks that no notebook need
dill, and with dill installed class 6 would pass by accident. The truth runs in the
same environment.

Known divergences (known_divergences.toml) list, per case and target, what does not
pass today. With --check the exit status is 1 when any case or target does something
other than its entry says: an unlisted divergence, and also a listed one that now
passes (delete its line: the list only shrinks and always tells the truth).

Usage:
  matrix.py --kale BIN [--python PY] [--kfp-python PY] [--check] [--json OUT]
            [--case NAME ...] [--no-corpus] [--targets run,tune,kfp] [--keep DIR]
The defaults find the project's .venv and .venv-validators (scripts/python-env and
scripts/validators-env create them); tests/it/differential.rs runs it with --check.
"""

import argparse
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import nbinfo
from nbinfo import cli_text, typed_like

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
CASES_DIR = HERE / "cases"
CORPUS_DIR = ROOT.parent / "shared" / "corpus"
KFP_HARNESS = ROOT / "tests" / "kfp_local" / "run_pipeline.py"
TRUTH = HERE / "truth.py"
KNOWN = HERE / "known_divergences.toml"
TARGETS = ("validate", "run", "tune", "kfp")
COMMAND_TIMEOUT_S = 600
# CI has two cores: two units of work at a time (each is mostly one process at a time).
WORKERS = 2
LOCATED = re.compile(r"cell \d+(, line \d+)?")
SIDECAR_KEYS = {"class", "expect", "refused", "overrides", "requires", "files", "parallel"}


@dataclass
class Case:
    name: str
    notebook: Path
    klass: int
    expect: str = "match"
    refused: str | None = None
    overrides: list = field(default_factory=list)
    requires: list = field(default_factory=list)
    files: list = field(default_factory=list)
    parallel: list = field(default_factory=list)
    random: list = field(default_factory=list)
    corpus: bool = False

    def param_sets(self):
        sets = [("default", {})]
        for o in self.overrides:
            sets.append((",".join("%s=%s" % (k, v) for k, v in o.items()), o))
        return sets

    def copy_folder(self, dest):
        """The notebook and its folder's content, as an image (or a user's checkout) has it."""
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copy(self.notebook, dest / self.notebook.name)
        for rel in self.files:
            src = self.notebook.parent / rel
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            if src.is_dir():
                shutil.copytree(src, dest / rel)
            else:
                shutil.copy(src, dest / rel)
        return dest / self.notebook.name


def load_cases(names):
    cases = []
    for sidecar in sorted(CASES_DIR.glob("*.case.toml")):
        name = sidecar.name[: -len(".case.toml")]
        if names and name not in names:
            continue
        spec = tomllib.loads(sidecar.read_text(encoding="utf-8"))
        unknown = set(spec) - SIDECAR_KEYS
        if unknown:
            sys.exit("%s: unknown key(s) %s" % (sidecar, ", ".join(sorted(unknown))))
        cases.append(Case(name=name, notebook=CASES_DIR / (name + ".ipynb"),
                          klass=spec.get("class", 0), expect=spec.get("expect", "match"),
                          refused=spec.get("refused"), overrides=spec.get("overrides", []),
                          requires=spec.get("requires", []), files=spec.get("files", []),
                          parallel=spec.get("parallel", [])))
        if cases[-1].expect not in ("match", "refused"):
            sys.exit("%s: expect must be \"match\" or \"refused\"" % sidecar)
        if cases[-1].expect == "refused" and not cases[-1].refused:
            sys.exit("%s: a refused case names the text its message must contain (refused = ...)" % sidecar)
    return cases


def load_corpus(names):
    spec = tomllib.loads((HERE / "corpus.toml").read_text(encoding="utf-8"))
    cases = []
    for entry in spec["notebook"]:
        if names and entry["name"] not in names:
            continue
        nb = CORPUS_DIR / entry["path"]
        if not nb.exists():
            sys.exit("corpus notebook not found: %s" % nb)
        # Like a user's checkout: every plain file of the notebook's folder.
        files = sorted(p.name for p in nb.parent.iterdir() if p.is_file() and p != nb)
        cases.append(Case(name=entry["name"], notebook=nb, klass=0,
                          expect=entry.get("expect", "match"), refused=entry.get("refused", ""),
                          overrides=entry.get("overrides", []), random=entry.get("random", []),
                          files=files, corpus=True))
        if cases[-1].expect == "refused" and not cases[-1].refused:
            sys.exit("corpus.toml: %s: expect = \"refused\" needs `refused`" % entry["name"])
    return cases


# ---------------------------------------------------------------- environment

def python_without_dill(base_python, dest):
    """A venv whose site-packages links every entry of `base_python`'s but dill's."""
    site = subprocess.run([base_python, "-c", "import site; print(site.getsitepackages()[0])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    subprocess.run([base_python, "-m", "venv", "--without-pip", str(dest)], check=True)
    ours = Path(subprocess.run([str(dest / "bin" / "python"), "-c",
                                "import site; print(site.getsitepackages()[0])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    shutil.rmtree(ours)
    ours.mkdir()
    for entry in sorted(Path(site).iterdir()):
        if entry.name == "dill" or entry.name.startswith("dill-"):
            continue
        (ours / entry.name).symlink_to(entry)
    return str(dest / "bin" / "python")


def missing_modules(python, modules):
    if not modules:
        return set()
    code = ("import importlib.util, json, sys; "
            "print(json.dumps([m for m in sys.argv[1:] if importlib.util.find_spec(m) is None]))")
    out = subprocess.run([python, "-c", code, *sorted(modules)], check=True,
                         capture_output=True, text=True).stdout
    return set(json.loads(out))


# ---------------------------------------------------------------- comparing

def same_value(a, b):
    if isinstance(a, str) or isinstance(b, str):  # "nan", "inf", "-inf"
        return a == b
    if isinstance(a, float) and isinstance(b, float):
        return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)
    return a == b  # int against int, or int against float: Python compares exactly


def compare(truth, got, random=()):
    """'' when `got` has the truth's metrics, else what differs."""
    diffs = []
    for name in truth:
        if name not in got:
            diffs.append("%s missing (truth %r)" % (name, truth[name]))
        elif name not in random and not same_value(truth[name], got[name]):
            diffs.append("%s=%r (truth %r)" % (name, got[name], truth[name]))
    for name in got:
        if name not in truth:
            diffs.append("%s=%r (not a truth metric)" % (name, got[name]))
    return "; ".join(diffs)


def outcome(kind, detail="", metrics=None):
    return {"kind": kind, "detail": detail, "metrics": metrics}


def first_error_line(stderr):
    lines = [l.strip() for l in stderr.splitlines()]
    errors = [l for l in lines if l.startswith("error:")]
    return errors[0] if errors else (lines[-1] if lines else "")


def refusal(case, stderr):
    """The outcome of a command that exited 2."""
    message = first_error_line(stderr)
    if case.expect == "refused" and (case.refused not in stderr or not LOCATED.search(message)):
        return outcome("refused-other", message)
    return outcome("refused", message)


def passes(case, target, kind):
    if kind == "skipped":
        return True
    if case.expect == "refused":
        return kind == "refused"
    return kind == ("ok" if target == "validate" else "match")


# ---------------------------------------------------------------- targets

class Kale:
    def __init__(self, binary, python):
        self.binary = binary
        self.env = dict(os.environ, KALE_PYTHON=python)
        self.env.pop("KUBERNETES_SERVICE_HOST", None)  # never take a pod's image

    def __call__(self, args, cwd):
        p = subprocess.run([self.binary, *args], cwd=cwd, env=self.env, capture_output=True,
                           text=True, timeout=COMMAND_TIMEOUT_S)
        return p.returncode, p.stdout, p.stderr


def typed(parameters, overrides):
    """Overrides typed like the parameters' defaults (as `-p` types them)."""
    return {k: typed_like(parameters[k], v) if k in parameters else v for k, v in overrides.items()}


def run_validate(kale, case, work):
    nb = case.copy_folder(work / "validate")
    code, _, stderr = kale(["validate", nb.name], nb.parent)
    if code == 2:
        return refusal(case, stderr)
    if code != 0:
        return outcome("error", first_error_line(stderr))
    if case.expect == "refused":
        return outcome("accepted", "validate accepts it")
    if not case.parallel:
        return outcome("ok")
    code, stdout, stderr = kale(["inspect", nb.name, "--json"], nb.parent)
    if code != 0:
        return outcome("error", "inspect: " + first_error_line(stderr))
    doc = json.loads(stdout)
    parents = {s["name"]: set(s["depends_on"]) for s in doc["steps"]}

    def ancestors(step):
        seen, todo = set(), list(parents.get(step, ()))
        while todo:
            s = todo.pop()
            if s not in seen:
                seen.add(s)
                todo.extend(parents.get(s, ()))
        return seen

    for group in case.parallel:
        for a in group:
            for b in group:
                if a != b and a in ancestors(b):
                    return outcome("serialized", "%s now waits for %s" % (b, a))
    return outcome("ok")


def run_run(kale, case, nb, params):
    args = ["run", nb.name, "--json", "--quiet", "--ignore-gpu-limits"]
    for k, v in params.items():
        args += ["-p", "%s=%s" % (k, cli_text(v))]
    code, stdout, stderr = kale(args, nb.parent)
    if code == 2:
        return refusal(case, stderr)
    try:
        doc = json.loads(stdout)
    except ValueError:
        return outcome("error", first_error_line(stderr) or "exit %d" % code)
    if doc.get("status") != "succeeded":
        err = doc.get("error") or {}
        return outcome("error", "step `%s`: %s: %s" % (err.get("step"), err.get("type"), err.get("message"))
                       if err else first_error_line(stderr))
    return outcome("ran", metrics=doc.get("metrics", {}))


def run_tune(kale, case, nb, params, info, experiment):
    parameters, metrics = info
    if not parameters:
        return outcome("n/a", "no pipeline parameters to tune")
    if not metrics:
        return outcome("n/a", "no pipeline metrics to tune against")
    values = dict(parameters)
    values.update(params)
    # A Katib search space of one point: every parameter a one-value categorical list
    # (a --space file rather than --param flags, whose lists split at commas).
    space = nb.parent.parent / ("%s-%s.space.json" % (nb.parent.name, experiment))
    space.write_text(json.dumps([
        {"name": k, "parameterType": "categorical", "feasibleSpace": {"list": [cli_text(v)]}}
        for k, v in values.items()]))
    args = ["tune", nb.name, "--name", experiment, "--objective", metrics[0], "--space", str(space),
            "--algorithm", "grid", "--max-trials", "1", "--parallel", "1", "--ignore-gpu-limits", "--json"]
    code, _, stderr = kale(args, nb.parent)
    if code == 2:
        return refusal(case, stderr)
    code, stdout, stderr2 = kale(["experiments", "show", experiment, "--json"], nb.parent)
    if code != 0:
        return outcome("error", first_error_line(stderr) or first_error_line(stderr2))
    trials = json.loads(stdout)["trials"]
    if len(trials) != 1:
        return outcome("error", "%d trials instead of one" % len(trials))
    trial = trials[0]
    if trial["status"] != "succeeded":
        return outcome("error", trial.get("error") or trial["status"])
    return outcome("ran", metrics=trial["metrics"])


def compile_kfp(kale, case, nb, out):
    code, _, stderr = kale(["compile", nb.name, "--target", "kfp", "-o", str(out)], nb.parent)
    if code == 2:
        return refusal(case, stderr)
    if code != 0:
        return outcome("error", first_error_line(stderr))
    return None


def run_kfp_harness(kfp_python, step_python, runs, scratch):
    """One kfp.local session over every run: [(pipeline, image_dir, params)] -> results."""
    scratch.mkdir(parents=True, exist_ok=True)
    plan = {"pipeline_root": str(scratch / "root"),
            "runs": [{"pipeline": str(p), "cwd": str(d), "params": params, "isolate_tasks": True}
                     for p, d, params in runs]}
    (scratch / "plan.json").write_text(json.dumps(plan))
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    p = subprocess.run([kfp_python, str(KFP_HARNESS), str(scratch / "plan.json"),
                        str(scratch / "out.json"), "--step-python", step_python],
                       env=env, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S * 4)
    if p.returncode != 0:
        raise RuntimeError("kfp.local harness failed:\n%s\n%s" % (p.stderr[-4000:], p.stdout[-4000:]))
    return json.loads((scratch / "out.json").read_text())["runs"]


def kfp_outcome(run):
    if run["status"] == "succeeded":
        return outcome("ran", metrics=run["metrics"])
    for name, task in run["tasks"].items():
        if task["status"] == "failed":
            lines = [l.strip() for l in task["log"].splitlines()]
            located = [l for l in lines if l.startswith("kale: ")]
            if located:
                return outcome("error", "%s: %s" % (name, located[-1][len("kale: "):]))
            tail = [l for l in lines if l]
            return outcome("error", "%s: %s" % (name, tail[-1] if tail else run["error"]))
    return outcome("error", run["error"] or "failed")


# ---------------------------------------------------------------- the suite

def run_suite(args, cases, work, timings):
    step_python = python_without_dill(args.python, work / "python-without-dill")
    kale = Kale(args.kale, step_python)
    missing = missing_modules(step_python, {m for c in cases for m in c.requires})
    results = {}  # (case, pset label, target) -> outcome
    infos = {}
    truths = {}

    runnable = []
    for case in cases:
        if set(case.requires) & missing:
            why = "needs %s, which this Python lacks" % ", ".join(sorted(set(case.requires) & missing))
            for label, _ in case.param_sets():
                for t in ("truth",) + TARGETS:
                    results[(case.name, label, t)] = outcome("skipped", why)
            continue
        runnable.append(case)
        res = run_validate(kale, case, work / case.name)
        infos[case.name] = nbinfo.read(case.notebook)
        for label, _ in case.param_sets():
            results[(case.name, label, "validate")] = res

    def params_of(case, overrides):
        return typed(infos[case.name][0], overrides)

    # The work comes in units that two workers take in turn (two lanes for two cores):
    # the truths (one process, a kernel per job), the compiled pipelines (one kfp.local
    # session for every run) and, per case, kale run then kale tune.
    def kfp_unit():
        runs, keys = [], []
        for case in runnable:
            nb = case.copy_folder(work / case.name / "kfp-image")
            yaml = work / case.name / "pipeline.yaml"
            refused = compile_kfp(kale, case, nb, yaml)
            for label, overrides in case.param_sets():
                if refused:
                    results[(case.name, label, "kfp")] = refused
                else:
                    runs.append((yaml, nb.parent, params_of(case, overrides)))
                    keys.append((case.name, label))
        if runs:
            for key, run in zip(keys, run_kfp_harness(args.kfp_python, step_python, runs, work / "kfp")):
                results[key + ("kfp",)] = kfp_outcome(run)

    def truth_unit():
        jobs = []
        for case in runnable:
            if case.expect != "match":
                continue
            for i, (label, overrides) in enumerate(case.param_sets()):
                nb = case.copy_folder(work / case.name / ("truth-%d" % i))
                jobs.append({"id": "%s\t%s" % (case.name, label), "notebook": str(nb),
                             "workdir": str(nb.parent), "overrides": overrides})
        if jobs:
            (work / "truth-jobs.json").write_text(json.dumps(jobs))
            p = subprocess.run([step_python, str(TRUTH), str(work / "truth-jobs.json"),
                                str(work / "truth-out.json")], capture_output=True, text=True,
                               timeout=COMMAND_TIMEOUT_S * 4)
            if p.returncode != 0:
                raise RuntimeError("truth.py failed:\n%s" % p.stderr[-4000:])
            for key, res in json.loads((work / "truth-out.json").read_text()).items():
                truths[tuple(key.split("\t"))] = res

    def local_unit(case):
        for target in ("run", "tune"):
            if target not in args.targets:
                continue
            # The parameter sets run in order in one copy of the folder, sharing the
            # target's step cache, as a user's successive runs (or tunes) would.
            nb = case.copy_folder(work / case.name / target)
            for i, (label, overrides) in enumerate(case.param_sets()):
                params = params_of(case, overrides)
                started = time.monotonic()
                if target == "run":
                    res = run_run(kale, case, nb, params)
                else:
                    res = run_tune(kale, case, nb, params, infos[case.name], "differential-%d" % i)
                res["seconds"] = time.monotonic() - started
                results[(case.name, label, target)] = res

    units = [("truth", truth_unit)]
    if "kfp" in args.targets:
        units.append(("kfp", kfp_unit))
    units += [("run and tune", (lambda c: lambda: local_unit(c))(c)) for c in runnable
              if {"run", "tune"} & set(args.targets)]
    queue = list(reversed(units))
    lock = threading.Lock()
    failures = []

    def worker():
        while True:
            with lock:
                if not queue or failures:
                    return
                name, unit = queue.pop()
            started = time.monotonic()
            try:
                unit()
            except BaseException as e:  # re-raised in the main thread
                with lock:
                    failures.append(e)
            finally:
                with lock:
                    timings[name] = timings.get(name, 0.0) + time.monotonic() - started

    workers = [threading.Thread(target=worker) for _ in range(WORKERS)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    if failures:
        raise failures[0]

    # Compare with the truth.
    for case in runnable:
        for label, _ in case.param_sets():
            truth = truths.get((case.name, label))
            if case.expect == "match":
                results[(case.name, label, "truth")] = (
                    outcome("ok", metrics=truth["metrics"]) if truth and truth["status"] == "ok"
                    else outcome("error", truth["error"] if truth else "not run"))
            else:
                results[(case.name, label, "truth")] = outcome("n/a", "not run: the case must be refused")
            for target in ("run", "tune", "kfp"):
                res = results.get((case.name, label, target))
                if res is None:
                    results[(case.name, label, target)] = outcome("n/a", "target not selected")
                    continue
                if res["kind"] != "ran":
                    continue
                if case.expect == "refused":
                    res.update(outcome("accepted", "ran and succeeded", res["metrics"]))
                elif truth is None or truth["status"] != "ok":
                    res.update(outcome("error", "no truth to compare with", res["metrics"]))
                else:
                    diff = compare(truth["metrics"], res["metrics"], case.random)
                    res.update(outcome("DIVERGE", diff, res["metrics"]) if diff
                               else outcome("match", "", res["metrics"]))
    return results


# ---------------------------------------------------------------- reporting

def summary_kind(case, target, results):
    """What a case does on a target over all its parameter sets: 'pass', or the kinds
    of the sets that do not pass, sorted and joined with '+'."""
    kinds = {results[(case.name, label, target)]["kind"] for label, _ in case.param_sets()}
    failing = sorted(k.lower() for k in kinds if not passes(case, target, k) and k != "n/a")
    return "+".join(failing) if failing else "pass"


def table(cases, results, targets):
    cols = ("truth",) + targets
    rows = [("case", "class", "params") + cols]
    for case in cases:
        for i, (label, _) in enumerate(case.param_sets()):
            cells = []
            for t in cols:
                kind = results[(case.name, label, t)]["kind"]
                if case.expect == "refused" and kind == "refused":
                    kind = "refused ✓"
                cells.append(kind)
            klass = ("corpus" if case.corpus else str(case.klass or "-")) if i == 0 else ""
            rows.append((case.name if i == 0 else "", klass, label) + tuple(cells))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def details(cases, results, targets):
    lines = []
    for case in cases:
        for label, _ in case.param_sets():
            for t in ("truth",) + targets:
                res = results[(case.name, label, t)]
                if res["kind"] in ("match", "ok", "n/a") or not res["detail"]:
                    continue
                if res["kind"] == "skipped" and (label != "default" or t != "truth"):
                    continue
                detail = res["detail"] if len(res["detail"]) <= 240 else res["detail"][:239] + "…"
                lines.append("%s [%s] %s: %s: %s" % (case.name, label, t, res["kind"], detail))
    return "\n".join(lines)


def totals(cases, results, targets):
    lines = []
    for t in targets:
        counts = {}
        for case in cases:
            for label, _ in case.param_sets():
                k = results[(case.name, label, t)]["kind"]
                if case.expect == "refused" and k == "refused":
                    k = "refused as expected"
                counts[k] = counts.get(k, 0) + 1
        lines.append("%-8s %s" % (t, ", ".join("%d %s" % (n, k) for k, n in sorted(counts.items(), key=lambda x: -x[1]))))
    return "\n".join(lines)


def check_known(cases, results, targets):
    known = tomllib.loads(KNOWN.read_text(encoding="utf-8")) if KNOWN.exists() else {}
    problems = []
    for case in cases:
        entries = known.get(case.name, {})
        for t in targets:
            listed = entries.get(t)
            kinds = {results[(case.name, label, t)]["kind"] for label, _ in case.param_sets()}
            if kinds <= {"skipped", "n/a"}:
                continue
            actual = summary_kind(case, t, results)
            if listed is None and actual != "pass":
                problems.append("%s × %s: %s, which known_divergences.toml does not list"
                                % (case.name, t, actual))
            elif listed is not None and actual == "pass":
                problems.append("%s × %s: passes now; delete `%s = \"%s\"` from [%s] in "
                                "known_divergences.toml" % (case.name, t, t, listed, case.name))
            elif listed is not None and listed != actual:
                problems.append("%s × %s: %s, but known_divergences.toml says %s"
                                % (case.name, t, actual, listed))
        for t in entries:
            if t not in TARGETS:
                problems.append("%s: unknown target `%s` in known_divergences.toml" % (case.name, t))
    unknown = sorted(set(known) - {c.name for c in load_cases(())} - {c.name for c in load_corpus(())})
    for name in unknown:
        problems.append("known_divergences.toml lists `%s`, which is no case" % name)
    return problems


def known_toml(cases, results, targets):
    """known_divergences.toml's entries for this run's outcomes (for review, not written)."""
    lines = []
    for case in cases:
        entries = [(t, summary_kind(case, t, results)) for t in targets]
        entries = [(t, k) for t, k in entries if k != "pass"
                   and not {results[(case.name, label, t)]["kind"] for label, _ in case.param_sets()} <= {"skipped", "n/a"}]
        if entries:
            lines.append("[%s]" % (case.name if re.fullmatch(r"[A-Za-z0-9_-]+", case.name) else '"%s"' % case.name))
            lines.extend('%s = "%s"' % e for e in entries)
            lines.append("")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kale", required=True, help="the kale binary")
    ap.add_argument("--python", default=str(ROOT / ".venv" / "bin" / "python"),
                    help="the test Python (scripts/python-env), minus dill for the steps")
    ap.add_argument("--kfp-python", default=str(ROOT / ".venv-validators" / "bin" / "python"),
                    help="a Python with kfp (scripts/validators-env)")
    ap.add_argument("--case", action="append", default=[], help="run only these cases (repeatable)")
    ap.add_argument("--no-corpus", action="store_true", help="leave out the corpus notebooks")
    ap.add_argument("--targets", default="run,tune,kfp", help="comma-separated, of run,tune,kfp")
    ap.add_argument("--check", action="store_true",
                    help="exit 1 unless every case does what known_divergences.toml says")
    ap.add_argument("--json", help="write every outcome (with metrics) to this file")
    ap.add_argument("--print-known", action="store_true",
                    help="print what known_divergences.toml would list for this run's outcomes")
    ap.add_argument("--keep", help="work in this directory and keep it (default: a temporary one)")
    args = ap.parse_args()
    args.targets = tuple(t for t in args.targets.split(",") if t)
    if set(args.targets) - {"run", "tune", "kfp"}:
        ap.error("--targets takes run, tune, kfp")
    args.kale = str(Path(args.kale).resolve())
    targets = ("validate",) + args.targets

    cases = load_cases(set(args.case))
    if not args.no_corpus:
        cases += load_corpus(set(args.case))
    if args.case and not cases:
        ap.error("no case named %s" % ", ".join(args.case))
    started = time.monotonic()
    timings = {}
    if args.keep:
        work = Path(args.keep).resolve()
        work.mkdir(parents=True, exist_ok=True)
        results = run_suite(args, cases, work, timings)
    else:
        with tempfile.TemporaryDirectory(prefix="kale-differential-") as tmp:
            results = run_suite(args, cases, Path(tmp), timings)
    elapsed = time.monotonic() - started

    runs = sum(len(c.param_sets()) for c in cases)
    print("Differential suite: %d notebooks (%d cases, %d from the corpus), %d parameter sets, "
          "targets %s; %.0f s (%s)" % (len(cases), sum(not c.corpus for c in cases),
                                       sum(c.corpus for c in cases), runs, ", ".join(targets), elapsed,
                                       ", ".join("%s %.0f s" % kv for kv in sorted(timings.items()))))
    print()
    print(table(cases, results, targets))
    print()
    print(totals(cases, results, targets))
    text = details(cases, results, targets)
    if text:
        print()
        print("Details:")
        print(text)
    if args.json:
        Path(args.json).write_text(json.dumps(
            [{"case": c, "params": p, "target": t, **r} for (c, p, t), r in results.items()], indent=1))
    if args.print_known:
        print()
        print(known_toml(cases, results, targets))
    if args.check:
        problems = check_known(cases, results, targets)
        print()
        if problems:
            print("Differences from known_divergences.toml:")
            print("\n".join("  " + p for p in problems))
            sys.exit(1)
        print("Every case does what known_divergences.toml says.")


if __name__ == "__main__":
    main()
