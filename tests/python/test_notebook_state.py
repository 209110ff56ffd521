"""What the runtime carries from a step to the next so a pipeline computes what the
notebook computes: process state (`_kale_state`), outputs that share objects (groups),
code saved by value. Each test runs real step programs in fresh Python processes.

Run from the repository root: .venv/bin/python -m pytest -q tests/python
"""

import importlib.util
import json
import os
import sys
import textwrap
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from test_kale_runtime import HAS_NUMPY, HAS_PANDAS, HAS_SKLEARN, TempDirTest, kr  # noqa: E402


def step(name, body, saves=(), groups=(), loads=None, shared=""):
    """A step program as kale generates it: begin, the shared cells (``shared``: the
    imports and functions cells every step runs first), load ``loads`` ({name: path}),
    the step's own code, save."""
    load = "globals().update(_kale.load_inputs(%r))\n" % (loads,) if loads else ""
    return textwrap.dedent("""\
        import sys; sys.path.insert(0, "<run_dir>")
        import kale_runtime as _kale
        _kale.start(%r)
        """) % name + textwrap.dedent(shared) + load + textwrap.dedent(body) + textwrap.dedent("""\
        _kale.save_outputs(%r, globals(), "<run_dir>/%s/outputs", %r)
        _kale.end_step()
        """) % (list(saves), name, [list(g) for g in groups])


class StateTest(TempDirTest):
    def run_step(self, name, body, **kw):
        os.environ["KALE_STEP_DIR"] = os.path.join(self.tmp, "run", name)
        try:
            proc, run_dir, _ = self.run_program(step(name, body, **kw), name + ".py")
        finally:
            del os.environ["KALE_STEP_DIR"]
        outputs = os.path.join(run_dir, name, "outputs")
        return proc, {r["name"]: os.path.join(outputs, r["file"]) for r in
                      json.load(open(outputs + ".json"))}

    def test_random_streams_continue_in_the_next_step(self):
        shared = "import random\nrandom.seed(3)\n"
        _, saved = self.run_step("a", """\
            first = random.random()
            """, saves=["first", "_kale_state"], shared=shared)
        # The imports cell seeds again in `b`...
        proc, _ = self.run_step("b", """\
            print(first, random.random())
            """, loads=saved, shared=shared)
        # ...and the stream continues where `a` left it, as in one kernel.
        import random
        random.seed(3)
        expected = [random.random(), random.random()]
        self.assertEqual([float(x) for x in proc.stdout.split()], expected)

    @unittest.skipUnless(HAS_NUMPY, "numpy not installed")
    def test_numpy_stream_and_settings_travel(self):
        shared = "import numpy as np, os, warnings, decimal, sys\nnp.random.seed(0)\n"
        os.environ["KALE_STATE_GONE"] = "1"
        self.addCleanup(os.environ.pop, "KALE_STATE_GONE", None)
        _, saved = self.run_step("a", """\
            a = np.random.rand()
            np.seterr(divide="raise")
            np.set_printoptions(precision=3)
            os.environ["KALE_STATE_TEST"] = "on"
            os.environ.pop("KALE_STATE_GONE", None)
            warnings.simplefilter("error", UserWarning)
            decimal.getcontext().prec = 6
            sys.path.append("/kale/added")
            os.makedirs("sub", exist_ok=True)
            os.chdir("sub")
            """, saves=["_kale_state"], shared=shared)
        proc, _ = self.run_step("b", """\
            print(np.random.rand())
            print(np.geterr()["divide"], np.get_printoptions()["precision"])
            print(os.environ.get("KALE_STATE_TEST"), os.environ.get("KALE_STATE_GONE"))
            print(warnings.filters[0][0], decimal.getcontext().prec, sys.path[-1])
            print(os.path.basename(os.getcwd()))
            """, loads=saved, shared=shared)
        import numpy as np
        np.random.seed(0)
        np.random.rand()
        lines = proc.stdout.splitlines()
        self.assertEqual(float(lines[0]), np.random.rand())
        self.assertEqual(lines[1:], ["raise 3", "on None", "error 6 /kale/added", "sub"])

    @unittest.skipUnless(HAS_SKLEARN and HAS_PANDAS, "scikit-learn and pandas needed")
    def test_library_configuration_travels(self):
        _, saved = self.run_step("a", """\
            import sklearn, pandas as pd
            sklearn.set_config(assume_finite=True)
            pd.set_option("display.max_rows", 7)
            """, saves=["_kale_state"])
        proc, _ = self.run_step("b", """\
            import sklearn, pandas as pd
            print(sklearn.get_config()["assume_finite"], pd.get_option("display.max_rows"))
            """, loads=saved)
        self.assertEqual(proc.stdout.split(), ["True", "7"])

    def test_shared_objects_stay_shared(self):
        _, saved = self.run_step("a", """\
            a = [1]
            b = a
            pair = {"a": a}
            other = [1]
            """, saves=["a", "b", "pair", "other"], groups=[["a", "b", "pair", "other"]])
        files = {n: os.path.basename(p) for n, p in saved.items()}
        self.assertTrue(files["a"].endswith(".group.pkl"), files)
        self.assertTrue(files["other"].endswith(".pkl") and "group" not in files["other"], files)
        proc, _ = self.run_step("b", """\
            a.append(2)
            print(len(b), len(pair["a"]), b is a, other is a)
            """, loads=saved)
        self.assertEqual(proc.stdout.split(), ["2", "2", "True", "False"])

    def test_code_travels_by_value_without_dill(self):
        _, saved = self.run_step("a", """\
            import sys
            sys.modules["dill"] = None  # as in a Python without dill
            import dataclasses
            k = 5
            def make_adder(n):
                return lambda v: v + n + k
            def fact(n):
                return 1 if n < 2 else n * fact(n - 1)
            class Base:
                def hello(self):
                    return "base"
            class Child(Base):
                __slots__ = ("x",)
                def hello(self):
                    return "child of " + super().hello()
            @dataclasses.dataclass
            class Point:
                x: int
                y: int = 2
            add = make_adder(1)
            c = Child()
            ops = {"sq": lambda v: v * v, "fact": fact}
            pt = Point(1)
            """, saves=["add", "fact", "c", "ops", "pt", "Child"],
            groups=[["c", "Child"]])
        proc, _ = self.run_step("b", """\
            import sys
            sys.modules["dill"] = None
            print(add(1), fact(5), ops["sq"](3), ops["fact"](3), c.hello(),
                  type(c) is Child, pt == type(pt)(1, 2))
            """, loads=saved)
        self.assertEqual(proc.stdout.split(), ["7", "120", "9", "6", "child", "of", "base",
                                               "True", "True"])

    def test_enums_and_namedtuples_defined_in_a_step_travel_by_value(self):
        _, saved = self.run_step("a", """\
            import sys
            sys.modules["dill"] = None
            import enum
            class Color(enum.Enum):
                RED = 1
                BLUE = 2
                CRIMSON = 1
                def describe(self):
                    return self.name.lower()
                @property
                def twice(self):
                    return self.value * 2
            class Perm(enum.IntFlag):
                R = 4
                W = 2
            c = Color.BLUE
            rw = Perm.R | Perm.W
            import collections, typing
            Pt = collections.namedtuple("Pt", "x y")
            class Pt3(typing.NamedTuple):
                x: int
                z: int = 5
            p = Pt(1, 2)
            q = Pt3(1)
            """, saves=["Color", "c", "Perm", "rw", "p", "q"],
            groups=[["Color", "c"], ["Perm", "rw"]])
        proc, _ = self.run_step("b", """\
            import sys
            sys.modules["dill"] = None
            print(c is Color.BLUE, c.describe(), c.twice, Color.CRIMSON is Color.RED,
                  [m.name for m in Color], int(rw), Perm.W in rw, p.x + p.y, q.z,
                  type(p)._fields)
            """, loads=saved)
        self.assertEqual(proc.stdout.split(), ["True", "blue", "4", "True", "['RED',", "'BLUE']",
                                               "6", "True", "3", "5", "('x',", "'y')"],
                         proc.stderr)


class ResetTest(TempDirTest):
    @unittest.skipUnless(HAS_SKLEARN and HAS_NUMPY, "scikit-learn and numpy needed")
    def test_reset_puts_libraries_back_as_forked(self):
        code = textwrap.dedent("""\
            import sys; sys.path.insert(0, "<run_dir>")
            import kale_runtime as _kale
            import decimal, numpy as np, sklearn
            base = _kale.library_state()
            sklearn.set_config(assume_finite=True)
            np.seterr(all="raise")
            decimal.getcontext().prec = 3
            _kale.reset_libraries(base)
            print(sklearn.get_config()["assume_finite"], np.geterr()["divide"],
                  decimal.getcontext().prec)
            """)
        proc, _, _ = self.run_program(code, "reset.py")
        self.assertEqual(proc.stdout.split(), ["False", "warn", "28"])


if __name__ == "__main__":
    unittest.main()
