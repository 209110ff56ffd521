"""The JupyterLab server extension's rules for what a request may name
(jupyterlab/kale_jupyterlab/paths.py): notebooks under the server root only, names kale
accepts. The handlers themselves are exercised end to end by scripts/check-jupyterlab."""

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "jupyterlab"))

from kale_jupyterlab.paths import (  # noqa: E402
    EXPERIMENT_RE,
    PARAM_RE,
    RUN_RE,
    Refused,
    checked,
    notebook_path,
)


@pytest.fixture
def root(tmp_path):
    (tmp_path / "work" / "sub").mkdir(parents=True)
    (tmp_path / "work" / "a.ipynb").write_text("{}")
    (tmp_path / "work" / "sub" / "b.ipynb").write_text("{}")
    (tmp_path / "secret.ipynb").write_text("{}")
    # A link inside the root that points out of it.
    os.symlink(tmp_path / "secret.ipynb", tmp_path / "work" / "link.ipynb")
    return os.path.realpath(tmp_path / "work")


def test_notebooks_under_the_root_resolve(root):
    assert notebook_path(root, "a.ipynb") == os.path.join(root, "a.ipynb")
    assert notebook_path(root, "sub/b.ipynb") == os.path.join(root, "sub", "b.ipynb")
    assert notebook_path(root, "./sub//b.ipynb") == os.path.join(root, "sub", "b.ipynb")
    # An unsaved notebook is validated before it exists on disk.
    assert notebook_path(root, "new.ipynb", must_exist=False) == os.path.join(root, "new.ipynb")


@pytest.mark.parametrize(
    "path,status",
    [
        ("../secret.ipynb", 403),
        ("sub/../../secret.ipynb", 403),
        # Jupyter's paths are relative to its root, a leading `/` included.
        ("/etc/passwd.ipynb", 404),
        ("link.ipynb", 403),
        ("a.py", 400),
        ("", 400),
        (None, 400),
        ("a\x00.ipynb", 400),
        ("missing.ipynb", 404),
    ],
)
def test_anything_else_is_refused(root, path, status):
    with pytest.raises(Refused) as e:
        notebook_path(root, path)
    assert e.value.status == status


def test_names_are_checked_before_they_reach_kale():
    assert checked("digits-svc-1", EXPERIMENT_RE, "experiment") == "digits-svc-1"
    assert checked("digits-svc-1/3", RUN_RE, "run") == "digits-svc-1/3"
    assert checked("last", RUN_RE, "run") == "last"
    for bad, pattern in [
        ("--resume", EXPERIMENT_RE),
        ("../x", EXPERIMENT_RE),
        ("a b", EXPERIMENT_RE),
        ("x/../../y", RUN_RE),
        ("C; rm -rf /", PARAM_RE),
        ("1st", PARAM_RE),
        (3, PARAM_RE),
    ]:
        with pytest.raises(Refused):
            checked(bad, pattern, "name")
