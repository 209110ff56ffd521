#!/usr/bin/env python3
"""`kale compile --target kfp` over every notebook of the shared corpus (and examples/):
the YAML size per step and the compile time, for one kale binary or two side by side.

    bench/compile_corpus.py --kale target/release/kale [--baseline-kale OTHER] [--reps 5]

For each notebook that `kale validate` accepts: the compiled pipeline's size divided
by its number of steps (the runtime task is not a step), the same without the runtime
bundle (~24 KB, the same in every pipeline), and the median wall time of
`kale compile` over the repetitions (both binaries alternating, one notebook at a time).
Printed: each notebook's numbers, then the median and the distribution (quartiles, max,
how many above 10 KB per step) over the notebooks. `KALE_PYTHON` is passed through:
what it names is the Python whose packages compile pins. Standard library only.
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def notebooks(dirs):
    out = []
    for d in dirs:
        for base, _, files in os.walk(d):
            out.extend(os.path.join(base, f) for f in files if f.endswith(".ipynb"))
    return sorted(out)


def compile_once(kale, nb, out):
    t0 = time.perf_counter()
    p = subprocess.run([kale, "compile", nb, "--target", "kfp", "-o", out],
                       capture_output=True, text=True)
    return time.perf_counter() - t0, p


def steps_in(yaml_text):
    # Every step's task has `taskInfo: {name: ...}`; so does the runtime task.
    return yaml_text.count("taskInfo:") - 1


def runtime_bundle_bytes(yaml_text):
    """Bytes of the line holding kale's runtime bundle: the second argument of the
    `kale-runtime` task's container, the same text in every pipeline one kale compiles."""
    lines = yaml_text.split("\n")
    start = lines.index("    exec-kale-runtime:")
    args = next(i for i in range(start, len(lines)) if lines[i].strip() == "args:")
    item = args + 2
    indent = len(lines[item]) - len(lines[item].lstrip())
    end = item + 1
    # A long scalar is folded over lines indented deeper than its `- ` item.
    while end < len(lines) and len(lines[end]) - len(lines[end].lstrip()) > indent:
        end += 1
    return sum(len(l.encode("utf-8")) + 1 for l in lines[item:end])


def quartiles(values):
    if len(values) < 2:
        return values * 3
    q = statistics.quantiles(values, n=4)
    return q


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kale", required=True)
    ap.add_argument("--baseline-kale")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--corpus", action="append",
                    default=None, help="directories to walk (default: ../shared/corpus and examples/)")
    args = ap.parse_args()
    dirs = args.corpus or [os.path.join(os.path.dirname(ROOT), "shared", "corpus"),
                           os.path.join(ROOT, "examples")]
    sides = [("kale", args.kale)] + ([("baseline", args.baseline_kale)] if args.baseline_kale else [])
    rows = []
    tmp = tempfile.mkdtemp(prefix="kale-compile-corpus-")
    for i, nb in enumerate(notebooks(dirs)):
        v = subprocess.run([args.kale, "validate", nb], capture_output=True, text=True)
        if v.returncode != 0:
            continue
        times = {name: [] for name, _ in sides}
        sizes = {}
        for _ in range(args.reps):
            for name, binary in sides:
                out = os.path.join(tmp, "%d-%s.yaml" % (i, name))
                wall, p = compile_once(binary, nb, out)
                if p.returncode != 0:
                    sys.exit("%s failed on %s:\n%s" % (binary, nb, p.stderr))
                times[name].append(wall)
                text = open(out, encoding="utf-8").read()
                sizes[name] = (len(text.encode("utf-8")), steps_in(text),
                               runtime_bundle_bytes(text))
        rel = os.path.relpath(nb, os.path.dirname(ROOT))
        rows.append((rel, sizes, {k: statistics.median(v) for k, v in times.items()}))
        cells = "  ".join("%s %5.1f KB/step, %5.1f without the runtime (%d steps) %6.1f ms" % (
            name, sizes[name][0] / sizes[name][1] / 1000,
            (sizes[name][0] - sizes[name][2]) / sizes[name][1] / 1000, sizes[name][1],
            rows[-1][2][name] * 1000) for name, _ in sides)
        print("%-100s %s" % (rel, cells), flush=True)
    print()
    print("%d notebooks compiled" % len(rows))
    for name, _ in sides:
        per_step = sorted(r[1][name][0] / r[1][name][1] / 1000 for r in rows)
        own = sorted((r[1][name][0] - r[1][name][2]) / r[1][name][1] / 1000 for r in rows)
        ms = sorted(r[2][name] * 1000 for r in rows)
        q = quartiles(per_step)
        qo = quartiles(own)
        print("%s: KB per step without the runtime bundle: median %.2f (quartiles %.2f / %.2f / %.2f, "
              "min %.2f, max %.2f)" % (name, statistics.median(own), *qo, own[0], own[-1]))
        print("%s: KB per step median %.1f (quartiles %.1f / %.1f / %.1f, min %.1f, max %.1f), "
              "%d of %d above 10 KB per step; compile median %.1f ms (quartiles %.1f / %.1f / %.1f, max %.1f)"
              % (name, statistics.median(per_step), q[0], q[1], q[2], per_step[0], per_step[-1],
                 sum(1 for s in per_step if s > 10), len(per_step), statistics.median(ms),
                 *quartiles(ms), ms[-1]))


if __name__ == "__main__":
    main()
