"""What the differential suite reads from a notebook itself, without kale: its pipeline
parameters with their defaults, its metric names, and how an override is typed.

Reading these here rather than from `kale inspect` keeps the truth, and what the suite
asks of each target, independent of the code under test."""

import ast
import json


def tags_of(cell):
    return cell.get("metadata", {}).get("tags", []) or []


def source_of(cell):
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def metric_names(source):
    """The names a `pipeline-metrics` cell prints (`print(name)` or `name` lines), in
    order, without duplicates."""
    names = []
    for stmt in ast.parse(source).body:
        value = stmt.value if isinstance(stmt, ast.Expr) else None
        if (isinstance(value, ast.Call) and isinstance(value.func, ast.Name)
                and value.func.id == "print" and len(value.args) == 1 and not value.keywords):
            value = value.args[0]
        if not isinstance(value, ast.Name):
            raise ValueError("not a metric line: %s" % ast.unparse(stmt))
        if value.id not in names:
            names.append(value.id)
    return names


def parameter_defaults(source):
    """NAME -> default of a `pipeline-parameters` cell's literal assignments, in order."""
    out = {}
    for stmt in ast.parse(source).body:
        if (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1
                and isinstance(stmt.targets[0], ast.Name)):
            try:
                out[stmt.targets[0].id] = ast.literal_eval(stmt.value)
            except ValueError:
                pass
    return out


def read(path):
    """(parameters: {NAME: default}, metrics: [NAME]) of the notebook at `path`."""
    with open(path, encoding="utf-8") as f:
        nb = json.load(f)
    parameters, metrics = {}, []
    for cell in nb.get("cells", []):
        if cell.get("cell_type") != "code":
            continue
        tags = tags_of(cell)
        if "pipeline-parameters" in tags:
            parameters.update(parameter_defaults(source_of(cell)))
        elif "pipeline-metrics" in tags:
            metrics = metric_names(source_of(cell))
    return parameters, metrics


def typed_like(default, value):
    """An override typed like the parameter's default, as `kale run -p NAME=VALUE` types
    it, so that every target and the truth get the same value (an override `lr = 1` of
    `lr = 0.1` is the float 1.0 everywhere)."""
    if isinstance(default, bool):
        if isinstance(value, str):
            return value.strip().lower() in ("true", "1", "yes")
        return bool(value)
    if isinstance(default, int):
        return int(value)
    if isinstance(default, float):
        return float(value)
    if isinstance(default, str):
        return str(value)
    return value


def cli_text(value):
    """The text of a typed value on kale's command line (`-p`, `categorical:`)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else repr(value)
