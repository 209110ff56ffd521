"""Kale 2.3's only local execution path: the pipeline DSL `kale --nb` generated,
run by the KFP SDK's local SubprocessRunner (no cluster, no docker).

Runs inside the alternatives' venv (bench/.venv-alt), from the directory that holds
`.kale/` (the generated components read and write paths relative to it).
Usage: python alt_kfp_local.py DSL_PY PIPELINE_ROOT
Exits non-zero if the pipeline run fails.
"""
import importlib.util
import sys

from kfp import local


def main():
    dsl, root = sys.argv[1], sys.argv[2]
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=root)
    spec = importlib.util.spec_from_file_location("kale_generated_pipeline", dsl)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.auto_generated_pipeline()


if __name__ == "__main__":
    main()
