"""HTTP API of the kale panel, under `<base_url>/kale/`.

Every handler is a Jupyter `APIHandler`: the server's own authentication (token or
login cookie, with its XSRF check on writes) and authorization apply. Running a
notebook's code is what a kernel does, so every request is authorized as an action on
the `kernels` resource. A notebook is named by its path under the server's root
directory and must resolve inside it. kale runs as a child process with an argument
list (never a shell); names from the page are checked before they reach it.
"""

import asyncio
import json
import os
import re
import shutil
import signal
import sysconfig
import tempfile
import time
import uuid
from collections import deque

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from tornado import web

from .paths import EXPERIMENT_RE, PARAM_RE, RUN_RE, STEP_RE, Refused, notebook_path
from .paths import checked as _checked

PLOT_KINDS = ("history", "importance", "parallel", "slice", "contour", "pareto")
# How long a long-poll for new events waits before answering empty.
POLL_SECONDS = 15.0
# Finished jobs kept for a page that reloads (their events and log).
KEEP_FINISHED = 20


def find_kale():
    """The `kale` of this environment: pip puts the wheel's binary in the scripts
    directory beside the Python running the server; else the first on PATH."""
    here = os.path.join(sysconfig.get_path("scripts"), "kale")
    if os.path.isfile(here) and os.access(here, os.X_OK):
        return here
    return shutil.which("kale")


def cluster():
    """Whether kale would find a Kubernetes cluster, the way kubectl does: a kubeconfig
    (`$KUBECONFIG`, else `~/.kube/config`), else the pod's service account."""
    paths = [p for p in os.environ.get("KUBECONFIG", "").split(os.pathsep) if p]
    if not paths:
        paths = [os.path.expanduser("~/.kube/config")]
    for p in paths:
        if os.path.isfile(p):
            return {"found": True, "how": "kubeconfig", "where": p}
    token = "/var/run/secrets/kubernetes.io/serviceaccount/token"
    if os.environ.get("KUBERNETES_SERVICE_HOST") and os.path.isfile(token):
        return {"found": True, "how": "in-cluster", "where": os.environ["KUBERNETES_SERVICE_HOST"]}
    return {"found": False, "how": None, "where": None}


class Job:
    """One `kale run|tune ... --events -` process: its events, its stderr, its end."""

    def __init__(self, kind, notebook, argv, cwd):
        self.id = uuid.uuid4().hex[:12]
        self.kind = kind
        self.notebook = notebook
        self.argv = argv
        self.cwd = cwd
        self.events = []
        self.log = deque(maxlen=400)
        self.rc = None
        self.started = time.time()
        self.finished = None
        self.process = None
        self.changed = asyncio.Event()

    def summary(self):
        return {
            "id": self.id,
            "kind": self.kind,
            "notebook": self.notebook,
            "started": self.started,
            "finished": self.finished,
            "rc": self.rc,
            "events": len(self.events),
        }

    def notify(self):
        self.changed.set()
        self.changed = asyncio.Event()

    async def start(self):
        self.process = await asyncio.create_subprocess_exec(
            *self.argv,
            cwd=self.cwd,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        asyncio.ensure_future(self._follow())

    async def _read_events(self):
        async for raw in self.process.stdout:
            line = raw.decode("utf-8", "replace").strip()
            if not line:
                continue
            try:
                self.events.append(json.loads(line))
            except ValueError:
                self.log.append(line)
            self.notify()

    async def _read_log(self):
        async for raw in self.process.stderr:
            self.log.append(raw.decode("utf-8", "replace").rstrip("\n"))
            self.notify()

    async def _follow(self):
        await asyncio.gather(self._read_events(), self._read_log())
        self.rc = await self.process.wait()
        self.finished = time.time()
        self.notify()

    def stop(self):
        """Ctrl-C, as a user at a terminal would: kale stops the running steps, keeps
        what finished and, for a tune, says how to resume."""
        if self.process is not None and self.rc is None:
            try:
                self.process.send_signal(signal.SIGINT)
            except ProcessLookupError:
                pass


class Kale:
    """What the handlers share: the binary, the root directory, the jobs."""

    def __init__(self, root_dir, log):
        self.binary = find_kale()
        self.root = os.path.realpath(root_dir)
        self.log = log
        self.jobs = {}

    def notebook(self, path, must_exist=True):
        """The absolute path of a notebook given by its path under the root."""
        try:
            return notebook_path(self.root, path, must_exist)
        except Refused as e:
            raise web.HTTPError(e.status, str(e))

    def relative(self, full):
        return os.path.relpath(full, self.root).replace(os.sep, "/")

    def need_binary(self):
        if not self.binary:
            raise web.HTTPError(
                500,
                "no `kale` binary in this environment: pip install kale's wheel into the "
                "environment Jupyter runs in",
            )
        return self.binary

    async def call(self, argv, cwd, stdin=None, timeout=120):
        """Runs kale to the end: (exit status, stdout, stderr)."""
        proc = await asyncio.create_subprocess_exec(
            self.need_binary(),
            *argv,
            cwd=cwd,
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(stdin), timeout)
        except asyncio.TimeoutError:
            proc.kill()
            await proc.wait()
            raise web.HTTPError(504, f"kale {argv[0]} did not finish within {timeout}s")
        return proc.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")

    async def start(self, kind, notebook, argv):
        job = Job(kind, self.relative(notebook), [self.need_binary(), *argv], os.path.dirname(notebook))
        await job.start()
        self.jobs[job.id] = job
        finished = sorted(
            (j for j in self.jobs.values() if j.rc is not None), key=lambda j: j.started
        )
        for old in finished[:-KEEP_FINISHED]:
            del self.jobs[old.id]
        return job

    def stop_all(self):
        for job in self.jobs.values():
            job.stop()


class Base(APIHandler):
    auth_resource = "kernels"

    @property
    def kale(self) -> Kale:
        return self.settings["kale"]

    def body(self):
        try:
            data = json.loads(self.request.body or b"{}")
        except ValueError:
            raise web.HTTPError(400, "the request body is not JSON")
        if not isinstance(data, dict):
            raise web.HTTPError(400, "the request body is not a JSON object")
        return data

    def reply(self, doc, status=200):
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(doc))


def checked(value, pattern, what):
    try:
        return _checked(value, pattern, what)
    except Refused as e:
        raise web.HTTPError(e.status, str(e))


class InfoHandler(Base):
    @web.authenticated
    @authorized(action="read")
    async def get(self):
        version = None
        problem = None
        if self.kale.binary:
            rc, out, err = await self.kale.call(["--version"], self.kale.root, timeout=20)
            version = out.strip()
            # Kubeflow's Kale installs a `kale` command too; it is not this one.
            if rc != 0 or not version.startswith("kale ") or "runtime" not in version:
                problem = f"`{self.kale.binary}` is not kale's binary ({(out or err).strip()[:200]})"
                version = None
        else:
            problem = "no `kale` binary in this environment"
        self.reply(
            {
                "binary": self.kale.binary,
                "version": version,
                "problem": problem,
                "cluster": cluster(),
                "kfp_endpoint": os.environ.get("KF_PIPELINES_ENDPOINT"),
            }
        )


class ValidateHandler(Base):
    """`kale validate --json` of the page's notebook model, unsaved edits included."""

    @web.authenticated
    @authorized(action="read")
    async def post(self):
        data = self.body()
        full = self.kale.notebook(data.get("path"), must_exist=False)
        notebook = data.get("notebook")
        if not isinstance(notebook, dict):
            raise web.HTTPError(400, "give the notebook's JSON as `notebook`")
        rc, out, err = await self.kale.call(
            ["validate", full, "--stdin", "--json"],
            os.path.dirname(full),
            stdin=json.dumps(notebook).encode(),
            timeout=60,
        )
        try:
            doc = json.loads(out)
        except ValueError:
            raise web.HTTPError(500, f"kale validate failed (exit {rc}): {err.strip()[:2000]}")
        doc["notebook"] = self.kale.relative(full)
        self.reply(doc)


class JobsHandler(Base):
    @web.authenticated
    @authorized(action="read")
    async def get(self):
        self.reply({"jobs": [j.summary() for j in self.kale.jobs.values()]})

    @web.authenticated
    @authorized(action="execute")
    async def post(self):
        data = self.body()
        kind = data.get("kind")
        full = self.kale.notebook(data.get("path"))
        if kind == "run":
            argv = ["run", full, "--events", "-"]
            params = data.get("params") or {}
            if not isinstance(params, dict):
                raise web.HTTPError(400, "params: an object of NAME: VALUE")
            for name, value in params.items():
                checked(name, PARAM_RE, "parameter name")
                text = str(value)
                if "\n" in text:
                    raise web.HTTPError(400, f"parameter {name}: one line")
                argv += ["-p", f"{name}={text}"]
            if data.get("params_from"):
                argv += ["--params-from", checked(data["params_from"], RUN_RE, "trial")]
        elif kind == "tune":
            argv = ["tune", full, "--events", "-"]
            if data.get("name"):
                argv += ["--name", checked(data["name"], EXPERIMENT_RE, "experiment name")]
            if data.get("resume"):
                if not data.get("name"):
                    raise web.HTTPError(400, "resume needs the experiment's name")
                argv.append("--resume")
        elif kind == "katib":
            argv = ["tune", full, "--katib", "--events", "-"]
            if data.get("name"):
                argv += ["--name", checked(data["name"], EXPERIMENT_RE, "experiment name")]
        elif kind == "submit":
            argv = ["submit", full]
        else:
            raise web.HTTPError(400, f"unknown job kind {kind!r}: run, tune, katib or submit")
        job = await self.kale.start(kind, full, argv)
        self.reply(job.summary(), status=201)


class JobHandler(Base):
    def job(self, job_id):
        job = self.kale.jobs.get(job_id)
        if job is None:
            raise web.HTTPError(404, f"no job {job_id}")
        return job

    @web.authenticated
    @authorized(action="read")
    async def get(self, job_id):
        """The events after `since`; waits for some (or the end) up to POLL_SECONDS."""
        job = self.job(job_id)
        try:
            since = max(0, int(self.get_argument("since", "0")))
        except ValueError:
            raise web.HTTPError(400, "since: a number")
        if len(job.events) <= since and job.rc is None:
            try:
                await asyncio.wait_for(job.changed.wait(), POLL_SECONDS)
            except asyncio.TimeoutError:
                pass
        doc = job.summary()
        doc["since"] = since
        doc["new_events"] = job.events[since:]
        doc["log"] = list(job.log)[-60:]
        self.reply(doc)

    @web.authenticated
    @authorized(action="execute")
    async def post(self, job_id):
        """Stop."""
        job = self.job(job_id)
        job.stop()
        self.reply(job.summary())


class ExperimentsHandler(Base):
    @web.authenticated
    @authorized(action="read")
    async def get(self, what):
        full = self.kale.notebook(self.get_argument("path"))
        cwd = os.path.dirname(full)
        if what == "":
            rc, out, err = await self.kale.call(["experiments", "list", "-C", cwd, "--json"], cwd)
            if rc == 2 and "no experiment store" in err:
                # Nothing tuned beside this notebook yet: an empty list, not an error.
                self.reply([])
                return
            self.reply_json(rc, out, err)
        elif what == "show":
            name = checked(self.get_argument("name"), EXPERIMENT_RE, "experiment name")
            rc, out, err = await self.kale.call(["experiments", "show", name, "-C", cwd, "--json"], cwd)
            self.reply_json(rc, out, err)
        elif what == "plot":
            name = checked(self.get_argument("name"), EXPERIMENT_RE, "experiment name")
            kind = self.get_argument("kind", "history")
            if kind not in PLOT_KINDS:
                raise web.HTTPError(400, f"kind: one of {', '.join(PLOT_KINDS)}")
            with tempfile.TemporaryDirectory(prefix="kale-plot-") as tmp:
                svg = os.path.join(tmp, "plot.svg")
                rc, out, err = await self.kale.call(
                    ["experiments", "plot", name, "--kind", kind, "-o", svg, "-C", cwd], cwd
                )
                if rc != 0:
                    raise web.HTTPError(400 if rc == 2 else 500, err.strip()[:2000])
                with open(svg, encoding="utf-8") as f:
                    self.reply({"svg": f.read()})
        else:
            raise web.HTTPError(404)

    @web.authenticated
    @authorized(action="read")
    async def post(self, what):
        if what != "compare":
            raise web.HTTPError(404)
        data = self.body()
        full = self.kale.notebook(data.get("path"))
        cwd = os.path.dirname(full)
        names = data.get("names")
        if not isinstance(names, list) or len(names) < 2:
            raise web.HTTPError(400, "names: two experiments or more")
        names = [checked(n, EXPERIMENT_RE, "experiment name") for n in names]
        # The overlaid histories from `compare --plot`; the side-by-side numbers from
        # each experiment's own document (`compare` prints a text table).
        shown = []
        for name in names:
            rc, out, err = await self.kale.call(["experiments", "show", name, "-C", cwd, "--json"], cwd)
            if rc != 0:
                raise web.HTTPError(400 if rc == 2 else 500, err.strip()[:2000])
            shown.append(json.loads(out))
        with tempfile.TemporaryDirectory(prefix="kale-compare-") as tmp:
            svg = os.path.join(tmp, "compare.svg")
            rc, out, err = await self.kale.call(
                ["experiments", "compare", *names, "--plot", svg, "-C", cwd], cwd
            )
            if rc != 0:
                raise web.HTTPError(400 if rc == 2 else 500, err.strip()[:2000])
            with open(svg, encoding="utf-8") as f:
                self.reply({"experiments": shown, "svg": f.read()})

    def reply_json(self, rc, out, err):
        if rc != 0:
            raise web.HTTPError(400 if rc == 2 else 500, err.strip()[:2000])
        self.reply(json.loads(out))


class DebugHandler(Base):
    """`kale debug RUN [STEP]`: writes the step's notebook beside the original; the
    page opens it."""

    @web.authenticated
    @authorized(action="execute")
    async def post(self):
        data = self.body()
        full = self.kale.notebook(data.get("path"))
        cwd = os.path.dirname(full)
        argv = ["debug", checked(data.get("run"), RUN_RE, "run")]
        if data.get("step"):
            argv.append(checked(data["step"], STEP_RE, "step"))
        argv += ["-C", cwd]
        rc, out, err = await self.kale.call(argv, cwd)
        if rc != 0:
            raise web.HTTPError(400 if rc == 2 else 500, err.strip()[:2000])
        written = self.written_notebook(out + "\n" + err, cwd)
        self.reply({"notebook": self.kale.relative(written), "message": err.strip()})

    def written_notebook(self, text, cwd):
        for word in re.findall(r"\S+\.ipynb", text):
            candidate = os.path.realpath(os.path.join(cwd, word.strip("`'\"")))
            if os.path.isfile(candidate) and os.path.commonpath([candidate, self.kale.root]) == self.kale.root:
                return candidate
        raise web.HTTPError(500, f"kale debug did not say which notebook it wrote: {text.strip()[:500]}")


class CompileHandler(Base):
    """`kale compile --target kfp|katib` to a file beside the notebook."""

    @web.authenticated
    @authorized(action="write")
    async def post(self):
        data = self.body()
        full = self.kale.notebook(data.get("path"))
        target = data.get("target", "kfp")
        if target not in ("kfp", "katib"):
            raise web.HTTPError(400, "target: kfp or katib")
        stem = full[: -len(".ipynb")]
        out_file = f"{stem}.{'pipeline' if target == 'kfp' else 'katib'}.yaml"
        rc, out, err = await self.kale.call(
            ["compile", full, "--target", target, "-o", out_file], os.path.dirname(full)
        )
        if rc != 0:
            raise web.HTTPError(400 if rc == 2 else 500, err.strip()[:2000])
        self.reply({"file": self.kale.relative(out_file), "message": err.strip()})


def setup_handlers(server_app):
    web_app = server_app.web_app
    root = getattr(server_app, "root_dir", None) or web_app.settings.get("server_root_dir") or os.getcwd()
    kale = Kale(root, server_app.log)
    web_app.settings["kale"] = kale
    base = url_path_join(web_app.settings["base_url"], "kale")
    web_app.add_handlers(
        ".*$",
        [
            (url_path_join(base, "info"), InfoHandler),
            (url_path_join(base, "validate"), ValidateHandler),
            (url_path_join(base, "jobs"), JobsHandler),
            (url_path_join(base, r"jobs/([0-9a-f]{12})"), JobHandler),
            (url_path_join(base, r"experiments/?(|show|plot|compare)"), ExperimentsHandler),
            (url_path_join(base, "debug"), DebugHandler),
            (url_path_join(base, "compile"), CompileHandler),
        ],
    )
