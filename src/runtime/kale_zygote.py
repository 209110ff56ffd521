"""kale's fork server: import the notebook's modules once, fork one child per step.

Started by kale's local executor (Linux only) as

    python kale_zygote.py FD MODULE...

where FD is one end of a SOCK_SEQPACKET socket pair. The server imports every
MODULE (failures are ignored: the step itself imports them again and reports
its own errors), says ``{"ready": true}``, then serves requests, one per
message, each carrying the write ends of the step's stdout and stderr pipes as
SCM_RIGHTS:

    {"id": N, "program": PATH, "cwd": DIR, "env": {NAME: VALUE}}

For each it forks a child that runs PATH the way ``python PATH`` would (own
``__main__``, ``sys.argv``, uncaught exceptions through ``sys.excepthook``,
``SystemExit`` codes, non-daemon threads joined, atexit handlers run) and
answers ``{"id": N, "pid": P}``; when a child ends it sends
``{"exited": P, "code": C}`` (``C`` is null when a signal killed it).

A request may carry ``"keep": true`` (kale may have the next step of the same
trial run in this process) and ``"pid": P`` (run it in P, which kept itself).
A child asked to keep that succeeds, and left no thread, IPython shell or
thread-pool limit of its own behind, says ``{"exited": P, "code": 0, "idle":
true}`` and waits; its environment, ``sys.path``, warning filters and random
seed are put back before the next step, whose inputs the previous step made
may come from memory (``kale_runtime._hand_on``). ``{"release": P}`` ends it.

A child that ends, when the server asks it to (``"report_pages"`` in the request
it forwards, or ``release pages``), sends the server the addresses of the
server's pages it wrote to; the next spares have their own copies of those made
while they wait (see "Copy-on-write, paid ahead" below).

Lifetimes: the server dies with kale (PR_SET_PDEATHSIG, set by kale) and each
child dies with the server, so a kill -9 of kale leaves nothing running. Each
child leads its own process group, so kale can stop a step and whatever it
started with one signal, exactly as for a step it spawned directly.
"""

import array
import builtins
import ctypes
import gc
import importlib
import io
import json
import os
import select
import selectors
import signal
import socket
import sys
import time
import types

_PR_SET_PDEATHSIG = 1


def _die_with_parent():
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except Exception:
        pass


_TRACE = os.environ.get("KALE_TRACE")


def _trace(event, details=""):
    """A line for KALE_TRACE (see src/exec/trace.rs); nothing when it is unset."""
    if _TRACE:
        line = "%d %d zygote %s %s\n" % (time.time_ns() // 1000, os.getpid(), event, details)
        fd = os.open(_TRACE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)


def _send(sock, message):
    sock.send(json.dumps(message).encode())


# --------------------------------------------------------------------------
# Copy-on-write, paid ahead. A forked child's first write to each page it shares
# with the server costs a page fault and a page copy (~4 us in a VM); a step
# running scikit-learn writes to a few thousand of the server's pages (reference
# counts, caches, allocator state), ~10 ms of its time. Steps of the same notebook
# write to much the same pages, so a child that ends tells the server which of the
# server's pages it wrote to, and the next spare, while it waits for a step (on an
# otherwise idle core), has the kernel copy those pages for it: the copies are made
# before the step starts. Nothing a step sees changes: a page holds what it held,
# only privately.

_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
# A step that rewrote a big array the server holds would have each spare copy it:
# beyond this many pages (32 MiB), the rest are left to fault as before.
_TOUCH_LIMIT_PAGES = 8192
# Writable private mappings of a file: library data (small) is worth copying
# ahead; a mapped data file (an input loaded copy-on-write) is not.
_FILE_REGION_LIMIT = 16 << 20
# Listing them costs the child a few ms (on its way out, but on a core the next
# trial may need): the list is asked for again after this many spares used it.
_PAGES_REFRESH = 8


def _writable_private_regions():
    """[(start, end)] of this process's private writable mappings that are anonymous
    memory, the heap, the stack or a library's data, in address order."""
    regions = []
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                fields = line.split(None, 5)
                if len(fields) < 5 or not fields[1].startswith("rw") or fields[1][3] != "p":
                    continue
                start, _, end = fields[0].partition("-")
                start, end = int(start, 16), int(end, 16)
                path = fields[5].strip() if len(fields) > 5 else ""
                if path and not path.startswith("["):
                    if path.startswith("/dev/") or end - start > _FILE_REGION_LIMIT:
                        continue
                elif path not in ("", "[heap]", "[stack]"):
                    continue
                regions.append((start, end))
    except OSError:
        return []
    return regions


# An entry of /proc/PID/pagemap is 64 bits; its top byte holds bits 63 (present),
# 62 (swapped), 61 (a file page or shared memory) and 56 (mapped by this process
# only). A page this process wrote since the fork is present, not swapped,
# anonymous and its own: a top byte of 100x_xxx1 in binary (bits 57-60, soft
# flags, do not matter).
_WRITTEN = bytes(1 if (b & 0xE1) == 0x81 else 0 for b in range(256))


# In a spare: the server's mappings when it was forked (the child's own allocations
# are of no use to the next spare).
_forked_regions = None
# In a spare: numpy's generator was seeded while it waited for its step.
_numpy_seeded_ahead = False


def written_pages(regions=None, limit=_TOUCH_LIMIT_PAGES):
    """The addresses of the pages this process owns alone (those it wrote to since it
    was forked, and those it allocated) in ``regions`` (by default its private
    writable mappings; a region no longer mapped has no such page), at most ``limit``
    of them, as native 64-bit integers; empty where pagemap is unreadable."""
    pages = array.array("Q")
    if regions is None:
        regions = _writable_private_regions()
    try:
        with open("/proc/self/pagemap", "rb", buffering=0) as pagemap:
            for start, end in regions:
                first = start // _PAGE_SIZE
                pagemap.seek(first * 8)
                entries = pagemap.read((end - start) // _PAGE_SIZE * 8)
                marks = entries[7::8].translate(_WRITTEN)
                i = marks.find(1)
                while i >= 0:
                    pages.append((first + i) * _PAGE_SIZE)
                    if len(pages) >= limit:
                        return pages
                    i = marks.find(1, i + 1)
    except (OSError, ValueError):
        return array.array("Q")
    return pages


_MADV_POPULATE_WRITE = 23  # Linux 5.14+


def touch_pages(pages, regions, channel=None):
    """Has the kernel make this process's own copy of each page in ``pages``
    (addresses) that lies in ``regions`` (its private writable mappings), as a write
    would but writing nothing (``MADV_POPULATE_WRITE``: what the pages hold cannot
    change, even under the interpreter's own feet); stops early when ``channel`` has
    a message (the step has come: it must not wait for this). Returns the count of
    pages copied; 0 where the kernel cannot do it."""
    try:
        madvise = ctypes.CDLL(None, use_errno=True).madvise
    except (OSError, AttributeError):
        return 0
    madvise.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    # Runs of adjacent pages inside one region: one call each.
    runs, k = [], 0
    for address in sorted(set(pages)):
        while k < len(regions) and regions[k][1] <= address:
            k += 1
        if k == len(regions):
            break
        if address < regions[k][0]:
            continue  # not mapped (or not writable) here: the last child allocated it
        if runs and runs[-1][1] == address and address > regions[k][0]:
            runs[-1][1] = address + _PAGE_SIZE
        else:
            runs.append([address, address + _PAGE_SIZE])
    touched = 0
    for n, (start, end) in enumerate(runs):
        if madvise(start, end - start, _MADV_POPULATE_WRITE) == 0:
            touched += (end - start) // _PAGE_SIZE
        elif ctypes.get_errno() == 22:  # EINVAL: a kernel without it
            break
        if channel is not None and n % 32 == 31 and select.select([channel], [], [], 0)[0]:
            break
    return touched


def _cores():
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _report_written_pages(channel):
    """At a child's end: which of the server's pages it wrote to, for the next spare."""
    try:
        pages = written_pages(_forked_regions)
        if pages:
            channel.send(b"\0" + pages.tobytes())
    except BaseException:
        pass


def _exit_code(exc):
    code = exc.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    try:
        print(code, file=sys.stderr)
    except Exception:
        pass
    return 1


def _text_stream(fd):
    return io.TextIOWrapper(io.FileIO(fd, "w", closefd=False), encoding="utf-8",
                            errors="backslashreplace", line_buffering=True, write_through=True)


def _prepare_child(server):
    """In a freshly forked child: its own process group, none of the server's descriptors."""
    os.setpgid(0, 0)
    _die_with_parent()
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    server.selector.close()
    server.sock.close()
    for channel in server.channels.values():
        channel.close()
    for fd in server.wakeup_fds:
        os.close(fd)


def _await_request(channel):
    """A spare child: wait for the step the server hands over; never returns."""
    request, fds = _next_request(channel)
    _serve_steps(channel, request, fds)


def _next_request(channel):
    """The next step's request and pipes from the server; ends the process when the
    server closes the channel (kale released it) or sends anything else."""
    try:
        message, fds, _, _ = socket.recv_fds(channel, 1 << 20, 2)
        if not message or len(fds) != 2:
            if message == b"release pages":
                _report_written_pages(channel)
            os._exit(0)
        return json.loads(message), fds
    except BaseException:
        os._exit(0)


class _ProcessState:
    """What a step may change in its process that the next step of the same trial, run
    in that process, must not see: as for a fresh process, each starts from the state
    the server forked."""

    def __init__(self):
        import warnings

        self.environ = dict(os.environ)
        self.path = list(sys.path)
        self.warning_filters = list(warnings.filters)
        self.main = None
        # Whether numpy's generator was seeded in this process since its last step.
        self.numpy_seeded = _numpy_seeded_ahead

    def restore(self):
        import random
        import warnings

        os.environ.clear()
        os.environ.update(self.environ)
        sys.path[:] = self.path
        warnings.filters[:] = self.warning_filters
        warnings._filters_mutated()
        random.seed()  # a fresh process draws a fresh seed
        runtime = sys.modules.get("kale_runtime")
        if runtime is not None:
            runtime.forget_local_modules()
            base = getattr(runtime, "_fork_base", None) or {}
            if base.get("libraries") is not None:
                runtime.reset_libraries(base["libraries"])
        # The last step's namespace goes now, not at the next collection: its
        # functions refer to it (a cycle), and its data may be large.
        if self.main is not None:
            self.main.__dict__.clear()
            self.main = None


def _serve_steps(channel, request, fds):
    """Run the step; then end, or, when kale asked for it (``"keep"``) and the step left
    the process reusable, wait for the next step of the same trial. Never returns."""
    state = _ProcessState()
    while True:
        code, reusable = _run_step(request, fds, state)
        idle = bool(request.get("keep")) and reusable
        # Tearing down a process forked from a server holding a whole data-science
        # stack takes the kernel several ms (more with warm inputs); the step is over
        # before that: its output ends here and the server reports its code now.
        try:
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, 1)
            os.dup2(null, 2)
            os.close(null)
            channel.send(json.dumps({"done": code, "idle": idle}).encode())
        except BaseException:
            idle = False
        if not idle:
            if request.get("report_pages"):
                _report_written_pages(channel)
            os._exit(code)
        _trace("child.idle")
        # The next step is seeded anew, as a fresh process would be: now, while kale
        # prepares it, rather than at its start.
        state.numpy_seeded = _seed_numpy()
        # Put the process back as a fresh one would be while kale prepares the step.
        state.restore()
        request, fds = _next_request(channel)


def _seed_numpy():
    """A spawned step would seed numpy's global generator from the OS; a forked one
    inherits the server's state, so every step (and trial) would draw the same
    "random" numbers. Python's `random` reseeds itself after fork. (Only when
    numpy.random is loaded: numpy loads it on first use, seeded from the OS, and
    loading it takes ~20 ms.) Returns whether it did (0.5 ms in a new child)."""
    numpy_random = sys.modules.get("numpy.random")
    if numpy_random is None:
        return False
    try:
        numpy_random.seed()
    except Exception:
        return False
    return True


def _reusable(runtime):
    """Whether the step left nothing behind that a fresh process would not have: no
    thread of its own still running (joining it is the interpreter's exit), no IPython
    shell bound to its namespace, no thread-pool limits of its own."""
    import threading

    if threading.active_count() != 1:
        return False
    interactive = sys.modules.get("IPython.core.interactiveshell")
    if interactive is not None and interactive.InteractiveShell.initialized():
        return False
    if runtime is not None:
        if getattr(runtime, "_state", {}).get("thread_limits") is not None:
            return False
        if getattr(runtime, "_fork_base", None) is None or \
                runtime._fork_base.get("libraries") is None:
            return False
        # A package the server had not imported would start anew in a fresh process.
        if runtime.third_party_imported_since_fork():
            return False
        # The next step must import the modules beside the notebook anew.
        local = getattr(runtime, "_local_modules", lambda: None)()
        if local is None:
            return False
    return True


def _run_step(request, fds, state):
    """Run the request's program as ``python PROGRAM`` would (own ``__main__``, argv,
    excepthook, exit codes, non-daemon threads joined, atexit handlers); returns its
    exit code and whether the process may run another step."""
    code = 1
    reusable = False
    _trace("child.start")
    try:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        out, err = fds
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(out, 1)
        os.dup2(err, 2)
        for fd in (null, out, err):
            os.close(fd)
        sys.stdin = io.TextIOWrapper(io.FileIO(0, "r", closefd=False), encoding="utf-8")
        sys.stdout = sys.__stdout__ = _text_stream(1)
        sys.stderr = sys.__stderr__ = _text_stream(2)

        # A spare, and a process kept for a trial's next step, seeded numpy while it
        # waited (see _serve_steps); otherwise it is seeded here.
        if not state.numpy_seeded:
            _seed_numpy()
        state.numpy_seeded = False
        os.chdir(request["cwd"])
        os.environ.update(request["env"])
        runtime = sys.modules.get("kale_runtime")
        if runtime is not None:
            # The outputs may go on in memory to the next step in this process.
            runtime._hand_on = bool(request.get("keep"))
        program = request["program"]
        sys.argv = [program]
        sys.path[0] = os.path.dirname(os.path.abspath(program))
        main = types.ModuleType("__main__")
        main.__file__ = program
        main.__builtins__ = builtins
        sys.modules["__main__"] = main
        state.main = main
        with open(program, "rb") as f:
            compiled = compile(f.read(), program, "exec")
        _trace("child.exec")
        try:
            exec(compiled, main.__dict__)
            code = 0
        except SystemExit as e:
            code = _exit_code(e)
        except BaseException as e:
            # Start the traceback at the program, as `python PROGRAM` would.
            tb = e.__traceback__.tb_next if e.__traceback__ is not None else None
            sys.excepthook(type(e), e.with_traceback(tb), tb)
            code = 1
        reusable = code == 0 and _reusable(runtime)
        # What the interpreter does on the way out: wait for non-daemon threads
        # (none when reusable: joining would also shut threading down for good),
        # then run the exit handlers (which forgets them).
        if not reusable:
            shutdown = getattr(__import__("threading"), "_shutdown", None)
            if shutdown is not None:
                shutdown()
        import atexit

        atexit._run_exitfuncs()
        _trace("child.done")
    except BaseException:
        reusable = False
        try:
            import traceback

            traceback.print_exc()
        except BaseException:
            pass
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except BaseException:
                pass
    return code, reusable


# --------------------------------------------------------------------------
# What the server does for kale_runtime in the steps it forks.


def prepare_runtime(runtime):
    """Before the first fork: import what ``save`` and the snapshot use, and classify
    the modules loaded so far once for all the steps (``runtime._imported_modules``
    then visits only the modules a step imports itself)."""
    import hashlib  # noqa: F401  (outputs are hashed)
    import pickle  # noqa: F401

    env_dirs, site_dirs = runtime._environment_dirs()
    site = runtime._with_sep(site_dirs)
    ignored = runtime._with_sep(runtime._always_ignored(env_dirs, site_dirs))
    runtime._fork_base = None
    packages, local = runtime._imported_modules({"site": site, "ignored": ignored})
    last = next(reversed(sys.modules.items()))
    runtime._fork_base = {"site": site, "packages": packages, "local": local, "last": last,
                          "ignored": ignored}
    runtime._fork_base["top_level"] = frozenset(n.partition(".")[0] for n in list(sys.modules))
    # What a process kept for a trial's next step puts the libraries back to.
    try:
        runtime._fork_base["libraries"] = runtime.library_state()
    except Exception:
        runtime._fork_base["libraries"] = None


# Backends whose loading runs no code of the notebook's and starts no threads.
_WARMABLE = frozenset(["numpy", "numpy-scalar", "pandas", "sklearn", "pickle"])


class _RefuseImports:
    """A meta-path finder refusing the modules that must not be imported before fork()."""

    def __init__(self, names):
        self.names = frozenset(names)

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in self.names:
            raise ImportError("%s is not imported in kale's fork server" % name)
        return None


def _available_memory():
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        return 0


def warm(runtime, entries, refuse=()):
    """Load each ``{"hash", "path"}`` not held yet into ``runtime._warm``, so that the
    steps forked from now on start with it in memory; returns the hashes held.

    A value is loaded as the step would load it, with two exceptions that leave it
    for the step to load: a value that refers to something the notebook defines (the
    server has no notebook ``__main__``, so its pickle cannot be resolved here), and a
    value whose loading would import a module in ``refuse`` (libraries that do not
    survive ``fork()``). A file that is not mapped is held only when it fits in a
    quarter of the memory available.
    """
    refuser = _RefuseImports(refuse)
    held = runtime._warm
    for entry in entries:
        digest, path = entry.get("hash"), entry.get("path")
        if not digest or not path or digest in held:
            continue
        key, _ = runtime._backend_for_path(path)
        if key not in _WARMABLE:
            continue
        try:
            st = os.stat(path)
        except OSError:
            continue
        mapped = key == "numpy" and st.st_size >= runtime._MMAP_MIN_BYTES
        if not mapped and st.st_size > _available_memory() // 4:
            continue
        main = sys.modules.get("__main__")
        sys.modules["__main__"] = types.ModuleType("__main__")
        sys.meta_path.insert(0, refuser)
        try:
            value = runtime.load(path)
        except BaseException:
            continue
        finally:
            sys.meta_path.remove(refuser)
            sys.modules["__main__"] = main
        held[digest] = ((st.st_ino, st.st_size, st.st_mtime_ns), value)
    return sorted(held)


class _Server:
    def __init__(self, sock, wakeup_fds):
        self.sock = sock
        self.wakeup_fds = wakeup_fds
        self.selector = selectors.DefaultSelector()
        # pid -> the server's end of the child's channel
        self.channels = {}
        # A child forked ahead of the next request, waiting on its channel: the
        # fork (10 ms and more for a big server) happens while the previous step
        # runs, not when the next one is asked for.
        self.spare = None
        # Children handed a step (only their exits interest kale), those whose
        # end kale was already told (a "done" message came before the exit), and
        # those waiting, after their step, for the next step of the same trial.
        self.stepping = set()
        self.reported = set()
        self.idle = set()
        # The pages of the server the last child to end wrote to (written_pages),
        # and how many spares have copied them ahead since.
        self.written = None
        self.written_uses = 0

    def fork(self, close=(), spare=False):
        """Forks a child waiting for its step (without the descriptors in ``close``:
        the step gets its own copies through its channel); returns its pid. A spare
        seeds numpy and copies ahead the pages the last child to end wrote to."""
        global _forked_regions, _numpy_seeded_ahead
        # Copying ahead pays when a core would otherwise wait; with a step on every
        # core it would only take their time.
        copy_ahead = spare and self.written and len(self.stepping - self.reported) < _cores()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        gc.freeze()  # the child's collections then leave the server's objects (and pages) alone
        pid = os.fork()
        if pid == 0:
            try:
                ours.close()
                for fd in close:
                    os.close(fd)
                _prepare_child(self)
                if spare:
                    _numpy_seeded_ahead = _seed_numpy()
                    _forked_regions = _writable_private_regions()
                    if copy_ahead:
                        pages = array.array("Q")
                        pages.frombytes(self.written)
                        self.written = None
                        touched = touch_pages(pages, _forked_regions, theirs)
                        _trace("child.touched", touched)
            except BaseException:
                os._exit(1)
            _await_request(theirs)
        theirs.close()
        if copy_ahead:
            self.written_uses += 1
        self.channels[pid] = ours
        self.selector.register(ours, selectors.EVENT_READ, pid)
        return pid

    def refresh_spare(self):
        """A new spare, forked from the server as it is now (after a warm load)."""
        if self.spare is not None:
            old, self.spare = self.spare, None
            try:
                os.kill(old, signal.SIGKILL)
            except OSError:
                pass
        self.ensure_spare()

    def ensure_spare(self):
        if self.spare is None:
            try:
                self.spare = self.fork(spare=True)
            except OSError:
                self.spare = None

    def wants_pages(self):
        return not self.written or self.written_uses >= _PAGES_REFRESH

    def start_step(self, request, fds):
        # Whether the child, when it ends after this step, lists the pages it wrote to.
        request["report_pages"] = self.wants_pages()
        pid = None
        wanted = request.get("pid")
        if wanted is not None and wanted in self.idle:
            # The next step of a trial, in the process that ran the step before it.
            self.idle.discard(wanted)
            self.reported.discard(wanted)
            try:
                socket.send_fds(self.channels[wanted], [json.dumps(request).encode()], fds)
                pid = wanted
            except (OSError, KeyError):
                self.release(wanted)
        if pid is None and self.spare is not None:
            pid, self.spare = self.spare, None
            try:
                socket.send_fds(self.channels[pid], [json.dumps(request).encode()], fds)
            except OSError:
                pid = None  # the spare is gone: fork one for this step
        if pid is None:
            pid = self.fork(close=fds)
            socket.send_fds(self.channels[pid], [json.dumps(request).encode()], fds)
        self.stepping.add(pid)
        return pid

    def release(self, pid):
        """Ends an idle child: it says which pages it wrote to, and leaves."""
        self.idle.discard(pid)
        channel = self.channels.get(pid)
        try:
            channel.send(b"release pages" if self.wants_pages() else b"release")
        except (OSError, AttributeError):
            self.close_channel(channel)

    def close_channel(self, channel):
        if channel is not None:
            try:
                self.selector.unregister(channel)
            except (KeyError, ValueError):
                pass
            channel.close()

    def warm(self, request):
        runtime = sys.modules.get("kale_runtime")
        if runtime is None or not hasattr(runtime, "_warm"):
            return []
        held = warm(runtime, request.get("warm", ()), request.get("refuse", ()))
        self.refresh_spare()
        return held

    def on_request(self):
        message, fds, _, _ = socket.recv_fds(self.sock, 1 << 20, 2)
        if not message:
            return False
        request = json.loads(message)
        _trace("zygote.request", request.get("id"))
        if "release" in request:
            for fd in fds:
                os.close(fd)
            self.release(request["release"])
            return True
        if "warm" in request:
            for fd in fds:
                os.close(fd)
            try:
                held = self.warm(request)
            except BaseException:
                held = []
            _send(self.sock, {"id": request["id"], "warmed": held})
            return True
        if len(fds) != 2:
            for fd in fds:
                os.close(fd)
            _send(self.sock, {"id": request.get("id"), "error": "expected two pipes"})
            return True
        try:
            pid = self.start_step(request, fds)
        except OSError as e:
            pid = None
            _send(self.sock, {"id": request["id"], "error": "could not fork: %s" % e})
        for fd in fds:
            os.close(fd)
        if pid is not None:
            _trace("zygote.forked", pid)
            _send(self.sock, {"id": request["id"], "pid": pid})
        self.ensure_spare()
        return True

    def on_channel(self, pid):
        channel = self.channels.get(pid)
        try:
            message = channel.recv(_TOUCH_LIMIT_PAGES * 8 + 1)
        except OSError:
            message = b""
        if not message:
            self.selector.unregister(channel)
            return
        if self.keep_written(message):
            return
        done = json.loads(message)
        if "done" in done and pid in self.stepping and pid not in self.reported:
            if done.get("idle"):
                # Its exit (when kale releases it) is nobody's news.
                self.stepping.discard(pid)
                self.idle.add(pid)
                _send(self.sock, {"exited": pid, "code": done["done"], "idle": True})
            else:
                self.reported.add(pid)
                _send(self.sock, {"exited": pid, "code": done["done"]})

    def keep_written(self, message):
        """Keeps a child's list of the pages it wrote to; whether ``message`` was one."""
        if message[:1] != b"\0":
            return False
        self.written, self.written_uses = message[1:], 0
        return True

    def take_written(self, channel):
        while True:
            try:
                message = channel.recv(_TOUCH_LIMIT_PAGES * 8 + 1, socket.MSG_DONTWAIT)
            except OSError:
                return
            if not message:
                return
            self.keep_written(message)

    def reap(self):
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            channel = self.channels.pop(pid, None)
            if channel is not None:
                self.take_written(channel)  # sent just before it ended
            self.close_channel(channel)
            self.idle.discard(pid)
            if pid == self.spare:
                self.spare = None
            code = os.waitstatus_to_exitcode(status)
            _trace("zygote.reaped", pid)
            if pid in self.stepping:
                self.stepping.discard(pid)
                if pid in self.reported:
                    self.reported.discard(pid)
                else:
                    _send(self.sock, {"exited": pid, "code": code if code >= 0 else None})

    def serve(self):
        wake_r = self.wakeup_fds[0]
        self.selector.register(self.sock, selectors.EVENT_READ, "kale")
        self.selector.register(wake_r, selectors.EVENT_READ, "wake")
        self.ensure_spare()
        while True:
            for key, _ in self.selector.select():
                if key.data == "kale":
                    if not self.on_request():
                        return
                elif key.data == "wake":
                    try:
                        os.read(wake_r, 4096)
                    except BlockingIOError:
                        pass
                else:
                    self.on_channel(key.data)
            self.reap()
            if self.spare is None:
                self.ensure_spare()


def main():
    sock = socket.socket(fileno=int(sys.argv[1]))
    for name in sys.argv[2:]:
        try:
            importlib.import_module(name)
        except BaseException:
            pass
    # numpy loads numpy.random on first use (~20 ms): once here rather than in each
    # step that draws a random number.
    if "numpy" in sys.modules:
        try:
            importlib.import_module("numpy.random")
        except BaseException:
            pass
    # Every step imports the runtime first: once here instead (when kale put it on
    # the path), with what it learns about the loaded modules precomputed.
    try:
        prepare_runtime(importlib.import_module("kale_runtime"))
    except BaseException:
        pass
    # SIGCHLD wakes the select loop through a self-pipe.
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda signum, frame: None)
    # A Ctrl-C at the terminal is kale's to handle.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _send(sock, {"ready": True})
    try:
        _Server(sock, (wake_r, wake_w)).serve()
    except (BrokenPipeError, ConnectionResetError):
        pass  # kale has gone: so do the server and, through PDEATHSIG, its children


if __name__ == "__main__":
    main()
