"""One Katib trial: start a KFP run of an uploaded pipeline version with the trial's
parameters, wait for it, and print its metrics as `name=value` lines for Katib's StdOut
metrics collector. Exit 0 when the run succeeded and reported every metric asked for,
1 when it did not (or the KFP API failed), 2 for bad arguments.

This file is the only implementation of a trial. The Katib Experiment ships it inline in
the trial template and runs it with the steps' image's Python; `kale trial` runs it with
the local Python. Standard library only, Python 3.8+, so any image that runs the steps
runs it.

Katib's collector reads every line of the container's output (stdout and stderr alike)
that mentions a metric name, so progress and error lines never contain `=`.
"""

import argparse
import json
import math
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

# The KFP API service as seen from a pod in the cluster.
IN_CLUSTER_ENDPOINT = "http://ml-pipeline.kubeflow.svc.cluster.local:8888"
# Where Kubeflow's `access-ml-pipeline` PodDefault mounts the KFP API token.
DEFAULT_TOKEN_PATH = "/var/run/secrets/kubeflow/pipelines/token"
# The output artifact of the metrics step (kale's kfp::METRICS_ARTIFACT).
METRICS_ARTIFACT = "kale-metrics"
TERMINAL_STATES = ("SUCCEEDED", "SKIPPED", "FAILED", "CANCELED")

HINT_UNREACHABLE = (
    "pass --kfp-endpoint URL or set KF_PIPELINES_ENDPOINT; from outside the cluster, "
    "e.g. `kubectl port-forward -n kubeflow svc/ml-pipeline 8888:8888` and use "
    "http://localhost:8888"
)
HINT_FORBIDDEN = (
    "set KF_PIPELINES_TOKEN (or KF_PIPELINES_SA_TOKEN_PATH) to a token allowed to use "
    "this namespace's pipelines"
)
HINT_NOT_FOUND = "check the pipeline / version / run id"
HINT_API = "the message above is the KFP API server's own"
HINT_INPUT = "pass -p NAME=VALUE for parameters the pipeline declares"
HINT_RUN_FAILED = "open the run in the KFP UI to see which step failed and its logs"
HINT_TIMEOUT = "raise --timeout, or check why the run is stuck in the KFP UI"
HINT_MISSING = (
    "the `pipeline-metrics` cell must print every metric; was the pipeline compiled by kale?"
)


class Failure(Exception):
    def __init__(self, message, hint, code=1):
        Exception.__init__(self, message)
        self.hint = hint
        self.code = code


def log(message):
    sys.stderr.write("kale trial: %s\n" % message)
    sys.stderr.flush()


class Client:
    """The few v2beta1 calls a trial needs; endpoint and token by the KFP SDK's
    conventions."""

    def __init__(self, endpoint):
        endpoint = endpoint or os.environ.get("KF_PIPELINES_ENDPOINT") or IN_CLUSTER_ENDPOINT
        self.endpoint = endpoint.rstrip("/")
        self.token = os.environ.get("KF_PIPELINES_TOKEN") or None
        if self.token is None:
            path = os.environ.get("KF_PIPELINES_SA_TOKEN_PATH", DEFAULT_TOKEN_PATH)
            try:
                with open(path) as f:
                    self.token = f.read().strip() or None
            except OSError:
                pass

    def call(self, what, method, path, query=None, body=None):
        url = self.endpoint + path
        if query:
            url += "?" + urllib.parse.urlencode(query)
        headers = {}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if self.token:
            headers["Authorization"] = "Bearer " + self.token
        request = urllib.request.Request(url, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=60) as resp:
                text = resp.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as e:
            raise api_error(what, e.code, e.read().decode("utf-8", "replace"))
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise Failure(
                "cannot reach the Kubeflow Pipelines API at %s: %s" % (self.endpoint, reason),
                HINT_UNREACHABLE,
            )
        if not text.strip():
            return {}
        try:
            return json.loads(text)
        except ValueError as e:
            raise Failure(
                "%s: the KFP API answered with something that is not JSON (%s); is %s "
                "really the KFP API?" % (what, e, self.endpoint),
                HINT_API,
            )

    def find_pipeline(self, name, namespace):
        flt = {
            "predicates": [
                {"key": "display_name", "operation": "EQUALS", "string_value": name}
            ]
        }
        query = [("filter", json.dumps(flt)), ("page_size", "1")]
        if namespace:
            query.append(("namespace", namespace))
        found = self.call("listing pipelines", "GET", "/apis/v2beta1/pipelines", query)
        for p in found.get("pipelines") or []:
            return p.get("pipeline_id")
        return None

    def latest_version(self, pipeline_id):
        found = self.call(
            "listing pipeline versions",
            "GET",
            "/apis/v2beta1/pipelines/%s/versions" % pipeline_id,
            [("page_size", "1"), ("sort_by", "created_at desc")],
        )
        for v in found.get("pipeline_versions") or []:
            if v.get("pipeline_version_id"):
                return v["pipeline_version_id"]
        raise Failure(
            "pipeline %s not found: it has no versions" % pipeline_id, HINT_NOT_FOUND
        )

    def metrics(self, run):
        """The values the run's steps wrote into their metrics artifacts, merged. The
        v2 API does not return metric values, so each artifact is downloaded through
        its signed URL (which carries its own credentials)."""
        values = {}
        tasks = (run.get("run_details") or {}).get("task_details") or []
        for task in tasks:
            out = (task.get("outputs") or {}).get(METRICS_ARTIFACT) or {}
            for artifact_id in out.get("artifact_ids") or []:
                artifact_id = str(artifact_id)
                artifact = self.call(
                    "metrics artifact %s" % artifact_id,
                    "GET",
                    "/apis/v2beta1/artifacts/%s" % artifact_id,
                    [("view", "DOWNLOAD")],
                )
                url = artifact.get("download_url")
                if not url:
                    raise Failure(
                        "metrics artifact %s has no download URL (is the KFP object "
                        "store reachable?)" % artifact_id,
                        HINT_API,
                    )
                try:
                    with urllib.request.urlopen(url, timeout=60) as resp:
                        text = resp.read().decode("utf-8", "replace")
                except urllib.error.HTTPError as e:
                    raise api_error(
                        "downloading metrics artifact %s" % artifact_id,
                        e.code,
                        e.read().decode("utf-8", "replace"),
                    )
                except (urllib.error.URLError, OSError) as e:
                    raise Failure(
                        "cannot reach the Kubeflow Pipelines API at %s: %s"
                        % (url, getattr(e, "reason", e)),
                        HINT_UNREACHABLE,
                    )
                try:
                    got = json.loads(text)
                except ValueError as e:
                    got = e
                if not isinstance(got, dict):
                    raise Failure(
                        "metrics artifact %s is not a JSON object of metric values" % artifact_id,
                        HINT_API,
                    )
                values.update(got)
        return values


def api_error(what, status, text):
    # grpc-gateway errors: {"error"|"message": ..., "code": N}
    message = None
    try:
        doc = json.loads(text)
        if isinstance(doc, dict):
            message = doc.get("message") or doc.get("error")
    except ValueError:
        pass
    if not isinstance(message, str):
        message = text.strip()[:300]
    if status in (401, 403):
        return Failure(
            "the Kubeflow Pipelines API refused %s (%d): %s" % (what, status, message),
            HINT_FORBIDDEN,
        )
    if status == 404:
        return Failure("%s not found: %s" % (what, message), HINT_NOT_FOUND)
    return Failure("%s failed (%d): %s" % (what, status, message), HINT_API)


def declared_parameter_types(version):
    # The API returns the spec alone, or {pipeline_spec, platform_spec} when it has both.
    spec = version.get("pipeline_spec") or {}
    if "root" not in spec:
        spec = spec.get("pipeline_spec") or {}
    params = ((spec.get("root") or {}).get("inputDefinitions") or {}).get("parameters") or {}
    return {name: p.get("parameterType") for name, p in params.items()}


def typed_parameter(name, declared, text):
    """A value given as text (Katib's assignments always are) as the JSON type the
    pipeline declares: the KFP API rejects a number sent as a string."""

    def bad(what):
        return Failure(
            "parameter `%s` must be %s, got `%s`" % (name, what, text), HINT_INPUT, 2
        )

    if declared == "NUMBER_INTEGER":
        try:
            return int(text.strip())
        except ValueError:
            pass
        try:
            f = float(text.strip())
        except ValueError:
            raise bad("an integer")
        if math.isfinite(f) and f == int(f) and abs(f) < 9.0e15:
            return int(f)
        raise bad("an integer")
    if declared == "NUMBER_DOUBLE":
        try:
            f = float(text.strip())
        except ValueError:
            raise bad("a number")
        if not math.isfinite(f):
            raise bad("a number")
        return f
    if declared == "BOOLEAN":
        low = text.strip().lower()
        if low in ("true", "1"):
            return True
        if low in ("false", "0"):
            return False
        raise bad("true or false")
    if declared == "STRING":
        return text
    raise Failure(
        "parameter `%s` has type %s, which `kale trial` cannot pass" % (name, declared),
        HINT_INPUT,
        2,
    )


def metric_text(v):
    # Katib's filter takes `[+-]?\d*(\.\d+)?([Ee][+-]?\d+)?`: plain numbers only.
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, str):
        return v
    return json.dumps(v)


def parse_args(argv):
    ap = argparse.ArgumentParser(prog="kale trial", allow_abbrev=False)
    ap.add_argument("--kfp-endpoint")
    ap.add_argument("--pipeline-id")
    ap.add_argument("--pipeline")
    ap.add_argument("--pipeline-version")
    ap.add_argument("--kfp-experiment-id")
    ap.add_argument("-n", "--namespace")
    ap.add_argument("--run-name")
    ap.add_argument("-p", "--param", action="append", default=[])
    ap.add_argument("--metrics", action="append", default=[])
    # The longest wait between checks of the run's state.
    ap.add_argument("--poll-interval", type=float, default=10.0)
    ap.add_argument("--timeout", type=float)
    return ap.parse_args(argv)


def trial(args, out):
    params = []
    for text in args.param:
        name, eq, value = text.partition("=")
        if not eq or not name.strip():
            raise Failure("-p `%s` is not of the form NAME=VALUE" % text, HINT_INPUT, 2)
        params.append((name.strip(), value))
    if not (math.isfinite(args.poll_interval) and args.poll_interval > 0):
        raise Failure("--poll-interval must be a positive number of seconds", HINT_INPUT, 2)
    metrics_wanted = [m for group in args.metrics for m in group.split(",") if m]
    run_name = args.run_name or "kale-trial-%d" % os.getpid()

    client = Client(args.kfp_endpoint)
    pipeline_id = args.pipeline_id
    if not pipeline_id:
        if not args.pipeline:
            raise Failure("name the pipeline with --pipeline-id or --pipeline", HINT_INPUT, 2)
        pipeline_id = client.find_pipeline(args.pipeline, args.namespace)
        if not pipeline_id:
            raise Failure(
                "pipeline `%s` not found: no pipeline has this name; upload it with "
                "`kale submit`" % args.pipeline,
                HINT_NOT_FOUND,
            )
    version_id = args.pipeline_version or client.latest_version(pipeline_id)
    version = client.call(
        "pipeline version %s" % version_id,
        "GET",
        "/apis/v2beta1/pipelines/%s/versions/%s" % (pipeline_id, version_id),
    )
    declared = declared_parameter_types(version)
    typed = {}
    for name, text in params:
        if name not in declared:
            raise Failure(
                "the pipeline has no parameter `%s` (it has: %s)"
                % (name, ", ".join(sorted(declared)) or "none"),
                HINT_INPUT,
                2,
            )
        typed[name] = typed_parameter(name, declared[name], text)

    body = {
        "display_name": run_name,
        "pipeline_version_reference": {
            "pipeline_id": pipeline_id,
            "pipeline_version_id": version_id,
        },
        "runtime_config": {"parameters": typed},
    }
    if args.kfp_experiment_id:
        body["experiment_id"] = args.kfp_experiment_id
    created = client.call("creating a run", "POST", "/apis/v2beta1/runs", body=body)
    run_id = created.get("run_id")
    if not run_id:
        raise Failure("run created without an id: %s" % json.dumps(created), HINT_API)
    log("started KFP run %s (%s) of pipeline version %s" % (run_id, run_name, version_id))

    started = time.monotonic()
    last_state = None
    # Checks start every half second and back off to --poll-interval, so a short run
    # is not billed a whole interval and a long one does not flood the API.
    delay = min(0.5, args.poll_interval)
    while True:
        run = client.call("run %s" % run_id, "GET", "/apis/v2beta1/runs/%s" % run_id)
        state = run.get("state") or "PENDING"
        if state != last_state:
            log("run %s is %s" % (run_id, state))
            last_state = state
        if state in TERMINAL_STATES:
            break
        if args.timeout is not None and time.monotonic() - started > args.timeout:
            raise Failure(
                "run %s did not finish within %d s" % (run_id, args.timeout), HINT_TIMEOUT
            )
        time.sleep(delay)
        delay = min(delay * 2, args.poll_interval)
    if state != "SUCCEEDED":
        message = (run.get("error") or {}).get("message")
        raise Failure(
            "run %s ended %s%s" % (run_id, state, ": " + message if message else ""),
            HINT_RUN_FAILED,
        )

    values = client.metrics(run)
    names = metrics_wanted or list(values)
    for name in names:
        if name in values:
            out.write("%s=%s\n" % (name, metric_text(values[name])))
    out.flush()
    missing = [n for n in names if n not in values]
    if missing:
        raise Failure(
            "run %s succeeded but reported no value for %s" % (run_id, ", ".join(missing)),
            HINT_MISSING,
        )


def main(argv):
    try:
        trial(parse_args(argv), sys.stdout)
    except Failure as e:
        sys.stderr.write("error: %s\n  hint: %s\n" % (e, e.hint))
        return e.code
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
