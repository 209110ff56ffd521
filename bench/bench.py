#!/usr/bin/env python3
"""kale against the alternatives, both sides in the same run, alternating.

Called by `bench/run`, which prepares the interpreters and binaries; see there.
Standard library only (the alternatives run in their own venv, as subprocesses).

Measurements (each repetition runs kale, then the alternative, then the next repetition):
  compile  kubeflow-kale `kale --nb NB ...` (writes KFP YAML offline) vs `kale compile NB --target kfp`
           on every example notebook of the Kale 2.3 corpus that Kale 2.3 accepts
  tune     12-trial random search over (x, y) of a notebook whose parameter-independent step
           sleeps 0.5 s: `kale tune` vs an Optuna study whose objective runs papermill
  run      the 4-step candies_sharing example: `kale run` vs Kale's generated pipeline run by
           the KFP SDK's local SubprocessRunner (compile + run, as a user would do it)
  scale    `kale inspect` on a generated 500-cell / 200-step notebook; `kale experiments show`
           on an experiment with 10 000 trials; sampler ask+tell at 1000 trials (ours and Optuna's)

Every timing is the wall time of the whole command (process start included) unless noted.
Reported: medians over the repetitions, and the ratio alternative / kale.
"""
import argparse
import json
import os
import platform
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
HEADLINE = os.path.join("base", "candies_sharing.ipynb")
DEFAULT_CORPUS = os.path.join(os.path.dirname(ROOT), "shared", "corpus", "kale-tests",
                              "pypi_kubeflow-kale-2.3.0", "examples")


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def timed(cmd, cwd=None, env=None, check=True):
    t0 = time.perf_counter()
    p = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if check and p.returncode != 0:
        raise RuntimeError("command failed (%d): %s\n%s\n%s" % (
            p.returncode, " ".join(cmd), p.stdout[-2000:], p.stderr[-4000:]))
    return wall, p


def timed_cpu(cmd, env=None):
    """(wall, CPU seconds of the child) of a command that must succeed."""
    c0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall, _ = timed(cmd, env=env)
    c1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (c1.ru_utime + c1.ru_stime) - (c0.ru_utime + c0.ru_stime)


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def fmt_s(x):
    if x != x:
        return "-"
    if x >= 10:
        return "%.1f s" % x
    if x >= 1:
        return "%.2f s" % x
    if x >= 0.01:
        return "%.0f ms" % (x * 1e3)
    if x >= 0.001:
        return "%.1f ms" % (x * 1e3)
    if x >= 0.0000005:
        return "%.3f ms" % (x * 1e3)
    return "< 0.001 ms"


def fmt_ms(x):
    return "%.3f ms" % x if x < 1 else "%.2f ms" % x


def code_cell(src, tags=()):
    return {"cell_type": "code", "metadata": {"tags": list(tags)}, "source": src,
            "outputs": [], "execution_count": None}


def notebook(cells, metadata=None):
    meta = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
            "language_info": {"name": "python"}}
    meta.update(metadata or {})
    for i, c in enumerate(cells):
        c["id"] = "c%04d" % i
    return {"cells": cells, "metadata": meta, "nbformat": 4, "nbformat_minor": 5}


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=1)


class Bench:
    def __init__(self, args):
        self.a = args
        self.tmp = tempfile.mkdtemp(prefix="kale-bench-")
        self.env = dict(os.environ, KALE_PYTHON=args.python)
        self.alt_bin = os.path.dirname(args.alt_python)
        self.alt_kale = os.path.join(self.alt_bin, "kale")
        # The alternative's tools must find their venv first (papermill's kernel, kfp).
        self.alt_env = dict(os.environ, PATH=self.alt_bin + os.pathsep + os.environ.get("PATH", ""),
                            VIRTUAL_ENV=os.path.dirname(self.alt_bin))
        self.alt_env.pop("KALE_PYTHON", None)
        self.rows = []     # (measurement, kale, alternative, ratio, target, met)
        self.notes = []
        self.n = 0

    def fresh(self, name):
        self.n += 1
        d = os.path.join(self.tmp, "%03d-%s" % (self.n, name))
        os.makedirs(d)
        return d

    def cleanup(self):
        if not self.a.keep:
            shutil.rmtree(self.tmp, ignore_errors=True)
        else:
            log("kept scratch directory %s" % self.tmp)

    # ---------------------------------------------------------------- compile
    def alt_compile(self, nb, name):
        d = self.fresh("alt-compile")
        wall, p = timed([self.alt_kale, "--nb", nb, "--pipeline_name", name,
                         "--experiment_name", "kale-anchor"], cwd=d, env=self.alt_env, check=False)
        ok = p.returncode == 0 and os.path.exists(os.path.join(d, ".kale", name + ".pipeline.yaml"))
        return wall, ok, (p.stderr.strip().splitlines() or ["exit %d" % p.returncode])[-1]

    def kale_compile(self, nb):
        d = self.fresh("kale-compile")
        out = os.path.join(d, "pipeline.yaml")
        wall, p = timed([self.a.kale, "compile", nb, "--target", "kfp", "-o", out],
                        env=self.env, check=False)
        ok = p.returncode == 0 and os.path.exists(out) and os.path.getsize(out) > 0
        errors = [l for l in p.stderr.splitlines() if l.startswith("error")] or ["exit %d" % p.returncode]
        return wall, ok, errors[0].replace(nb, os.path.basename(nb)) + (
            " (+%d more)" % (len(errors) - 1) if len(errors) > 1 else "")

    def compile(self):
        # A private copy: neither tool may leave files beside the shared corpus.
        corpus = os.path.join(self.tmp, "corpus")
        shutil.copytree(self.a.corpus, corpus)
        notebooks = []
        for dirpath, _, files in os.walk(corpus):
            for f in sorted(files):
                if f.endswith(".ipynb") and ".ipynb_checkpoints" not in dirpath:
                    notebooks.append(os.path.join(dirpath, f))
        notebooks.sort()
        if self.a.compile_only:
            keep = self.a.compile_only.split(",")
            notebooks = [n for n in notebooks if any(k in n for k in keep)]
        results = {}
        for nb in notebooks:
            rel = os.path.relpath(nb, corpus)
            name = "bench-" + os.path.splitext(os.path.basename(nb))[0].replace("_", "-").lower()
            ours, theirs = [], []
            log("compile %s" % rel)
            reps = self.a.reps if rel == HEADLINE else (self.a.compile_reps or self.a.reps)
            for rep in range(reps):
                w, ok, err = self.kale_compile(nb)
                if not ok:
                    _, alt_ok, alt_err = self.alt_compile(nb, name)
                    results[rel] = ("kale rejects it (%s): %s" % (
                        "Kale 2.3 accepts it" if alt_ok else "Kale 2.3 fails too: " + alt_err[:100], err),
                        None, None, 0)
                    break
                ours.append(w)
                w, ok, err = self.alt_compile(nb, name)
                if not ok:
                    results[rel] = ("Kale 2.3 rejects: " + err, None, None, 0)
                    break
                theirs.append(w)
            else:
                results[rel] = (None, med(ours), med(theirs), reps)
        accepted = {k: v for k, v in results.items() if v[0] is None}
        rejected = {k: v[0] for k, v in results.items() if v[0] is not None}
        self.compile_results = (accepted, rejected)
        for rel, (_, ours, theirs, reps) in sorted(accepted.items(), key=lambda kv: kv[0] != HEADLINE):
            ratio = theirs / ours
            self.rows.append(("Compile `%s` to KFP YAML%s" % (rel, "" if reps == self.a.reps else " (%d rep)" % reps),
                              ours, theirs, ratio, "≥ 100×", ratio >= 100))
        if accepted:
            ratios = [v[2] / v[1] for v in accepted.values()]
            self.notes.append("Compile: %d notebooks both accept; ratio min %.0f×, median %.0f×." % (
                len(accepted), min(ratios), med(ratios)))
        for rel, why in sorted(rejected.items()):
            self.notes.append("Compile: `%s` left out — %s" % (rel, why[:200]))

    # ---------------------------------------------------------------- tune
    TUNE_BODY = [
        ("import time\nimport math", ["imports"], []),
        ("x = 0.0\ny = 1", ["pipeline-parameters"], ["parameters"]),
        ("time.sleep(0.5)\ntable = [math.sin(i) for i in range(10000)]", ["step:prepare"], []),
        ("score = -(x - 1.5) ** 2 - abs(y - 3) + sum(table[:10]) * 0", ["step:train", "prev:prepare"], []),
        ("print(score)", ["pipeline-metrics"], []),
    ]

    def tune_notebooks(self, d):
        kale_nb = os.path.join(d, "tune.ipynb")
        alt_nb = os.path.join(d, "tune_papermill.ipynb")
        write_json(kale_nb, notebook([code_cell(s, k) for s, k, _ in self.TUNE_BODY]))
        write_json(alt_nb, notebook([code_cell(s, p) for s, _, p in self.TUNE_BODY]))
        return kale_nb, alt_nb

    def tune(self):
        trials, ours, theirs, ours_par = self.a.trials, [], [], []
        for rep in range(self.a.reps):
            log("tune rep %d" % (rep + 1))
            for parallel, sink in ((1, ours), (2, ours_par)):
                d = self.fresh("kale-tune")
                nb, _ = self.tune_notebooks(d)
                w, p = timed([self.a.kale, "tune", nb, "--objective", "score", "--algorithm", "random",
                              "--seed", str(rep + 1), "--param", "x=double:0..3", "--param", "y=int:0..6",
                              "--max-trials", str(trials), "--parallel", str(parallel),
                              "--name", "bench", "--json"], env=self.env)
                res = json.loads(p.stdout)
                if res["trials"]["succeeded"] != trials:
                    raise RuntimeError("kale tune: %d of %d trials succeeded: %s" % (
                        res["trials"]["succeeded"], trials, p.stdout[:1000]))
                sink.append(w)
            d = self.fresh("alt-tune")
            _, nb = self.tune_notebooks(d)
            w, p = timed([self.a.alt_python, os.path.join(HERE, "alt_optuna_papermill.py"), nb,
                          str(trials), str(rep + 1), d], cwd=d, env=self.alt_env)
            if json.loads(p.stdout.strip().splitlines()[-1])["trials"] != trials:
                raise RuntimeError("optuna finished fewer trials: " + p.stdout)
            theirs.append(w)
        r = med(theirs) / med(ours)
        self.rows.append(("Tune: %d-trial random search, 0.5 s shared step (sequential)" % trials,
                          med(ours), med(theirs), r, "≥ 10×", r >= 10))
        r2 = med(theirs) / med(ours_par)
        self.rows.append(("Tune: same, `kale tune --parallel 2` vs the same sequential Optuna study",
                          med(ours_par), med(theirs), r2, "-", None))
        self.tune_raw = (ours, ours_par, theirs)

    # ---------------------------------------------------------------- run
    def run(self):
        src = os.path.join(self.a.corpus, "base", "candies_sharing.ipynb")
        ours, theirs, theirs_compile, theirs_run = [], [], [], []
        for rep in range(self.a.run_reps or self.a.reps):
            log("run rep %d" % (rep + 1))
            d = self.fresh("kale-run")
            nb = os.path.join(d, "candies_sharing.ipynb")
            shutil.copy(src, nb)
            w, _ = timed([self.a.kale, "run", nb, "--quiet"], env=self.env)
            ours.append(w)
            d = self.fresh("alt-run")
            nb = os.path.join(d, "candies_sharing.ipynb")
            shutil.copy(src, nb)
            wc, _ = timed([self.alt_kale, "--nb", nb, "--pipeline_name", "candies-sharing",
                           "--experiment_name", "kale-anchor"], cwd=d, env=self.alt_env)
            wr, p = timed([self.a.alt_python, os.path.join(HERE, "alt_kfp_local.py"),
                           os.path.join(d, ".kale", "candies-sharing.kale.py"),
                           os.path.join(d, "local_outputs")], cwd=d, env=self.alt_env, check=False)
            if p.returncode != 0 or "SUCCESS" not in (p.stdout + p.stderr):
                raise RuntimeError("kfp.local run failed:\n" + (p.stdout + p.stderr)[-4000:])
            theirs_compile.append(wc)
            theirs_run.append(wr)
            theirs.append(wc + wr)
        r = med(theirs) / med(ours)
        self.rows.append(("Local run of `candies_sharing` (4 steps)", med(ours), med(theirs), r,
                          "≥ 50×", r >= 50))
        self.notes.append("Local run: Kale = `kale --nb` compile (median %s) + kfp.local SubprocessRunner "
                          "run of the generated pipeline (median %s); against the run part alone the "
                          "ratio is %.0f×." % (fmt_s(med(theirs_compile)), fmt_s(med(theirs_run)),
                                               med(theirs_run) / med(ours)))

    # ---------------------------------------------------------------- scale
    def big_notebook(self, path, steps=200, cells=500):
        out = [code_cell("import math\nimport random", ["imports"]),
               code_cell("alpha = 0.5\nn = 3\nlabel = 'x'", ["pipeline-parameters"]),
               code_cell("def f(a, b):\n    return math.sqrt(abs(a * b)) + 1", ["functions"])]
        extra = cells - len(out) - steps - 1  # continuation cells spread over the steps
        for i in range(steps):
            tags = ["step:s%d" % i]
            if i == 0:
                src = "v0 = [alpha * k for k in range(n)]\n"
            else:
                tags.append("prev:s%d" % (i - 1))
                src = "v%d = [f(a, %d) for a in v%d]\n" % (i, i, i - 1)
                if i >= 3 and i % 3 == 0:
                    tags.append("prev:s%d" % (i - 3))
                    src += "v%d = v%d + v%d[:1]\n" % (i, i, i - 3)
            if i == steps - 1:
                src += "total = sum(v%d)\n" % i
            out.append(code_cell(src, tags))
            for j in range(extra // steps + (1 if i < extra % steps else 0)):
                out.append(code_cell("w%d_%d = len(v%d) + %d\nprint(label, w%d_%d)" % (i, j, i, j, i, j)))
        out.append(code_cell("print(total)", ["pipeline-metrics"]))
        assert len(out) == cells, len(out)
        write_json(path, notebook(out, {"kubeflow_notebook": {"pipeline_name": "big", "experiment_name": "big"}}))

    def scale(self):
        # inspect on 500 cells / 200 steps
        d = self.fresh("scale-inspect")
        nb = os.path.join(d, "big.ipynb")
        self.big_notebook(nb)
        _, p = timed([self.a.kale, "inspect", nb, "--json"], env=self.env)
        info = json.loads(p.stdout)
        nsteps = len(info.get("steps", []))
        if nsteps != 200:
            raise RuntimeError("inspect found %d steps, expected 200" % nsteps)
        runs = [timed_cpu([self.a.kale, "inspect", nb], env=self.env) for _ in range(max(10, self.a.reps))]
        t = med([w for w, _ in runs])
        self.notes.append("`kale inspect` on the 500-cell notebook: median CPU time %s (wall %s, %d runs)." % (
            fmt_s(med([c for _, c in runs])), fmt_s(t), len(runs)))
        self.rows.append(("`kale inspect`, 500 cells / 200 steps", t, None, None, "< 100 ms", t < 0.1))

        # experiments show with 10 000 trials: a real 3-trial tune, then its trials copied
        d = self.fresh("scale-show")
        nb = os.path.join(d, "tiny.ipynb")
        write_json(nb, notebook([
            code_cell("x = 0.0\ny = 1", ["pipeline-parameters"]),
            code_cell("score = -(x - 1.5) ** 2 - abs(y - 3)", ["step:train"]),
            code_cell("print(score)", ["pipeline-metrics"])]))
        timed([self.a.kale, "tune", nb, "--objective", "score", "--algorithm", "random", "--seed", "1",
               "--param", "x=double:0..3", "--param", "y=int:0..6", "--max-trials", "3",
               "--parallel", "1", "--name", "big", "--json"], env=self.env)
        db = os.path.join(d, ".kale", "kale.db")
        con = sqlite3.connect(db)
        (eid,) = con.execute("SELECT id FROM experiments WHERE name = 'big'").fetchone()
        cols = [r[1] for r in con.execute("PRAGMA table_info(trials)")]
        template = dict(zip(cols, con.execute(
            "SELECT * FROM trials WHERE experiment_id = ? AND status = 'succeeded' ORDER BY number LIMIT 1",
            (eid,)).fetchone() or con.execute(
            "SELECT * FROM trials WHERE experiment_id = ? ORDER BY number LIMIT 1", (eid,)).fetchone()))
        (have,) = con.execute("SELECT COUNT(*) FROM trials WHERE experiment_id = ?", (eid,)).fetchone()
        rows = []
        for k in range(have, self.a.show_trials):
            r = dict(template)
            x, y = (k * 0.6180339887) % 3.0, k % 7
            r.update(number=k, params=json.dumps({"x": x, "y": y}), value=-(x - 1.5) ** 2 - abs(y - 3),
                     metrics=json.dumps({"score": -(x - 1.5) ** 2 - abs(y - 3)}),
                     started_at=template["started_at"] + k, finished_at=template["started_at"] + k + 0.05)
            rows.append(tuple(r[c] for c in cols))
        con.executemany("INSERT INTO trials (%s) VALUES (%s)" % (",".join(cols), ",".join("?" * len(cols))), rows)
        con.execute("UPDATE experiments SET max_trials = ? WHERE id = ?", (self.a.show_trials, eid))
        con.commit()
        (total,) = con.execute("SELECT COUNT(*) FROM trials WHERE experiment_id = ?", (eid,)).fetchone()
        con.close()
        _, p = timed([self.a.kale, "experiments", "show", "big", "-C", d], env=self.env)
        lines = p.stdout.count("\n")
        runs = [timed_cpu([self.a.kale, "experiments", "show", "big", "-C", d], env=self.env)
                for _ in range(max(10, self.a.reps))]
        t = med([w for w, _ in runs])
        self.notes.append("`kale experiments show` with %d trials: median CPU time %s (wall %s, %d runs)." % (
            total, fmt_s(med([c for _, c in runs])), fmt_s(t), len(runs)))
        self.rows.append(("`kale experiments show`, %d trials (%d lines out)" % (total, lines), t, None, None,
                          "< 200 ms", t < 0.2))

        # sampler ask+tell at 1000 trials: ours (kale-search example), Optuna's
        ours = {}
        for rep in range(self.a.reps):
            _, p = timed([self.a.search_bench, "overhead", "random,tpe"])
            for line in p.stdout.splitlines():
                cells = [c.strip() for c in line.strip().strip("|").split("|")]
                if len(cells) == 5 and cells[1] in ("random", "tpe") and cells[0] in ("branin2d", "hartmann6d"):
                    ours.setdefault((cells[0], cells[1]), []).append(float(cells[4]))
        theirs = {}
        for rep in range(self.a.optuna_reps):
            log("optuna ask+tell rep %d" % (rep + 1))
            _, p = timed([self.a.alt_python, os.path.join(HERE, "alt_optuna_asktell.py"), "tpe", "1000",
                          str(rep)], env=self.alt_env)
            for k, v in json.loads(p.stdout).items():
                theirs.setdefault((k, "tpe"), []).append(v)
        for (space, sampler), v in sorted(ours.items()):
            t = med(v)
            alt = med(theirs[(space, sampler)]) if (space, sampler) in theirs else None
            self.rows.append(("Sampler ask+tell at 1000 trials, %s on %s" % (sampler, space), t / 1e3,
                              alt / 1e3 if alt is not None else None,
                              alt / t if alt is not None else None, "< 1 ms", t < 1.0))

    # ---------------------------------------------------------------- report
    def machine(self):
        def first(path, key):
            try:
                for line in open(path):
                    if line.startswith(key):
                        return line.split(":", 1)[1].strip() if ":" in line else line.split("=", 1)[1].strip('"\n')
            except OSError:
                return "?"
            return "?"
        mem_kb = first("/proc/meminfo", "MemTotal").split()[0]
        pyv = lambda py: subprocess.run([py, "-c", "import sys; print(sys.version.split()[0])"],
                                        capture_output=True, text=True).stdout.strip()
        alt_versions = subprocess.run(
            [self.a.alt_python, "-c", "import importlib.metadata as m; print(', '.join('%s %s' % (p, m.version(p)) "
             "for p in ('kubeflow-kale', 'kfp', 'papermill', 'optuna', 'ipykernel')))"],
            capture_output=True, text=True).stdout.strip()
        kale_v = subprocess.run([self.a.kale, "--version"], capture_output=True, text=True).stdout.strip()
        rev = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True).stdout.strip()
        return ("%d cores (%s), %.0f GiB RAM, %s (%s %s), Python %s; %s (git %s); %s" % (
            os.cpu_count(), first("/proc/cpuinfo", "model name"), int(mem_kb) / 2 ** 20,
            first("/etc/os-release", "PRETTY_NAME"), platform.system(), platform.release(),
            pyv(self.a.python), kale_v, rev, alt_versions))

    def report(self, started, load0):
        out = []
        out.append("Machine: " + self.machine())
        out.append("")
        out.append("Repetitions: %d (local run: %d; other corpus notebooks: %d), alternating (kale, "
                   "alternative, kale, ...); medians; wall time of the whole command; load average (1 min) "
                   "%.2f at start, %.2f at end; whole run %.0f s." % (
                       self.a.reps, self.a.run_reps or self.a.reps, self.a.compile_reps or self.a.reps,
                       load0, os.getloadavg()[0], time.time() - started))
        out.append("")
        out.append("| measurement | kale | alternative | ratio | target | met |")
        out.append("|---|---|---|---|---|---|")
        for name, ours, theirs, ratio, target, met in self.rows:
            out.append("| %s | %s | %s | %s | %s | %s |" % (
                name, fmt_s(ours), fmt_s(theirs) if theirs is not None else "-",
                "%.0f×" % ratio if ratio is not None and ratio >= 10 else
                ("%.1f×" % ratio if ratio is not None else "-"),
                target, {True: "yes", False: "**no**", None: "-"}[met]))
        out.append("")
        for n in self.notes:
            out.append("- " + n)
        return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kale", required=True, help="our kale binary")
    ap.add_argument("--python", required=True, help="interpreter for kale's steps (KALE_PYTHON)")
    ap.add_argument("--alt-python", required=True, help="python of the alternatives' venv")
    ap.add_argument("--search-bench", required=True, help="kale-search's bench example binary")
    ap.add_argument("--corpus", default=DEFAULT_CORPUS, help="Kale 2.3 examples directory")
    ap.add_argument("--reps", type=int, default=3, help="repetitions per measurement (default 3)")
    ap.add_argument("--compile-reps", type=int, default=0,
                    help="repetitions for the compile of corpus notebooks other than candies_sharing "
                         "(default: --reps; each Kale compile takes 6+ s)")
    ap.add_argument("--run-reps", type=int, default=0,
                    help="repetitions of the local-run measurement (default: --reps; Kale's side takes minutes)")
    ap.add_argument("--trials", type=int, default=12, help="tuning trials (default 12)")
    ap.add_argument("--show-trials", type=int, default=10000)
    ap.add_argument("--optuna-reps", type=int, default=1, help="Optuna ask+tell repetitions (default 1)")
    ap.add_argument("--only", default="compile,tune,run,scale", help="comma-separated measurements")
    ap.add_argument("--compile-only", default="", help="only corpus notebooks whose path contains one of these")
    ap.add_argument("--out", default=os.path.join(HERE, "results.md"), help="also write the report here")
    ap.add_argument("--keep", action="store_true", help="keep the scratch directory")
    a = ap.parse_args()
    a.kale = os.path.abspath(a.kale)
    b = Bench(a)
    started, load0 = time.time(), os.getloadavg()[0]
    try:
        for m in a.only.split(","):
            getattr(b, m.strip())()
        text = b.report(started, load0)
    finally:
        b.cleanup()
    print(text)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
