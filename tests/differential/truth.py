"""The truth of the differential suite: a notebook run top to bottom in one Jupyter kernel.

For each job this runs the notebook's code cells in order in a fresh IPython kernel
(nbclient + ipykernel), the way a data scientist runs it with "Run All", and reports
the values of its pipeline metrics. What it runs is what kale turns into a pipeline:

* papermill-style parameter injection: a cell assigning the overrides is inserted right
  after the (last) `pipeline-parameters` cell, each value typed like the parameter's
  default, as `kale run -p NAME=VALUE` types it (so `-p lr=1` and an override `lr = 1`
  both mean the float 1.0);
* cells tagged `skip` are left out, as Kale leaves them out, and so are untagged code
  cells before the first tagged one (Kale drops them too: they belong to no block);
* every other code cell runs, `imports` and `functions` cells once, where they stand.

The metrics are the names the `pipeline-metrics` cell prints (none without one) (`print(name)` or `name`
lines, as kale reads them), converted the way a pipeline reports a metric: integers
(Python or numpy, and bools as 0/1) stay integers, every other real number becomes a
float, NaN and the infinities become the strings "nan", "inf", "-inf". This conversion
is written here from that definition, not imported from kale, so the truth does not
depend on the code under test.

Usage: truth.py JOBS.json OUT.json
JOBS.json: [{"id": str, "notebook": PATH, "workdir": DIR, "overrides": {NAME: VALUE}}]
           workdir is where the kernel starts (the caller gives each job its own copy of
           the notebook's folder, since notebooks write files).
OUT.json:  {id: {"status": "ok", "metrics": {NAME: VALUE}, "seconds": float}
            or {"status": "error", "error": str, "seconds": float}}

Jobs run one after the other, each in its own kernel; the next kernel is started while
the current job's cells run, so kernel start-up (about a second) mostly overlaps.
"""

import ast
import json
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import nbformat
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError

from nbinfo import metric_names, parameter_defaults, tags_of, typed_like

CELL_TIMEOUT_S = 120

# Runs in the kernel after the notebook's last cell: writes the metrics as JSON. Names
# are private so that nothing the notebook bound can shadow them.
DUMP = r"""
def __kale_truth_dump(names, path):
    import json as _json
    import math as _math

    def convert(name, value):
        if value is True or value is False:
            return int(value)
        if isinstance(value, int):
            return int(value)
        if isinstance(value, (str, bytes, bytearray, complex)):
            raise TypeError("metric %s is a %s, not a real number" % (name, type(value).__name__))
        ndim = getattr(value, "ndim", 0)
        if ndim != 0:
            raise TypeError("metric %s is a %s of shape %s, not a single number"
                            % (name, type(value).__name__, getattr(value, "shape", "?")))
        dtype = getattr(value, "dtype", None)
        kind = getattr(dtype, "kind", None)
        if kind in ("b", "i", "u"):
            return int(value)
        f = float(value)
        if _math.isnan(f):
            return "nan"
        if _math.isinf(f):
            return "inf" if f > 0 else "-inf"
        return f

    g = globals()
    out = {}
    for name in names:
        if name not in g:
            raise NameError("metric %s was never set" % name)
        out[name] = convert(name, g[name])
    with open(path, "w", encoding="utf-8") as f:
        _json.dump(out, f)

"""


def plan_cells(nb, overrides):
    """The code cells to run, in order, with the injected parameters cell."""
    code = [c for c in nb.cells if c.cell_type == "code"]
    first_tagged = next((i for i, c in enumerate(code) if tags_of(c)), len(code))
    cells = [c for i, c in enumerate(code) if i >= first_tagged and "skip" not in tags_of(c)]
    params = [i for i, c in enumerate(cells) if "pipeline-parameters" in tags_of(c)]
    metrics = [c for c in cells if "pipeline-metrics" in tags_of(c)]
    # Without a metrics cell there is nothing to compare but success.
    names = metric_names(metrics[-1].source) if metrics else []
    if overrides:
        if not params:
            raise ValueError("overrides given but the notebook has no pipeline-parameters cell")
        defaults = {}
        for i in params:
            defaults.update(parameter_defaults(cells[i].source))
        unknown = sorted(set(overrides) - set(defaults))
        if unknown:
            raise ValueError("overrides for unknown parameters: %s" % ", ".join(unknown))
        lines = ["# Parameters injected by the differential suite (papermill style)"]
        for name, value in overrides.items():
            lines.append("%s = %r" % (name, typed_like(defaults[name], value)))
        injected = nbformat.v4.new_code_cell("\n".join(lines))
        injected.metadata["tags"] = ["injected-parameters"]
        cells.insert(params[-1] + 1, injected)
    return cells, names


def start_kernel(workdir, env):
    km = KernelManager(kernel_name="python3")
    km.start_kernel(cwd=workdir, env=env)
    return km


def run_job(job, km, scratch):
    started = time.monotonic()
    try:
        nb = nbformat.read(job["notebook"], as_version=4)
        cells, names = plan_cells(nb, job.get("overrides") or {})
        out_path = os.path.join(scratch, "job-%d.metrics.json" % job["index"])
        dump = nbformat.v4.new_code_cell(
            DUMP + "\n__kale_truth_dump(%r, %r)\ndel __kale_truth_dump\n" % (names, out_path))
        run_nb = nbformat.v4.new_notebook(metadata=nb.metadata)
        run_nb.cells = cells + [dump]
        client = NotebookClient(run_nb, km=km, timeout=CELL_TIMEOUT_S, allow_errors=False,
                                resources={"metadata": {"path": job["workdir"]}})
        with client.setup_kernel():
            for index, cell in enumerate(run_nb.cells):
                client.execute_cell(cell, index)
        with open(out_path, encoding="utf-8") as f:
            metrics = json.load(f)
        return {"status": "ok", "metrics": metrics, "seconds": time.monotonic() - started}
    except (CellExecutionError, CellTimeoutError) as e:
        # The message's last line names the exception; keep it short for the matrix.
        lines = [l for l in str(e).splitlines() if l.strip()]
        return {"status": "error", "error": lines[-1] if lines else repr(e),
                "seconds": time.monotonic() - started}
    except Exception as e:  # a broken case: report it, keep going
        return {"status": "error", "error": "%s: %s" % (type(e).__name__, e),
                "seconds": time.monotonic() - started}


def main():
    jobs_path, out_path = sys.argv[1], sys.argv[2]
    with open(jobs_path, encoding="utf-8") as f:
        jobs = json.load(f)
    with tempfile.TemporaryDirectory(prefix="kale-truth-") as scratch:
        results = run_jobs(jobs, scratch)
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump(results, f, indent=1)


def run_jobs(jobs, scratch):
    # A private IPython profile: no user startup files or configuration.
    env = dict(os.environ, IPYTHONDIR=os.path.join(scratch, "ipython"),
               JUPYTER_PLATFORM_DIRS="1", PYDEVD_DISABLE_FILE_VALIDATION="1")
    results = {}
    with ThreadPoolExecutor(max_workers=1) as starter:
        pending = starter.submit(start_kernel, jobs[0]["workdir"], env) if jobs else None
        for i, job in enumerate(jobs):
            km = pending.result()
            if i + 1 < len(jobs):
                pending = starter.submit(start_kernel, jobs[i + 1]["workdir"], env)
            try:
                results[job["id"]] = run_job(dict(job, index=i), km, scratch)
            finally:
                km.shutdown_kernel(now=True)
    return results


if __name__ == "__main__":
    main()
