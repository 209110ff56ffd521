# kale KFP bootstrap: the entry point of every step container kale compiles into a
# Kubeflow Pipelines (v2) pipeline. Written for kale; needs only the Python standard
# library, so the image needs Python and the notebook's libraries, never kale itself.
#
# It is not embedded in each step: the pipeline's `kale-runtime` task unpacks it, with
# the kale runtime, into one artifact that every step takes as its first input, so the
# runtime travels once per pipeline instead of once per step. A step's command is
#   python3 -u -c "<run RUNTIME_DIR/kfp_bootstrap.py>" RUNTIME_DIR --step NAME ...
# and this script lays the step out the way `kale run` does (a step directory with
# context.json, the runtime importable, KALE_STEP_DIR), runs the step program, copies
# the outputs later steps read into the artifacts KFP uploads, and writes KFP's
# executor output file listing every output artifact.
#
# Arguments after RUNTIME_DIR (in any order, repeatable where it makes sense):
#   --step NAME  --program SOURCE  --runtime-id ID  --lines SPANS
#   --param NAME TYPE VALUE      TYPE: int | float | str | bool (the pipeline's type)
#   --input VAR DIR              an input artifact (a directory holding VAR.<ext>)
#   --output VAR DIR URI         an output artifact to fill the same way, and its URI
#   --metrics PATH URI           the system.Metrics artifact and its URI
#   --executor-output FILE       KFP's executor output file ({{$.outputs.output_file}})
#   --files-in DIR               files an earlier step wrote (its kale-files artifact),
#                                put in place before the program runs, in the given order
#   --files-out DIR URI          where this step's written files go for later steps
#   --files-named PATH           a path the notebook's code writes (absolute ones too)
#   --install DIST==VERSION      a package the step needs (stock Python images only);
#                                pip installs it unless the image has that version
# SPANS maps program lines back to the notebook: "start:len:cell,..." (1-based lines).
#
# The notebook's imports and functions cells travel once per pipeline too: the program
# holds the line "# kale: shared cells DIGEST" in their place, and the runtime
# artifact holds them as shared-DIGEST.py. The step runs the program with that line
# replaced, which is the program `kale run` runs (SPANS count its lines).
import hashlib
import json
import linecache
import os
import runpy
import shutil
import sys
import tempfile
import traceback

METRICS_KEY = "kale-metrics"
# Where Kubernetes reads a container's termination message from (the pod spec's
# default terminationMessagePath). Argo makes the main container's termination
# message the node's message, which is the error KFP shows for a failed task.
TERMINATION_LOG = os.environ.get("KALE_TERMINATION_LOG", "/dev/termination-log")
# Kubernetes keeps at most 4096 bytes of a termination message.
TERMINATION_LIMIT = 4000


def fail(message):
    sys.stderr.write("kale: %s\n" % message)
    write_termination_message(message)
    sys.exit(1)


def write_termination_message(message):
    # Only where the file already exists: outside a pod (kfp.local, a laptop) there is
    # no termination log, and creating /dev/termination-log would fail anyway.
    if not os.path.exists(TERMINATION_LOG):
        return
    try:
        with open(TERMINATION_LOG, "w", encoding="utf-8") as f:
            f.write(message[:TERMINATION_LIMIT])
    except OSError:
        pass


def parse_args(argv):
    opts = {"params": {}, "inputs": {}, "outputs": {}, "metrics": None, "lines": "",
            "install": [], "files-in": [], "files-out": None, "files-named": []}
    arity = {"--step": 1, "--program": 1, "--runtime-id": 1, "--lines": 1, "--param": 3,
             "--input": 2, "--output": 3, "--metrics": 2, "--executor-output": 1,
             "--install": 1, "--files-in": 1, "--files-out": 2, "--files-named": 1}
    i = 0
    while i < len(argv):
        flag = argv[i]
        n = arity.get(flag)
        if n is None or len(argv) - i - 1 < n:
            fail("bad bootstrap arguments near %r (was the pipeline compiled by another kale?)"
                 % flag)
        vals = argv[i + 1:i + 1 + n]
        i += 1 + n
        if flag == "--param":
            opts["params"][vals[0]] = convert(vals[0], vals[1], vals[2])
        elif flag == "--input":
            opts["inputs"][vals[0]] = vals[1]
        elif flag == "--output":
            opts["outputs"][vals[0]] = (vals[1], vals[2])
        elif flag == "--metrics":
            opts["metrics"] = vals
        elif flag in ("--install", "--files-in", "--files-named"):
            opts[flag[2:]].append(vals[0])
        elif flag == "--files-out":
            opts["files-out"] = vals
        else:
            opts[flag[2:]] = vals[0]
    for key in ("step", "program", "runtime-id", "executor-output"):
        if key not in opts:
            fail("missing --%s in the bootstrap arguments" % key)
    return opts


def convert(name, kind, text):
    # KFP renders every parameter as text in the command line (integers may come as
    # "3.0"); give the program the pipeline's declared type back, as `kale run` would.
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


def runtime_id(runtime_dir):
    # Same digest kale computes at compile time; the step's command carries it, so
    # KFP's cache key of a step changes exactly when the runtime does.
    h = hashlib.sha256()
    for name in ("kale_runtime.py", "kfp_bootstrap.py"):
        with open(os.path.join(runtime_dir, name), "rb") as f:
            h.update(f.read())
        h.update(b"\0")
    return h.hexdigest()[:16]


SHARED_PLACEHOLDER = "# kale: shared cells "


def with_shared_cells(program, runtime_dir):
    # The first line that is exactly the placeholder: kale writes it before any cell.
    lines = program.split("\n")
    for i, line in enumerate(lines):
        if line.startswith(SHARED_PLACEHOLDER):
            digest = line[len(SHARED_PLACEHOLDER):]
            path = os.path.join(runtime_dir, "shared-%s.py" % digest)
            try:
                with open(path, "rb") as f:
                    text = f.read()
            except OSError as e:
                fail("the runtime artifact %s lacks the notebook's shared cells %s (%s); "
                     "recompile the pipeline with one kale" % (runtime_dir, digest, e))
            if hashlib.sha256(text).hexdigest()[:16] != digest:
                fail("the shared cells in %s do not match digest %s; recompile the pipeline"
                     % (path, digest))
            lines[i] = text.decode("utf-8")
            # The text ends with a newline, as the line it replaces did.
            return "\n".join(lines[:i]) + ("\n" if i else "") + lines[i] + "\n".join(lines[i + 1:])
    return program


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


def install(step, specs):
    # Only what the image lacks at the pinned version: an image that already has the
    # notebook's libraries starts the step without touching a package index.
    import importlib
    import importlib.metadata as md
    import site
    import subprocess
    missing = []
    for spec in specs:
        name, _, version = spec.partition("==")
        try:
            if md.version(name) == version:
                continue
        except md.PackageNotFoundError:
            pass
        missing.append(spec)
    if not missing:
        return
    sys.stderr.write("kale: step `%s` installs %s\n" % (step, " ".join(missing)))
    rc = subprocess.call([sys.executable, "-m", "pip", "install", "--quiet",
                          "--disable-pip-version-check", "--no-warn-script-location"]
                         + missing, stdout=sys.stderr)
    if rc != 0:
        fail("step `%s`: pip could not install %s (exit %d); use an image that has them "
             "(the notebook's base_image or the step's image: tag), or give the cluster "
             "access to a package index" % (step, " ".join(missing), rc))
    # pip falls back to the user site when site-packages is read-only; that directory
    # may not have existed when this interpreter started.
    site.addsitedir(site.getusersitepackages())
    importlib.invalidate_caches()


def parse_spans(text):
    spans = []
    for part in filter(None, text.split(",")):
        start, length, cell = (int(x) for x in part.split(":"))
        spans.append((start, length, cell))
    return spans


def locate(tb, program, spans):
    """(cell, line, code) of the innermost frame in the notebook's code, else None.

    The same rule as `kale run`: plain-Python steps run program.py, whose lines map
    to cells through SPANS; IPython steps compile each cell as `<cell N>`.
    """
    for frame in reversed(traceback.extract_tb(tb)):
        name = frame.filename
        if name.startswith("<cell ") and name.endswith(">"):
            try:
                cell = int(name[6:-1])
            except ValueError:
                continue
            return cell, frame.lineno, linecache.getline(name, frame.lineno).strip()
        if os.path.abspath(name) == program:
            for start, length, cell in spans:
                if start <= frame.lineno < start + length:
                    return (cell, frame.lineno - start + 1,
                            linecache.getline(program, frame.lineno).strip())
            return None
    return None


def report_failure(step, exc, tb, program, spans):
    where = locate(tb, program, spans)
    if isinstance(exc, SystemExit):
        what = "SystemExit: the step's code called sys.exit(%r) before the step finished" % (
            exc.code,)
    else:
        what = "%s: %s" % (type(exc).__name__, exc)
    if where:
        cell, line, code = where
        message = "step `%s` failed at cell %d, line %d: %s" % (step, cell, line, what)
    else:
        code = ""
        message = "step `%s` failed: %s" % (step, what)
    sys.stderr.write("kale: %s\n" % message)
    if code:
        sys.stderr.write("    %s\n" % code)
    write_termination_message(message + ("\n    " + code if code else ""))


# Files handed between steps. On a cluster every step is a pod with a file system of its
# own, where `kale run` steps share the notebook's directory: what a step writes there
# (and the absolute paths the notebook names) goes into its `kale-files` artifact, and a
# step that reads it gets it back in place before its program runs. The artifact holds
# `rel/<path under the working directory>` and `abs/<absolute path>`.
SKIPPED_DIRS = frozenset([".kale", "__pycache__", ".ipynb_checkpoints", ".git"])
SCAN_LIMIT = 50000


def scan(root, skip):
    """{path: (size, mtime_ns)} of the files under root, or None past SCAN_LIMIT."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in SKIPPED_DIRS
                       and os.path.join(dirpath, d) not in skip]
        for name in filenames:
            path = os.path.join(dirpath, name)
            try:
                st = os.stat(path)
            except OSError:
                continue
            found[path] = (st.st_size, st.st_mtime_ns)
            if len(found) > SCAN_LIMIT:
                return None
    return found


def copy_tree(src, dst):
    if os.path.isdir(src):
        for dirpath, _, filenames in os.walk(src):
            for name in filenames:
                path = os.path.join(dirpath, name)
                copy_file(path, os.path.join(dst, os.path.relpath(path, src)))
    elif os.path.exists(src):
        copy_file(src, dst)


def copy_file(src, dst):
    parent = os.path.dirname(dst)
    if parent:
        os.makedirs(parent, exist_ok=True)
    shutil.copyfile(src, dst)


def receive_files(dirs, cwd):
    for d in dirs:
        copy_tree(os.path.join(d, "rel"), cwd)
        abs_root = os.path.join(d, "abs")
        if os.path.isdir(abs_root):
            for dirpath, _, filenames in os.walk(abs_root):
                for name in filenames:
                    path = os.path.join(dirpath, name)
                    copy_file(path, os.sep + os.path.relpath(path, abs_root))


def hand_on_files(target, cwd, before, named, step_dir):
    """Copy what the step wrote into ``target``; returns the paths handed on."""
    after = scan(cwd, {step_dir, target}) if before is not None else None
    handed = []
    changed = []
    if after is not None:
        changed = [p for p, st in after.items() if before.get(p) != st]
    else:
        # Too many files to compare: what the step wrote through Python's open(), as
        # its snapshot recorded it.
        try:
            with open(os.path.join(step_dir, "reads.json"), encoding="utf-8") as f:
                changed = [p for p in json.load(f).get("writes", []) if p.startswith(cwd + os.sep)]
        except (OSError, ValueError):
            changed = []
    for path in changed:
        rel = os.path.relpath(path, cwd)
        copy_file(path, os.path.join(target, "rel", rel))
        handed.append(rel)
    for path in named:
        full = path if os.path.isabs(path) else os.path.join(cwd, path)
        if not os.path.exists(full):
            continue
        if os.path.isabs(path):
            copy_tree(full, os.path.join(target, "abs", path.lstrip(os.sep)))
        else:
            copy_tree(full, os.path.join(target, "rel", os.path.relpath(full, cwd)))
        handed.append(path)
    os.makedirs(target, exist_ok=True)
    return sorted(set(handed))


def write_json(path, value):
    parent = os.path.dirname(path)
    if parent:
        os.makedirs(parent, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(value, f)


def main():
    if len(sys.argv) < 2:
        fail("missing the runtime directory argument")
    runtime_dir = os.path.abspath(sys.argv[1])
    opts = parse_args(sys.argv[2:])
    found = runtime_id(runtime_dir)
    if found != opts["runtime-id"]:
        fail("the kale runtime in %s is %s, but this step was compiled for %s; recompile "
             "the pipeline with one kale" % (runtime_dir, found, opts["runtime-id"]))
    install(opts["step"], opts["install"])
    work = tempfile.mkdtemp(prefix="kale-")
    step_dir = os.path.join(work, "step")
    os.makedirs(step_dir)
    program = os.path.join(step_dir, "program.py")
    with open(program, "w", encoding="utf-8") as f:
        f.write(with_shared_cells(opts["program"], runtime_dir))
    inputs = {var: input_file(var, d) for var, d in opts["inputs"].items()}
    with open(os.path.join(step_dir, "context.json"), "w", encoding="utf-8") as f:
        json.dump({"step": opts["step"], "inputs": inputs}, f)

    cwd = os.getcwd()
    receive_files(opts["files-in"], cwd)
    before = None
    if opts["files-out"]:
        before = scan(cwd, {work, opts["files-out"][0]})

    os.environ["KALE_STEP_DIR"] = step_dir
    # Index 1: the program replaces sys.path[0] with the working directory, as Jupyter
    # has it.
    sys.path.insert(1, runtime_dir)
    sys.argv = [program]
    # The program is compiled without parameter assignments; the values arrive as its
    # initial globals, so one compiled pipeline serves every set of parameter values.
    try:
        runpy.run_path(program, init_globals=dict(opts["params"]), run_name="__main__")
    except SystemExit as e:
        # A program that ran to its end has marked the step succeeded; a sys.exit()
        # in the user's code stops it before its outputs are saved.
        if e.code not in (None, 0) or not step_succeeded(step_dir):
            report_failure(opts["step"], e, e.__traceback__, program,
                           parse_spans(opts["lines"]))
            sys.exit(1)
    except BaseException as e:
        # The runtime's hook records error.json and prints the traceback, as in
        # `kale run`; then the located one-line summary that KFP shows.
        sys.excepthook(type(e), e, e.__traceback__)
        report_failure(opts["step"], e, e.__traceback__, program,
                       parse_spans(opts["lines"]))
        sys.exit(1)

    artifacts = {}
    saved = {}
    outputs_json = os.path.join(step_dir, "outputs.json")
    if os.path.exists(outputs_json):
        with open(outputs_json, encoding="utf-8") as f:
            saved = {o["name"]: o for o in json.load(f)}
    for var, (target, uri) in opts["outputs"].items():
        record = saved.get(var)
        if record is None:
            fail("step `%s` did not save `%s`, which a later step reads" % (opts["step"], var))
        os.makedirs(target, exist_ok=True)
        shutil.copyfile(os.path.join(step_dir, "outputs", record["file"]),
                        os.path.join(target, record["file"]))
        meta = {k: record[k] for k in ("file", "backend", "type", "bytes", "hash") if k in record}
        artifacts[var] = {"artifacts": [{"name": var, "uri": uri, "metadata": meta}]}

    if opts["files-out"]:
        target, uri = opts["files-out"]
        handed = hand_on_files(target, cwd, before, opts["files-named"], step_dir)
        artifacts["kale-files"] = {"artifacts": [
            {"name": "kale-files", "uri": uri, "metadata": {"files": handed}}]}

    if opts["metrics"]:
        path, uri = opts["metrics"]
        metrics_json = os.path.join(step_dir, "metrics.json")
        values = {}
        if os.path.exists(metrics_json):
            with open(metrics_json, encoding="utf-8") as f:
                values = json.load(f)
        # The file is what `kale trial` downloads; the artifact's metadata is what the
        # KFP UI shows for a system.Metrics artifact (numbers only).
        write_json(path, values)
        numeric = {k: v for k, v in values.items()
                   if isinstance(v, (int, float)) and not isinstance(v, bool)}
        artifacts[METRICS_KEY] = {"artifacts": [
            {"name": METRICS_KEY, "uri": uri, "metadata": numeric}]}
        for k, v in values.items():
            print("%s=%s" % (k, v))

    # KFP's launchers differ: the cluster's uploads every declared output path, but
    # kfp.local (and so its DockerRunner) knows only the artifacts listed here.
    write_json(opts["executor-output"], {"artifacts": artifacts})


def step_succeeded(step_dir):
    try:
        with open(os.path.join(step_dir, "status.json"), encoding="utf-8") as f:
            return json.load(f).get("status") == "succeeded"
    except (OSError, ValueError):
        return False


main()
