# kale KFP bootstrap: the entry point of every container kale compiles into a Kubeflow
# Pipelines (v2) component. Written for kale; needs only the Python standard library, so
# the image needs Python and the notebook's libraries, never kale itself.
#
# The container gets the step program and the kale runtime as arguments, plus the
# placeholders KFP fills in (parameter values, artifact paths). This script lays them out
# the way `kale run` does (a step directory with context.json, the runtime on sys.path,
# KALE_STEP_DIR), runs the program, and then moves the files the runtime wrote into the
# artifacts KFP uploads.
#
# Arguments (in any order, repeatable where it makes sense):
#   --step NAME  --runtime SOURCE  --program SOURCE
#   --param NAME TYPE VALUE      TYPE: int | float | str | bool (the pipeline's type)
#   --input VAR DIR              an input artifact (a directory holding VAR.<ext>)
#   --output VAR DIR             an output artifact to fill the same way
#   --metrics PATH URI OUTFILE   the system.Metrics artifact, its URI, and KFP's
#                                executor-output file (where metric values go for the UI)
import json
import os
import runpy
import shutil
import sys
import tempfile

METRICS_KEY = "kale-metrics"


def fail(message):
    sys.stderr.write("kale: %s\n" % message)
    sys.exit(1)


def parse_args(argv):
    opts = {"params": {}, "inputs": {}, "outputs": {}, "metrics": None}
    arity = {"--step": 1, "--runtime": 1, "--program": 1, "--param": 3,
             "--input": 2, "--output": 2, "--metrics": 3}
    i = 0
    while i < len(argv):
        flag = argv[i]
        n = arity.get(flag)
        if n is None or len(argv) - i - 1 < n:
            fail("bad bootstrap arguments near %r (the pipeline was not compiled by this kale?)" % flag)
        vals = argv[i + 1:i + 1 + n]
        i += 1 + n
        if flag == "--param":
            opts["params"][vals[0]] = convert(vals[0], vals[1], vals[2])
        elif flag == "--input":
            opts["inputs"][vals[0]] = vals[1]
        elif flag == "--output":
            opts["outputs"][vals[0]] = vals[1]
        elif flag == "--metrics":
            opts["metrics"] = vals
        else:
            opts[flag[2:]] = vals[0]
    for key in ("step", "runtime", "program"):
        if key not in opts:
            fail("missing --%s in the bootstrap arguments" % key)
    return opts


def convert(name, kind, text):
    # KFP renders every parameter as text in the command line; give the program the
    # pipeline's declared type back, as `kale run` would.
    try:
        if kind == "int":
            try:
                return int(text)
            except ValueError:
                f = float(text)
                if not f.is_integer():
                    raise
                return int(f)
        if kind == "float":
            return float(text)
        if kind == "bool":
            low = text.strip().lower()
            if low in ("true", "1"):
                return True
            if low in ("false", "0"):
                return False
            raise ValueError(text)
        return text
    except ValueError:
        fail("parameter `%s` must be %s, got %r" % (name, kind, text))


def input_file(var, directory):
    # An input artifact is the producer's output directory: VAR.<ext> inside it (the
    # extension tells the runtime which library reads the file).
    if os.path.isfile(directory):
        return directory
    try:
        names = sorted(os.listdir(directory))
    except OSError as e:
        fail("input `%s`: cannot read artifact directory %s: %s" % (var, directory, e))
    for name in names:
        if name == var or name.startswith(var + "."):
            return os.path.join(directory, name)
    fail("input `%s`: artifact %s holds no file for it (found: %s)"
         % (var, directory, ", ".join(names) or "nothing"))


def main():
    opts = parse_args(sys.argv[1:])
    work = tempfile.mkdtemp(prefix="kale-")
    runtime_dir = os.path.join(work, "runtime")
    step_dir = os.path.join(work, "step")
    os.makedirs(runtime_dir)
    os.makedirs(step_dir)
    with open(os.path.join(runtime_dir, "kale_runtime.py"), "w", encoding="utf-8") as f:
        f.write(opts["runtime"])
    program = os.path.join(step_dir, "program.py")
    with open(program, "w", encoding="utf-8") as f:
        f.write(opts["program"])
    inputs = {var: input_file(var, d) for var, d in opts["inputs"].items()}
    with open(os.path.join(step_dir, "context.json"), "w", encoding="utf-8") as f:
        json.dump({"step": opts["step"], "inputs": inputs}, f)

    os.environ["KALE_STEP_DIR"] = step_dir
    # Index 1: the program replaces sys.path[0] with the working directory, as Jupyter
    # has it.
    sys.path.insert(1, runtime_dir)
    sys.argv = [program]
    # The program is compiled without parameter assignments; the values arrive as its
    # initial globals, so one compiled pipeline serves every set of parameter values.
    # An exception propagates to the runtime's excepthook, which reports it and makes
    # the container (and so the KFP task) fail.
    runpy.run_path(program, init_globals=dict(opts["params"]), run_name="__main__")

    with open(os.path.join(step_dir, "outputs.json"), encoding="utf-8") as f:
        saved = {o["name"]: o for o in json.load(f)}
    for var, target in opts["outputs"].items():
        record = saved.get(var)
        if record is None:
            fail("step `%s` did not save `%s`, which a later step reads" % (opts["step"], var))
        os.makedirs(target, exist_ok=True)
        shutil.copyfile(os.path.join(step_dir, "outputs", record["file"]),
                        os.path.join(target, record["file"]))

    if opts["metrics"]:
        path, uri, out_file = opts["metrics"]
        metrics_json = os.path.join(step_dir, "metrics.json")
        values = {}
        if os.path.exists(metrics_json):
            with open(metrics_json, encoding="utf-8") as f:
                values = json.load(f)
        parent = os.path.dirname(path)
        if parent:
            os.makedirs(parent, exist_ok=True)
        # The file is what `kale trial` downloads; the executor output's metadata is
        # what the KFP UI shows for a system.Metrics artifact.
        with open(path, "w", encoding="utf-8") as f:
            json.dump(values, f)
        numeric = {k: v for k, v in values.items()
                   if isinstance(v, (int, float)) and not isinstance(v, bool)}
        parent = os.path.dirname(out_file)
        if parent:
            os.makedirs(parent, exist_ok=True)
        with open(out_file, "w", encoding="utf-8") as f:
            json.dump({"artifacts": {METRICS_KEY: {"artifacts": [
                {"name": METRICS_KEY, "uri": uri, "metadata": numeric}]}}}, f)
        for k, v in values.items():
            print("%s=%s" % (k, v))


main()
