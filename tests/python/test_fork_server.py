"""The fork server's protocol (src/runtime/kale_zygote.py), driven directly.

kale talks to the server over a SOCK_SEQPACKET pair: the server says it is ready,
each request carries the step's stdout/stderr pipes as SCM_RIGHTS, the server
answers with the child's pid and later reports how the child exited. These tests
play kale's side of that conversation.
"""

import ctypes
import importlib.util
import json
import mmap
import os
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import unittest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RUNTIME_DIR = os.path.join(REPO, "src", "runtime")
ZYGOTE = os.path.join(RUNTIME_DIR, "kale_zygote.py")


@unittest.skipUnless(sys.platform.startswith("linux") and sys.version_info >= (3, 9),
                     "the fork server runs on Linux with Python 3.9+")
class ForkServerProtocolTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="kale-zygote-test-")
        self.addCleanup(self.tmp.cleanup)
        self.restart()
        self.addCleanup(self.stop)

    def restart(self, env=None, modules=()):
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.sock = ours
        # As kale starts it: the runtime importable, so the server imports it too.
        self.server = subprocess.Popen(
            [sys.executable, ZYGOTE, str(theirs.fileno()), "json", "no_such_module_xyz", *modules],
            pass_fds=[theirs.fileno()], cwd=self.tmp.name,
            env=dict(os.environ, PYTHONPATH=RUNTIME_DIR, **(env or {})))
        theirs.close()
        self.assertEqual(self.receive(), {"ready": True})
        self.next_id = 0
        self.exits = {}
        self.idle = {}

    def stop(self):
        self.sock.close()
        try:
            self.server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.server.kill()
            self.server.wait()

    def receive(self):
        self.sock.settimeout(30)
        message = self.sock.recv(1 << 16)
        return json.loads(message)

    def program(self, source):
        path = os.path.join(self.tmp.name, "program_%d.py" % self.next_id)
        with open(path, "w") as f:
            f.write(textwrap.dedent(source))
        return path

    def spawn(self, source, env=None, before_reply=None, keep=False, pid=None):
        """Sends one request; returns (pid, stdout read end, stderr read end)."""
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        self.next_id += 1
        request = {"id": self.next_id, "program": self.program(source), "cwd": self.tmp.name,
                   "env": env or {}, "keep": keep}
        if pid is not None:
            request["pid"] = pid
        socket.send_fds(self.sock, [json.dumps(request).encode()], [out_w, err_w])
        os.close(out_w)
        os.close(err_w)
        if before_reply is not None:
            before_reply()
        reply = self.receive()
        while "exited" in reply:  # an earlier child's end may come first, as to kale
            self.ended(reply)
            reply = self.receive()
        self.assertEqual(reply["id"], self.next_id, reply)
        return reply["pid"], out_r, err_r

    def finish(self, pid, out_r, err_r):
        """Waits for the child's exit report; returns (code, stdout, stderr)."""
        while pid not in self.exits:
            message = self.receive()
            if "exited" in message:
                self.ended(message)
        with os.fdopen(out_r) as out, os.fdopen(err_r) as err:
            return self.exits.pop(pid), out.read(), err.read()

    def ended(self, message):
        self.exits[message["exited"]] = message["code"]
        self.idle[message["exited"]] = message.get("idle", False)

    def wait_gone(self, pid):
        deadline = time.monotonic() + 30
        while self.state(pid) not in (None, "Z"):
            self.assertLess(time.monotonic(), deadline, "pid %d did not end" % pid)
            time.sleep(0.01)

    def test_a_child_runs_the_program_as_python_would(self):
        pid, out, err = self.spawn("""
            import sys, os
            print("argv", sys.argv[0].endswith(".py"), __name__, os.environ["STEP"])
            print("already imported:", "json" in sys.modules)
            print("to stderr", file=sys.stderr)
        """, env={"STEP": "train"})
        code, stdout, stderr = self.finish(pid, out, err)
        self.assertEqual(code, 0, stderr)
        self.assertIn("argv True __main__ train", stdout)
        # The server imported `json` once: the child finds it already loaded.
        self.assertIn("already imported: True", stdout)
        self.assertIn("to stderr", stderr)

    def test_exit_codes_exceptions_and_signals_are_reported(self):
        pid, out, err = self.spawn("import sys\nsys.exit(3)\n")
        self.assertEqual(self.finish(pid, out, err)[0], 3)

        pid, out, err = self.spawn("def f():\n    raise ValueError('boom')\nf()\n")
        code, _, stderr = self.finish(pid, out, err)
        self.assertEqual(code, 1)
        # The traceback starts at the program, as `python PROGRAM` prints it.
        self.assertIn("ValueError: boom", stderr)
        self.assertNotIn("kale_zygote", stderr)

        pid, out, err = self.spawn("import time\nprint('up', flush=True)\ntime.sleep(60)\n")
        with os.fdopen(os.dup(out)) as peek:
            self.assertEqual(peek.readline().strip(), "up")
        # Each child leads its own process group, as kale stops a step by its group.
        self.assertEqual(os.getpgid(pid), pid)
        os.killpg(pid, signal.SIGTERM)
        self.assertIsNone(self.finish(pid, out, err)[0])

    def test_children_are_independent(self):
        first = self.spawn("import os\nprint(os.getpid())\nx = 1\n")
        second = self.spawn("print('x' in globals())\n")
        code1, stdout1, _ = self.finish(*first)
        code2, stdout2, _ = self.finish(*second)
        self.assertEqual((code1, code2), (0, 0))
        self.assertEqual(int(stdout1), first[0])
        # A fresh __main__ per child: nothing leaks from one step into the next.
        self.assertEqual(stdout2.strip(), "False")

    def test_held_inputs_reach_every_later_child_unchanged(self):
        sys.path.insert(0, RUNTIME_DIR)
        try:
            import kale_runtime
        finally:
            sys.path.remove(RUNTIME_DIR)
        record = kale_runtime.save("small", [1, 2, 3], self.tmp.name)
        path = os.path.join(self.tmp.name, record["file"])
        self.next_id += 1
        request = {"id": self.next_id, "refuse": ["tensorflow"],
                   "warm": [{"hash": record["hash"], "path": path},
                            {"hash": "sha256:gone", "path": path + ".missing.pkl"}]}
        self.sock.send(json.dumps(request).encode())
        self.assertEqual(self.receive(), {"id": self.next_id, "warmed": [record["hash"]]})
        program = """
            import kale_runtime
            value = kale_runtime._warm_value(%r, %r)
            print(value, "kale_runtime" in sys.modules)
            value.append(4)
        """ % (path, record["hash"])
        for _ in range(2):
            code, stdout, stderr = self.finish(*self.spawn("import sys\n" + textwrap.dedent(program)))
            self.assertEqual(code, 0, stderr)
            # Held by the server, changed by the first child only in its own memory.
            self.assertEqual(stdout.strip(), "[1, 2, 3] True")

    def state(self, pid):
        try:
            with open("/proc/%d/stat" % pid) as f:
                return f.read().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return None

    def children(self):
        pids = []
        for entry in os.listdir("/proc"):
            try:
                with open("/proc/%s/stat" % entry) as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if int(fields[1]) == self.server.pid:
                pids.append(int(entry))
        return pids

    def test_a_step_holds_only_its_own_output_pipes(self):
        program = """
            import os, stat
            pipes = 0
            for fd in map(int, os.listdir("/proc/self/fd")):
                try:
                    pipes += fd > 2 and stat.S_ISFIFO(os.fstat(fd).st_mode)
                except OSError:
                    pass  # the listing's own descriptor, closed by now
            print(pipes)
        """
        # From the child forked ahead of the request, then (that one killed) from a
        # child forked for it: either way its output ends when it does.
        code, stdout, stderr = self.finish(*self.spawn(textwrap.dedent(program)))
        self.assertEqual((code, stdout.strip()), (0, "0"), stderr)
        # The server stopped while its spare dies: when it reads the request before it
        # reaps the spare (epoll's order decides), it forks a child for the step then.
        os.kill(self.server.pid, signal.SIGSTOP)
        try:
            killed = self.children()
            for pid in killed:
                os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + 30
            while not all(self.state(pid) in ("Z", None) for pid in killed):
                self.assertLess(time.monotonic(), deadline)
                time.sleep(0.01)
        except BaseException:
            os.kill(self.server.pid, signal.SIGCONT)
            raise
        resume = lambda: os.kill(self.server.pid, signal.SIGCONT)  # noqa: E731
        code, stdout, stderr = self.finish(*self.spawn(textwrap.dedent(program), before_reply=resume))
        self.assertEqual((code, stdout.strip()), (0, "0"), stderr)

    def test_a_kept_child_runs_the_next_step_from_the_state_it_was_forked_with(self):
        first = self.spawn("""
            import os, sys, warnings
            os.environ["KALE_LEAK"] = "1"
            os.environ.pop("HOME", None)
            sys.path.append("/leak")
            warnings.simplefilter("error")
            x = 1
            print(os.getpid())
        """, keep=True)
        code, stdout, stderr = self.finish(*first)
        self.assertEqual(code, 0, stderr)
        self.assertTrue(self.idle[first[0]])
        self.assertEqual(int(stdout), first[0])
        # Its output ended with its step, although the process waits.
        self.assertNotIn(self.state(first[0]), (None, "Z"))

        second = self.spawn("""
            import os, sys, warnings
            print(os.getpid(), "KALE_LEAK" in os.environ, "HOME" in os.environ, "/leak" in sys.path,
                  "x" in globals(), any(f[0] == "error" for f in warnings.filters), os.environ["STEP"])
        """, env={"STEP": "two"}, pid=first[0])
        self.assertEqual(second[0], first[0])
        code, stdout, stderr = self.finish(*second)
        self.assertEqual(code, 0, stderr)
        self.assertEqual(stdout.split(), [str(first[0]), "False", str("HOME" in os.environ),
                                          "False", "False", "False", "two"])
        # Not asked to keep: it ends after this step.
        self.assertFalse(self.idle[first[0]])
        self.wait_gone(first[0])

    def test_a_kept_child_ends_when_its_step_fails_or_leaves_a_thread_running(self):
        pid, out, err = self.spawn("raise ValueError('boom')\n", keep=True)
        code, _, stderr = self.finish(pid, out, err)
        self.assertEqual(code, 1)
        self.assertIn("ValueError: boom", stderr)
        self.assertFalse(self.idle[pid])
        self.wait_gone(pid)

        pid, out, err = self.spawn("""
            import threading, time
            threading.Thread(target=time.sleep, args=(0.3,)).start()
            print("started")
        """, keep=True)
        code, stdout, stderr = self.finish(pid, out, err)
        # The thread was joined (as `python PROGRAM` joins it) and the process ended.
        self.assertEqual((code, stdout.strip()), (0, "started"), stderr)
        self.assertFalse(self.idle[pid])
        self.wait_gone(pid)

    def test_a_released_child_ends_and_its_next_step_runs_in_a_fresh_one(self):
        pid, out, err = self.spawn("pass\n", keep=True)
        self.assertEqual(self.finish(pid, out, err)[0], 0)
        self.assertTrue(self.idle[pid])
        self.sock.send(json.dumps({"release": pid}).encode())
        self.wait_gone(pid)
        other, out, err = self.spawn("import os\nprint(os.getpid())\n", pid=pid)
        self.assertNotEqual(other, pid)
        code, stdout, _ = self.finish(other, out, err)
        self.assertEqual((code, int(stdout)), (0, other))

    def test_a_spare_copies_ahead_the_pages_the_last_child_wrote_to(self):
        trace = os.path.join(self.tmp.name, "trace")
        self.stop()
        self.restart(env={"KALE_TRACE": trace})
        for n in range(3):
            pid, out, err = self.spawn("x = [str(i) for i in range(100000)]\nprint(len(x))\n")
            code, stdout, stderr = self.finish(pid, out, err)
            self.assertEqual((code, stdout.strip()), (0, "100000"), stderr)
        # The first two steps' spares were forked before any child had ended.
        with open(trace) as f:
            touched = [int(line.split()[4]) for line in f if " child.touched " in line]
        self.assertTrue(touched and max(touched) > 0, touched)

    @unittest.skipUnless(importlib.util.find_spec("numpy"), "numpy not installed")
    def test_each_step_draws_its_own_numpy_random_numbers(self):
        # Spares seed numpy while they wait; a kept process seeds it again for its
        # next step. Unseeded, forked steps would all draw the server's next number.
        self.stop()
        self.restart(modules=["numpy.random"])
        import numpy as np

        draw = "import numpy as np\nprint(repr(np.random.random()))\n"
        draws = []
        # The first step seeds numpy itself: unseeded again, the next step in its
        # process would draw that seed's second number.
        pid, out, err = self.spawn("import numpy as np\nnp.random.seed(0)\n" + draw, keep=True)
        code, stdout, stderr = self.finish(pid, out, err)
        self.assertEqual(code, 0, stderr)
        draws.append(stdout.strip())
        second = self.spawn(draw, pid=pid)
        self.assertEqual(second[0], pid)
        draws.append(self.finish(*second)[1].strip())
        for _ in range(2):
            draws.append(self.finish(*self.spawn(draw))[1].strip())
        seeded = np.random.RandomState(0)
        self.assertEqual(draws[0], repr(seeded.random_sample()))
        self.assertNotEqual(draws[1], repr(seeded.random_sample()))
        self.assertEqual(len(set(draws)), 4, draws)

    def test_a_request_without_its_pipes_is_refused(self):
        self.next_id += 1
        request = {"id": self.next_id, "program": self.program("pass"), "cwd": self.tmp.name,
                   "env": {}}
        self.sock.send(json.dumps(request).encode())
        reply = self.receive()
        self.assertEqual(reply, {"id": self.next_id, "error": "expected two pipes"})


@unittest.skipUnless(os.path.exists("/proc/self/pagemap"), "pagemap is Linux's")
class WrittenPagesTest(unittest.TestCase):
    """written_pages and touch_pages, in forked children of this process."""

    def setUp(self):
        sys.path.insert(0, RUNTIME_DIR)
        self.addCleanup(sys.path.remove, RUNTIME_DIR)
        import kale_zygote

        self.zygote = kale_zygote
        self.page = kale_zygote._PAGE_SIZE
        self.buffer = mmap.mmap(-1, 32 * self.page, flags=mmap.MAP_PRIVATE)
        for i in range(32):  # present and shared with the children
            self.buffer[i * self.page:(i + 1) * self.page] = bytes([i + 1]) * self.page
        self.base = ctypes.addressof(ctypes.c_char.from_buffer(self.buffer))
        self.addCleanup(self.buffer.close)

    def in_child(self, work):
        """work() run in a forked child; returns what it returned (JSON)."""
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                os.close(r)
                os.write(w, json.dumps(work()).encode())
            finally:
                os._exit(0)
        os.close(w)
        with os.fdopen(r, "rb") as f:
            data = f.read()
        os.waitpid(pid, 0)
        return json.loads(data)

    def page_address(self, i):
        return self.base + i * self.page

    def test_a_child_lists_the_pages_it_wrote_to_and_not_the_ones_it_read(self):
        def work():
            regions = self.zygote._writable_private_regions()
            self.buffer[3 * self.page + 5] = 0xAA
            self.buffer[10 * self.page] = 0xBB
            _ = self.buffer[20 * self.page]
            return list(self.zygote.written_pages(regions, limit=1 << 20))

        pages = set(self.in_child(work))
        self.assertIn(self.page_address(3), pages)
        self.assertIn(self.page_address(10), pages)
        self.assertNotIn(self.page_address(20), pages)
        self.assertNotIn(self.page_address(4), pages)

    def test_touching_copies_a_page_and_leaves_what_it_holds(self):
        def work():
            regions = self.zygote._writable_private_regions()
            unmapped = 0x1000  # below every mapping
            touched = self.zygote.touch_pages([self.page_address(3), self.page_address(7), unmapped],
                                              regions)
            after = set(self.zygote.written_pages(regions, limit=1 << 20))
            return {"touched": touched,
                    "copied": [self.page_address(i) in after for i in (3, 7, 8)],
                    "held": [self.buffer[i * self.page] for i in range(32)]}

        got = self.in_child(work)
        self.assertEqual(got["touched"], 2)
        self.assertEqual(got["copied"], [True, True, False])
        self.assertEqual(got["held"], list(range(1, 33)))
        self.assertEqual(self.buffer[3 * self.page], 4)  # the parent's page is its own


if __name__ == "__main__":
    unittest.main()
