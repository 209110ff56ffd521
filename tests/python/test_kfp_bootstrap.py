"""Direct tests of the KFP step bootstrap (src/kubeflow/kfp_bootstrap.py): the entry
point of every step container kale compiles, run here as KFP's launcher runs it, with
a runtime directory, a step program and artifact directories. (The whole pipeline runs
under the real KFP local runner in tests/it/kfp_local.rs.)"""

import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

SRC = os.path.join(os.path.dirname(__file__), "..", "..", "src")
BOOTSTRAP = os.path.join(SRC, "kubeflow", "kfp_bootstrap.py")
RUNTIME = os.path.join(SRC, "runtime", "kale_runtime.py")


@pytest.fixture
def runtime_dir(tmp_path):
    d = tmp_path / "runtime"
    d.mkdir()
    shutil.copy(RUNTIME, d / "kale_runtime.py")
    shutil.copy(BOOTSTRAP, d / "kfp_bootstrap.py")
    return d


def runtime_id(d):
    h = hashlib.sha256()
    for name in ("kale_runtime.py", "kfp_bootstrap.py"):
        h.update((d / name).read_bytes())
        h.update(b"\0")
    return h.hexdigest()[:16]


def program(step, body, outputs=(), metrics=(), inputs=()):
    lines = [
        "import kale_runtime as _kale",
        "_kale.start(%r)" % step,
        "_kale.shared_definitions_done()",
    ]
    if inputs:
        lines.append("globals().update(_kale.inputs(%r))" % list(inputs))
    lines += textwrap.dedent(body).strip().splitlines()
    lines.append("_kale.finish(outputs=%r, metrics=%r)" % (list(outputs), list(metrics)))
    return "\n".join(lines) + "\n", len(lines)


def bootstrap(runtime_dir, tmp_path, args, termination=None):
    env = dict(os.environ)
    if termination is not None:
        env["KALE_TERMINATION_LOG"] = str(termination)
    return subprocess.run(
        [sys.executable, str(runtime_dir / "kfp_bootstrap.py"), str(runtime_dir)] + args,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
    )


def test_a_step_gets_typed_parameters_and_fills_its_output_artifacts(runtime_dir, tmp_path):
    src, _ = program(
        "train",
        """
        model = {"C": C, "n": n, "fast": fast}
        accuracy = 0.5 + n / 100
        """,
        outputs=["model"],
        metrics=["accuracy"],
    )
    out_dir, metrics_path = tmp_path / "model-artifact", tmp_path / "metrics" / "m.json"
    executor_output = tmp_path / "executor" / "output.json"
    done = bootstrap(runtime_dir, tmp_path, [
        "--step", "train", "--program", src, "--runtime-id", runtime_id(runtime_dir),
        "--param", "C", "float", "0.25", "--param", "n", "int", "3.0",
        "--param", "fast", "bool", "true",
        "--output", "model", str(out_dir), "gs://bucket/model",
        "--metrics", str(metrics_path), "gs://bucket/metrics",
        "--executor-output", str(executor_output),
    ])
    assert done.returncode == 0, done.stderr
    # Metric lines for Katib's StdOut collector.
    assert "accuracy=0.53" in done.stdout
    doc = json.loads(executor_output.read_text())
    model = doc["artifacts"]["model"]["artifacts"][0]
    assert model["uri"] == "gs://bucket/model"
    saved = out_dir / model["metadata"]["file"]
    assert saved.exists()
    # The artifact holds the step's own save, loadable by a later step.
    later, _ = program("evaluate", "print('loaded', model)", inputs=["model"])
    after = bootstrap(runtime_dir, tmp_path, [
        "--step", "evaluate", "--program", later, "--runtime-id", runtime_id(runtime_dir),
        "--input", "model", str(out_dir),
        "--executor-output", str(tmp_path / "executor2.json"),
    ])
    assert after.returncode == 0, after.stderr
    assert "loaded {'C': 0.25, 'n': 3, 'fast': True}" in after.stdout
    assert json.loads(metrics_path.read_text()) == {"accuracy": 0.53}
    assert doc["artifacts"]["kale-metrics"]["artifacts"][0]["metadata"] == {"accuracy": 0.53}


def test_a_failing_step_is_located_in_the_notebook_and_in_the_termination_message(
    runtime_dir, tmp_path
):
    src, n = program("train", "x = 1\nraise ValueError('bad C')")
    raise_line = src.splitlines().index("raise ValueError('bad C')") + 1
    termination = tmp_path / "termination-log"
    termination.write_text("")
    done = bootstrap(runtime_dir, tmp_path, [
        "--step", "train", "--program", src, "--runtime-id", runtime_id(runtime_dir),
        # The two user lines are cell 7's lines 1 and 2.
        "--lines", "%d:2:7" % (raise_line - 1),
        "--executor-output", str(tmp_path / "out.json"),
    ], termination=termination)
    assert done.returncode == 1
    message = termination.read_text()
    assert message.startswith(
        "step `train` failed at cell 7, line 2: ValueError: bad C"
    ), message
    assert "raise ValueError('bad C')" in message
    assert not (tmp_path / "out.json").exists()


def test_a_runtime_from_another_kale_and_bad_parameters_are_refused(runtime_dir, tmp_path):
    src, _ = program("train", "pass")
    base = ["--step", "train", "--program", src,
            "--executor-output", str(tmp_path / "out.json")]
    done = bootstrap(runtime_dir, tmp_path, base + ["--runtime-id", "0" * 16])
    assert done.returncode == 1
    assert "was compiled for 0000000000000000" in done.stderr
    done = bootstrap(runtime_dir, tmp_path, base + [
        "--runtime-id", runtime_id(runtime_dir), "--param", "n", "int", "2.5"])
    assert done.returncode == 1
    assert "parameter `n` must be int, got '2.5'" in done.stderr
    done = bootstrap(runtime_dir, tmp_path, ["--step", "train", "--frobnicate"])
    assert done.returncode == 1
    assert "bad bootstrap arguments near '--frobnicate'" in done.stderr


def test_an_output_the_step_did_not_save_fails_naming_it(runtime_dir, tmp_path):
    src, _ = program("train", "model = 1", outputs=[])
    done = bootstrap(runtime_dir, tmp_path, [
        "--step", "train", "--program", src, "--runtime-id", runtime_id(runtime_dir),
        "--output", "model", str(tmp_path / "m"), "gs://b/m",
        "--executor-output", str(tmp_path / "out.json"),
    ])
    assert done.returncode == 1
    assert "step `train` did not save `model`, which a later step reads" in done.stderr


def test_the_shared_cells_come_from_the_runtime_artifact_and_keep_the_line_map(
    runtime_dir, tmp_path
):
    # As kale compiles it: the imports and functions cells once, in the runtime
    # artifact; the program holds one placeholder line naming their digest.
    shared = "# --- cell 1\nimport math\n# --- cell 2\ndef halve(v):\n    return v / 0\n"
    digest = hashlib.sha256(shared.encode()).hexdigest()[:16]
    (runtime_dir / ("shared-%s.py" % digest)).write_text(shared)
    src = "\n".join([
        "import kale_runtime as _kale",
        "_kale.start('train')",
        "# kale: shared cells %s" % digest,
        "_kale.shared_definitions_done()",
        "y = halve(math.pi)",
        "_kale.finish(outputs=[], metrics=[])",
    ]) + "\n"
    termination = tmp_path / "termination-log"
    termination.write_text("")
    # Lines as in the whole program: cell 2 is lines 6-7, cell 5 line 9.
    args = ["--step", "train", "--program", src, "--runtime-id", runtime_id(runtime_dir),
            "--lines", "4:1:1,6:2:2,9:1:5", "--executor-output", str(tmp_path / "out.json")]
    done = bootstrap(runtime_dir, tmp_path, args, termination=termination)
    assert done.returncode == 1
    # The error is in the functions cell, located as `kale run` locates it.
    assert termination.read_text().startswith(
        "step `train` failed at cell 2, line 2: ZeroDivisionError"), termination.read_text()
    # Cells that do not match their digest are refused, not run.
    (runtime_dir / ("shared-%s.py" % digest)).write_text(shared.replace("/ 0", "/ 2"))
    done = bootstrap(runtime_dir, tmp_path, args)
    assert done.returncode == 1
    assert "do not match digest %s" % digest in done.stderr
    (runtime_dir / ("shared-%s.py" % digest)).unlink()
    done = bootstrap(runtime_dir, tmp_path, args)
    assert done.returncode == 1
    assert "lacks the notebook's shared cells %s" % digest in done.stderr
