"""Plays Katib's controller, and a KFP API server, for one Experiment kale creates.

Test harness for the end-to-end Katib test in tests/it/katib_cluster.rs. The Kubernetes
API server is kmock (the test starts it); this process watches it for the Experiment
`kale tune --katib` creates and does what Katib's controllers do with it:

* suggests parameter values inside the Experiment's feasible space (random search,
  seeded), one trial at a time;
* creates the Trial (label `katib.kubeflow.org/experiment`) and renders the trial
  template the way Katib's manifest generator does: the template serialised to JSON,
  each `${trialParameters.NAME}` replaced by the assignment its `reference` names, or
  by the trial's metadata for a `${trialSpec.Name|Namespace|Kind|APIVersion|
  Labels[k]|Annotations[k]}` reference;
* runs the trial Job's pod as local processes: the init containers as they are, then
  the primary container rewritten the way Katib's StdOut collector injection rewrites
  it (`sh -c "<command and args joined by spaces> 1>LOG 2>&1 && echo completed >
  PIDFILE"`);
* parses LOG with the StdOut collector's rules (lines that mention a metric name, the
  default filter `([\\w|-]+)\\s*=\\s*([+-]?\\d*(\\.\\d+)?([Ee][+-]?\\d+)?)`), and
  records the observation (min, max, latest) in the Trial's status;
* keeps the Experiment's status (counts, currentOptimalTrial by the objective's
  strategy) and completes it: goal reached, max trials reached, or too many failures.

The trial pods reach the KFP API this process serves on loopback (v2beta1: pipeline
upload and versions, experiments, runs, artifacts), which executes each submitted run
with `kfp.local`, through tests/kfp_local/run_pipeline.py's relaxed runner. (`kale
submit` from the JupyterLab panel's test uses the same API.)

What differs from a cluster, on purpose, and announced on stderr at start:
* containers run as local processes; `python3` is --step-python (standing in for the
  steps' image), and each `emptyDir` volume is a temporary directory, its mount path
  rewritten in the container's command;
* trials run one at a time (kfp.local is one process-wide session).

Usage: katib_controller.py --kube URL --namespace NS --step-python PATH --out OUT.json
       [--seed N]. Prints the KFP API's URL as its first stdout line, then serves until
the Experiment completes, writes OUT.json ({"experiment", "trials": [{"name",
"assignments", "status", "metrics", "log"}]}) and exits.
"""

import argparse
import datetime
import http.server
import json
import math
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "kfp_local"))
import run_pipeline  # noqa: E402  (kfp.local with the container guard relaxed)

from kfp import components, local  # noqa: E402

KATIB_API = "/apis/kubeflow.org/v1beta1/namespaces/%s"
EXPERIMENT_LABEL = "katib.kubeflow.org/experiment"
# Katib's default StdOut/File TEXT metrics filter.
DEFAULT_FILTER = r"([\w|-]+)\s*=\s*([+-]?\d*(\.\d+)?([Ee][+-]?\d+)?)"
PARAM_PLACEHOLDER = "${trialParameters.%s}"
META_REFERENCE = re.compile(r"^\$\{trialSpec\.(.+)\}$")
META_INDEXED = re.compile(r"(.+)\[(.+)\]")
# Katib names trials `<experiment>-<8 random characters>` from this alphabet.
NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class Kube:
    def __init__(self, url, namespace):
        self.base = url.rstrip("/") + KATIB_API % namespace
        self.namespace = namespace

    def call(self, method, path, body=None, content_type="application/json"):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Content-Type": content_type})
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read() or b"{}")

    def patch_status(self, plural, name, status):
        self.call("PATCH", "/%s/%s/status" % (plural, name), {"status": status},
                  "application/merge-patch+json")


# ---------------------------------------------------------------- the fake KFP API


class Kfp:
    """The v2beta1 calls kale and its trial driver make, over one kfp.local session."""

    def __init__(self, step_python, work):
        self.lock = threading.Lock()
        self.run_lock = threading.Lock()
        self.work = work
        self.pipelines = {}  # id -> {"name", "versions": [(version_id, spec, path)]}
        self.experiments = {}  # id -> display name
        self.runs = {}
        self.artifacts = {}
        self.recorder = None
        self.step_python = step_python
        self.url = None
        self.cwd = None

    def start(self):
        run_pipeline.relax_runner(self.step_python)
        self.recorder = run_pipeline.Recorder()
        local.init(runner=local.SubprocessRunner(use_venv=False),
                   pipeline_root=os.path.join(self.work, "kfp-root"), raise_on_error=True,
                   enable_caching=True)
        kfp = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def answer(self, status, doc):
                body = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                self.answer(*kfp.get(self.path))

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n)
                self.answer(*kfp.post(self.path, self.headers.get("Content-Type", ""), body))

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self.url = "http://127.0.0.1:%d" % server.server_address[1]

    def get(self, raw):
        u = urllib.parse.urlsplit(raw)
        q = dict(urllib.parse.parse_qsl(u.query))
        parts = u.path.strip("/").split("/")
        with self.lock:
            if u.path == "/apis/v2beta1/pipelines":
                name = json.loads(q["filter"])["predicates"][0]["string_value"]
                found = [{"pipeline_id": pid, "display_name": p["name"]}
                         for pid, p in self.pipelines.items() if p["name"] == name]
                return 200, {"pipelines": found}
            if parts[:3] == ["apis", "v2beta1", "pipelines"] and len(parts) >= 5:
                p = self.pipelines.get(parts[3])
                if p is None:
                    return 404, {"message": "pipeline not found"}
                if len(parts) == 5:
                    newest_first = list(reversed(p["versions"]))
                    return 200, {"pipeline_versions": [
                        {"pipeline_version_id": v[0]} for v in newest_first]}
                for vid, spec, _ in p["versions"]:
                    if vid == parts[5]:
                        return 200, {"pipeline_version_id": vid, "pipeline_spec": spec}
                return 404, {"message": "version not found"}
            if u.path == "/apis/v2beta1/experiments":
                name = json.loads(q["filter"])["predicates"][0]["string_value"]
                return 200, {"experiments": [
                    {"experiment_id": eid, "display_name": n}
                    for eid, n in self.experiments.items() if n == name]}
            if parts[:3] == ["apis", "v2beta1", "runs"] and len(parts) == 4:
                run = self.runs.get(parts[3])
                return (200, run["doc"]) if run else (404, {"message": "run not found"})
            if parts[:3] == ["apis", "v2beta1", "artifacts"] and len(parts) == 4:
                if parts[3] not in self.artifacts:
                    return 404, {"message": "artifact not found"}
                return 200, {"artifact_id": parts[3],
                             "download_url": "%s/download/%s" % (self.url, parts[3])}
            if parts[0] == "download" and parts[1] in self.artifacts:
                with open(self.artifacts[parts[1]], encoding="utf-8") as f:
                    return 200, json.load(f)
        return 404, {"message": "no route for GET %s" % u.path}

    def post(self, raw, content_type, body):
        u = urllib.parse.urlsplit(raw)
        q = dict(urllib.parse.parse_qsl(u.query))
        with self.lock:
            if u.path in ("/apis/v2beta1/pipelines/upload",
                          "/apis/v2beta1/pipelines/upload_version"):
                text = multipart_file(content_type, body)
                if u.path.endswith("upload"):
                    pid = "p-%d" % (len(self.pipelines) + 1)
                    self.pipelines[pid] = {"name": q["name"], "versions": []}
                else:
                    pid = q["pipelineid"]
                versions = self.pipelines[pid]["versions"]
                vid = "%s-v%d" % (pid, len(versions) + 1)
                path = os.path.join(self.work, vid + ".yaml")
                with open(path, "w", encoding="utf-8") as f:
                    f.write(text)
                spec = next(iter(yaml.safe_load_all(text)))
                versions.append((vid, spec, path))
                return 200, {"pipeline_id": pid, "pipeline_version_id": vid}
            if u.path == "/apis/v2beta1/experiments":
                eid = "e-%d" % (len(self.experiments) + 1)
                self.experiments[eid] = json.loads(body)["display_name"]
                return 200, {"experiment_id": eid, "display_name": self.experiments[eid]}
            if u.path == "/apis/v2beta1/runs":
                req = json.loads(body)
                ref = req["pipeline_version_reference"]
                versions = self.pipelines[ref["pipeline_id"]]["versions"]
                path = [v[2] for v in versions if v[0] == ref["pipeline_version_id"]][0]
                run_id = "r-%d" % (len(self.runs) + 1)
                params = req.get("runtime_config", {}).get("parameters", {})
                self.runs[run_id] = {"doc": {"run_id": run_id, "state": "PENDING",
                                             "display_name": req.get("display_name")},
                                     "params": params}
                threading.Thread(target=self.execute, args=(run_id, path, params),
                                 daemon=True).start()
                return 200, dict(self.runs[run_id]["doc"])
        return 404, {"message": "no route for POST %s" % u.path}

    def execute(self, run_id, path, params):
        with self.run_lock:
            with self.lock:
                self.runs[run_id]["doc"]["state"] = "RUNNING"
            self.recorder.reset()
            error = None
            here = os.getcwd()
            # Steps run in the notebook's directory, as with `kale run`.
            os.chdir(self.cwd or here)
            try:
                components.load_component_from_file(path)(**params)
            except Exception as e:  # kfp.local raises RuntimeError for a failed task
                error = run_pipeline.ANSI.sub("", str(e))
            finally:
                os.chdir(here)
            tasks = []
            with self.lock:
                for name, task in self.recorder.tasks.items():
                    outputs = {}
                    art = task["artifacts"].get(run_pipeline.METRICS_KEY)
                    if art and task["status"] == "succeeded":
                        aid = "a-%d" % (len(self.artifacts) + 1)
                        self.artifacts[aid] = art["uri"]
                        outputs[run_pipeline.METRICS_KEY] = {"artifact_ids": [aid]}
                    tasks.append({"display_name": name, "state": task["status"].upper(),
                                  "outputs": outputs})
                doc = self.runs[run_id]["doc"]
                doc["run_details"] = {"task_details": tasks}
                doc["state"] = "FAILED" if error else "SUCCEEDED"
                if error:
                    doc["error"] = {"message": error}


def multipart_file(content_type, body):
    boundary = content_type.split("boundary=", 1)[1].strip().encode()
    for part in body.split(b"--" + boundary):
        head, sep, content = part.partition(b"\r\n\r\n")
        if sep and b'name="uploadfile"' in head:
            return content.rsplit(b"\r\n", 1)[0].decode("utf-8")
    raise ValueError("no uploadfile in the multipart body")


# ---------------------------------------------------------------- Katib's part


def suggest(parameters, rng):
    """Random search inside each parameter's feasible space, values as Katib sends
    them: strings."""
    out = []
    for p in parameters:
        fs = p.get("feasibleSpace", {})
        kind = p["parameterType"]
        if kind == "double":
            lo, hi = float(fs["min"]), float(fs["max"])
            if fs.get("distribution") == "logUniform":
                v = math.exp(rng.uniform(math.log(lo), math.log(hi)))
            else:
                v = rng.uniform(lo, hi)
            if fs.get("step"):
                step = float(fs["step"])
                v = lo + round((v - lo) / step) * step
            value = repr(min(max(v, lo), hi))
        elif kind == "int":
            lo, hi = int(fs["min"]), int(fs["max"])
            step = int(fs.get("step") or 1)
            value = str(lo + step * rng.randint(0, (hi - lo) // step))
        else:  # categorical, discrete
            value = rng.choice(fs["list"])
        out.append({"name": p["name"], "value": value})
    return out


def render(experiment, trial_name, namespace, assignments):
    """Katib's manifest generator: plain text replacement in the JSON template."""
    tmpl = experiment["spec"]["trialTemplate"]
    spec = tmpl["trialSpec"]
    text = json.dumps(spec)
    values = {a["name"]: a["value"] for a in assignments}
    meta = spec.get("metadata") or {}
    placeholders = {}
    non_meta = 0
    for tp in tmpl.get("trialParameters", []):
        m = META_REFERENCE.match(tp["reference"])
        if not m:
            placeholders[tp["name"]] = values[tp["reference"]]
            non_meta += 1
            continue
        key, index = m.group(1), None
        indexed = META_INDEXED.match(key)
        if indexed:
            key, index = indexed.group(1), indexed.group(2)
        placeholders[tp["name"]] = {
            "Name": lambda: trial_name,
            "Namespace": lambda: namespace,
            "Kind": lambda: spec["kind"],
            "APIVersion": lambda: spec["apiVersion"],
            "Labels": lambda: meta.get("labels", {})[index],
            "Annotations": lambda: meta.get("annotations", {})[index],
        }[key]()
    if non_meta != len(assignments):
        raise ValueError("assignments and non-metadata trial parameters differ")
    for name, value in placeholders.items():
        text = text.replace(PARAM_PLACEHOLDER % name, value)
    job = json.loads(text)
    job.setdefault("metadata", {}).update({"name": trial_name, "namespace": namespace})
    return job


def run_pod(job, primary, step_python, env, work):
    """The Job's pod as local processes; returns (exit code, primary container's log)."""
    pod = job["spec"]["template"]["spec"]
    volumes = {}
    for v in pod.get("volumes", []):
        if "emptyDir" not in v:
            raise ValueError("volume %s: only emptyDir volumes run here" % v["name"])
        volumes[v["name"]] = tempfile.mkdtemp(dir=work)

    def words(container):
        out = []
        for w in container.get("command", []) + container.get("args", []):
            for m in container.get("volumeMounts", []):
                mount = m["mountPath"].rstrip("/") + "/"
                w = w.replace(mount, volumes[m["name"]] + "/")
            out.append(w)
        if out and out[0] == "python3":
            out[0] = step_python
        return out

    def container_env(container):
        e = dict(env)
        for item in container.get("env", []):
            e[item["name"]] = item["value"]
        return e

    for c in pod.get("initContainers", []):
        res = subprocess.run(words(c), env=container_env(c), capture_output=True, text=True)
        if res.returncode != 0:
            return res.returncode, "init container %s failed:\n%s" % (c["name"], res.stderr)
    main = [c for c in pod["containers"] if c["name"] == primary][0]
    katib_dir = tempfile.mkdtemp(dir=work)
    log_path = os.path.join(katib_dir, "metrics.log")
    wrapped = "%s 1>%s 2>&1 && echo completed > %s/pid" % (
        " ".join(words(main)), log_path, katib_dir)
    res = subprocess.run(["sh", "-c", wrapped], env=container_env(main), timeout=600)
    with open(log_path, encoding="utf-8", errors="replace") as f:
        return res.returncode, f.read()


def parse_metrics(log, names):
    """The StdOut collector: lines that mention a metric name, read with the default
    filter; only the experiment's metric names count."""
    filt = re.compile(DEFAULT_FILTER)
    found = {}
    for line in log.splitlines():
        if not any(n in line for n in names):
            continue
        for m in filt.finditer(line):
            name, value = m.group(1).strip(), m.group(2).strip()
            if name in names:
                found.setdefault(name, []).append(value)
    return found


def observation(found):
    return {"metrics": [
        {"name": n, "min": min(v, key=float), "max": max(v, key=float), "latest": v[-1]}
        for n, v in found.items()]}


def objective_value(trial, objective):
    strategy = "max" if objective["type"] == "maximize" else "min"
    for s in objective.get("metricStrategies", []):
        if s["name"] == objective["objectiveMetricName"]:
            strategy = s["value"]
    for m in trial["observation"]["metrics"]:
        if m["name"] == objective["objectiveMetricName"]:
            return float(m[strategy])
    return None


def conditions(kind, final, reason, message):
    running = "True" if final is None else "False"
    out = [{"type": "Created", "status": "True", "reason": kind + "Created"},
           {"type": "Running", "status": running, "reason": kind + "Running"}]
    if final:
        out.append({"type": final, "status": "True", "reason": reason, "message": message})
    return out


def wait_for_experiment(kube, deadline):
    while time.time() < deadline:
        items = kube.call("GET", "/experiments").get("items", [])
        if items:
            return items[0]
        time.sleep(0.1)
    raise SystemExit("katib_controller.py: no Experiment appeared")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kube", required=True)
    ap.add_argument("--namespace", required=True)
    ap.add_argument("--step-python", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--cwd", help="directory the steps run in (the notebook's)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="katib-controller-")
    sys.stderr.write(
        "katib_controller.py: plays Katib for one Experiment: trial containers run as "
        "local processes with %s as the image's python3, emptyDir volumes are "
        "temporary directories, trials run one at a time.\n" % args.step_python)
    kfp = Kfp(args.step_python, work)
    kfp.cwd = args.cwd
    kfp.start()
    print(kfp.url, flush=True)
    # The test reads only that line; kfp.local logs to stdout, so from here on it goes
    # to stderr instead of a pipe nobody reads.
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())

    kube = Kube(args.kube, args.namespace)
    exp = wait_for_experiment(kube, time.time() + 120)
    name = exp["metadata"]["name"]
    spec = exp["spec"]
    objective = spec["objective"]
    names = [objective["objectiveMetricName"]] + objective.get("additionalMetricNames", [])
    started = now()
    kube.patch_status("experiments", name, {
        "startTime": started, "conditions": conditions("Experiment", None, "", "")})
    rng = random.Random(args.seed)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": work}
    done = []
    counts = {"trialsSucceeded": 0, "trialsFailed": 0, "trialsEarlyStopped": 0}
    best = None
    final = ("Succeeded", "ExperimentMaxTrialsReached",
             "Experiment has succeeded because max trial count has reached")
    for _ in range(spec["maxTrialCount"]):
        trial_name = "%s-%s" % (name, "".join(rng.choice(NAME_ALPHABET) for _ in range(8)))
        assignments = suggest(spec["parameters"], rng)
        job = render(exp, trial_name, args.namespace, assignments)
        created = now()
        kube.call("POST", "/trials", {
            "apiVersion": "kubeflow.org/v1beta1", "kind": "Trial",
            "metadata": {"name": trial_name, "namespace": args.namespace,
                         "creationTimestamp": created,
                         "labels": {EXPERIMENT_LABEL: name}},
            "spec": {"parameterAssignments": assignments, "objective": objective,
                     "primaryContainerName": spec["trialTemplate"]["primaryContainerName"],
                     "runSpec": job}})
        kube.patch_status("trials", trial_name, {
            "startTime": created, "conditions": conditions("Trial", None, "", "")})
        kube.patch_status("experiments", name, dict(counts, trials=len(done) + 1,
                                                     trialsRunning=1))
        code, log = run_pod(job, spec["trialTemplate"]["primaryContainerName"],
                            args.step_python, env, work)
        found = parse_metrics(log, names)
        status = {"completionTime": now()}
        if code != 0:
            result = "Failed"
            status["conditions"] = conditions(
                "Trial", "Failed", "TrialFailed",
                "Trial has failed. Job message: Job has reached the specified backoff limit")
            counts["trialsFailed"] += 1
        elif objective["objectiveMetricName"] not in found:
            result = "MetricsUnavailable"
            status["conditions"] = conditions("Trial", "MetricsUnavailable",
                                              "MetricsUnavailable", "Metrics are not available")
            counts["trialsFailed"] += 1
        else:
            result = "Succeeded"
            status["conditions"] = conditions("Trial", "Succeeded", "TrialSucceeded",
                                              "Trial has succeeded")
            status["observation"] = observation(found)
            counts["trialsSucceeded"] += 1
        kube.patch_status("trials", trial_name, status)
        record = {"name": trial_name, "assignments": assignments, "status": result,
                  "metrics": found, "log": log}
        done.append(record)
        if result == "Succeeded":
            value = objective_value(status, objective)
            better = (best is None or
                      (value > best[0] if objective["type"] == "maximize" else value < best[0]))
            if better:
                best = (value, trial_name, assignments, status["observation"])
        exp_status = dict(counts, trials=len(done), trialsRunning=0)
        if best:
            exp_status["currentOptimalTrial"] = {
                "bestTrialName": best[1], "parameterAssignments": best[2],
                "observation": best[3]}
        kube.patch_status("experiments", name, exp_status)
        goal = objective.get("goal")
        if best and goal is not None and (
                best[0] >= goal if objective["type"] == "maximize" else best[0] <= goal):
            final = ("Succeeded", "ExperimentGoalReached",
                     "Experiment has succeeded because Objective goal has reached")
            break
        max_failed = spec.get("maxFailedTrialCount")
        if max_failed is not None and counts["trialsFailed"] > 0 and \
                counts["trialsFailed"] >= max_failed:
            final = ("Failed", "ExperimentMaxFailedTrialsReached",
                     "Experiment has failed because max failed count has reached")
            break
    kube.patch_status("experiments", name, {
        "completionTime": now(),
        "conditions": conditions("Experiment", final[0], final[1], final[2])})
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump({"experiment": name, "trials": done}, f, indent=1)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
