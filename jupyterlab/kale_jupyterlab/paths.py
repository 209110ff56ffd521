"""Which files the panel's requests may name: notebooks under the server's root only.

Kept apart from the handlers (no Jupyter import) so the rules are tested on their own.
"""

import os
import re

# Experiment names as kale makes them (`<pipeline>-<n>`) or a user gives them; a run is
# a run id, `last`, or `EXPERIMENT/TRIAL`.
EXPERIMENT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
RUN_RE = re.compile(r"^(last|[A-Za-z0-9][A-Za-z0-9._-]{0,199}(/[0-9]{1,9})?)$")
STEP_RE = re.compile(r"^[_a-z][_a-z0-9]{0,199}$")
PARAM_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,199}$")


class Refused(Exception):
    """A request the server must not act on; `status` is its HTTP status."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


def notebook_path(root, path, must_exist=True):
    """The absolute path of the notebook `path` names under `root` (a real path).

    Refuses anything that is not an `.ipynb` path, or that resolves (`..`, an absolute
    path, a symbolic link) outside the root."""
    if not isinstance(path, str) or not path or "\x00" in path:
        raise Refused(400, "give the notebook's path under the server root")
    if not path.endswith(".ipynb"):
        raise Refused(400, f"{path}: not a notebook (.ipynb)")
    parts = [p for p in path.replace("\\", "/").split("/") if p not in ("", ".")]
    full = os.path.realpath(os.path.join(root, *parts))
    if os.path.commonpath([full, root]) != root:
        raise Refused(403, f"{path}: outside the server's root directory")
    if must_exist and not os.path.isfile(full):
        raise Refused(404, f"{path}: no such notebook")
    return full


def checked(value, pattern, what):
    """`value` when it is a string `pattern` matches whole."""
    if not isinstance(value, str) or not pattern.match(value):
        raise Refused(400, f"invalid {what}: {value!r}")
    return value
