"""Executes kale-compiled pipelines with Kubeflow Pipelines' own local engine.

Test harness for tests/it/kfp_local.rs. It loads the compiled IR YAML with the KFP SDK
and runs it with `kfp.local`: KFP's DAG orchestration, placeholder resolution,
parameter and artifact passing, executor-output handling and caching decide what
happens, not kale.

Two things differ from a KFP user's laptop, both on purpose and both announced on
stderr when the harness starts:

* kfp.local's SubprocessRunner refuses container components (it runs only lightweight
  Python components); the DockerRunner would run kale's containers in their images,
  but CI has no Docker. The harness turns that guard off, here only, so each container
  runs as a local process.
* A container's `python3` is the step image's interpreter. Here it is the interpreter
  given with --step-python (the tests pass the one `kale run` uses), standing in for an
  image with the notebook's libraries, so results compare with `kale run` exactly.

Usage: run_pipeline.py PLAN.json OUT.json --step-python PATH

PLAN.json: {"pipeline_root": DIR, "runs": [{"pipeline": YAML, "cwd": DIR,
            "params": {...}, "isolate_tasks": bool}, ...]}. The runs share one
            kfp.local cache, in order.
OUT.json:  {"runs": [{"status": "succeeded"|"failed", "error": str|null,
            "tasks": {TASK: {"status": "succeeded"|"failed", "cached": bool,
                             "log": str, "artifacts": {KEY: {"uri", "metadata"}},
                             "workdir": DIR (isolated tasks that ran)}},
            "metrics": {NAME: VALUE}}]}

Working directories. kfp.local's SubprocessRunner starts every task in the harness's
own working directory (the run's "cwd" here), so a file one task writes is there for
the next. On a cluster that never happens: each step is a pod of its own, which starts
from its image's file system and sees nothing another pod wrote unless it arrives as
an input artifact (or on a volume the pipeline declares). A run with
"isolate_tasks": true gets that: each task that executes starts in a fresh copy of the
run's "cwd" (the notebook's folder as an image would hold it), made for it alone, so a
step reading a file an earlier step wrote fails here as it would on the cluster. The
compiled pipeline and KFP's handling of it are unchanged; only where this stand-in for
the cluster starts each task's process differs. The differential suite
(tests/differential) uses it; the other tests keep the shared directory.
"""

import argparse
import contextlib
import io
import json
import os
import re
import shutil
import sys
import tempfile

from kfp import components, local
from kfp.local import subprocess_task_handler, task_dispatcher
from kfp.local.orchestrator import task_executor

METRICS_KEY = "kale-metrics"
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def relax_runner(step_python):
    subprocess_task_handler.SubprocessTaskHandler.validate_not_container_component = (
        lambda self, full_command: None)

    @contextlib.contextmanager
    def environment(use_venv, runner_config=None, has_pip_install=False):
        yield step_python

    subprocess_task_handler.environment = environment
    sys.stderr.write(
        "run_pipeline.py: kfp.local's SubprocessRunner refuses container components; "
        "this test harness (only) relaxes that guard because CI has no Docker, and runs "
        "each container as a local process with %s as the image's python3.\n" % step_python)


class Recorder:
    """Watches kfp.local execute tasks: which ran, which were cache hits, their logs."""

    def __init__(self):
        self.tasks = {}
        self.current = None
        self.executed = set()
        self.workdirs = {}
        inner_task = task_executor.execute_single_task
        inner_dispatch = task_dispatcher.run_single_task_implementation

        def execute_single_task(task_name, *args, **kwargs):
            self.current = task_name
            buf = io.StringIO()
            with contextlib.redirect_stdout(buf):
                outputs, status = inner_task(task_name, *args, **kwargs)
            self.tasks[task_name] = {
                "status": status.name.lower().replace("success", "succeeded")
                .replace("failure", "failed"),
                "cached": task_name not in self.executed,
                "log": ANSI.sub("", buf.getvalue()),
                "artifacts": {
                    k: {"uri": v.uri, "metadata": dict(v.metadata)}
                    for k, v in outputs.items() if hasattr(v, "uri")
                },
            }
            return outputs, status

        def run_single_task_implementation(*args, **kwargs):
            self.executed.add(self.current)
            return inner_dispatch(*args, **kwargs)

        task_executor.execute_single_task = execute_single_task
        task_dispatcher.run_single_task_implementation = run_single_task_implementation

    def reset(self):
        self.tasks = {}
        self.executed = set()
        self.workdirs = {}


class TaskDirectories:
    """Starts each executed task in a fresh copy of `image` while a run isolates tasks.

    kfp.local launches a task's process with its own function, which passes no working
    directory: the child inherits the harness's. Tasks execute one at a time, so the
    harness changes its own directory around that launch and changes it back.
    """

    def __init__(self, recorder):
        self.image = None
        self.scratch = None
        self.recorder = recorder
        inner = subprocess_task_handler.run_local_subprocess

        def run_local_subprocess(full_command, env_vars=None):
            if self.image is None:
                return inner(full_command, env_vars)
            task = self.recorder.current or "task"
            workdir = tempfile.mkdtemp(prefix=re.sub(r"[^A-Za-z0-9_.-]", "_", task) + "-",
                                       dir=self.scratch)
            shutil.copytree(self.image, workdir, dirs_exist_ok=True, symlinks=True)
            self.recorder.workdirs[task] = workdir
            home = os.getcwd()
            os.chdir(workdir)
            try:
                return inner(full_command, env_vars)
            finally:
                os.chdir(home)

        subprocess_task_handler.run_local_subprocess = run_local_subprocess

    def isolate(self, image, scratch):
        self.image = image
        self.scratch = scratch
        os.makedirs(scratch, exist_ok=True)

    def share(self):
        self.image = None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("plan")
    ap.add_argument("out")
    ap.add_argument("--step-python", required=True)
    args = ap.parse_args()
    with open(args.plan, encoding="utf-8") as f:
        plan = json.load(f)
    relax_runner(args.step_python)
    recorder = Recorder()
    local.init(runner=local.SubprocessRunner(use_venv=False),
               pipeline_root=plan["pipeline_root"], raise_on_error=True,
               enable_caching=True)
    directories = TaskDirectories(recorder)
    results = []
    home = os.getcwd()
    for i, run in enumerate(plan["runs"]):
        recorder.reset()
        pipeline = components.load_component_from_file(run["pipeline"])
        error = None
        if run.get("isolate_tasks"):
            directories.isolate(run["cwd"], os.path.join(plan["pipeline_root"], "tasks-%d" % i))
        else:
            directories.share()
        # Steps run in the notebook's directory, as with `kale run` (or, isolated, in a
        # copy of it each).
        os.chdir(run.get("cwd") or home)
        try:
            pipeline(**run.get("params", {}))
        except RuntimeError as e:
            error = ANSI.sub("", str(e))
        finally:
            os.chdir(home)
        for task, workdir in recorder.workdirs.items():
            if task in recorder.tasks:
                recorder.tasks[task]["workdir"] = workdir
        metrics = {}
        for task in recorder.tasks.values():
            art = task["artifacts"].get(METRICS_KEY)
            if art and task["status"] == "succeeded":
                with open(art["uri"], encoding="utf-8") as f:
                    metrics.update(json.load(f))
        results.append({
            "status": "failed" if error else "succeeded",
            "error": error,
            "tasks": recorder.tasks,
            "metrics": metrics,
        })
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump({"runs": results}, f, indent=1)


if __name__ == "__main__":
    main()
