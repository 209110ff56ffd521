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

Lifetimes: the server dies with kale (PR_SET_PDEATHSIG, set by kale) and each
child dies with the server, so a kill -9 of kale leaves nothing running. Each
child leads its own process group, so kale can stop a step and whatever it
started with one signal, exactly as for a step it spawned directly.
"""

import builtins
import ctypes
import importlib
import io
import json
import os
import selectors
import signal
import socket
import sys
import types

_PR_SET_PDEATHSIG = 1


def _die_with_parent():
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except Exception:
        pass


def _send(sock, message):
    sock.send(json.dumps(message).encode())


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


def _run_child(sock, wakeup_fds, request, fds):
    """In the forked child: become a fresh `python PROGRAM`; never returns."""
    code = 1
    try:
        os.setpgid(0, 0)
        _die_with_parent()
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        sock.close()
        for fd in wakeup_fds:
            os.close(fd)
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

        # A spawned step would seed numpy's global generator from the OS; a
        # forked one inherits the server's state, so every step (and trial)
        # would draw the same "random" numbers. Python's `random` reseeds itself
        # after fork.
        numpy = sys.modules.get("numpy")
        if numpy is not None:
            try:
                numpy.random.seed()
            except Exception:
                pass
        os.chdir(request["cwd"])
        os.environ.update(request["env"])
        program = request["program"]
        sys.argv = [program]
        sys.path[0] = os.path.dirname(os.path.abspath(program))
        main = types.ModuleType("__main__")
        main.__file__ = program
        main.__builtins__ = builtins
        sys.modules["__main__"] = main
        with open(program, "rb") as f:
            compiled = compile(f.read(), program, "exec")
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
        # What the interpreter does on the way out: wait for non-daemon
        # threads, then run the exit handlers.
        shutdown = getattr(__import__("threading"), "_shutdown", None)
        if shutdown is not None:
            shutdown()
        import atexit

        atexit._run_exitfuncs()
    except BaseException:
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
        os._exit(code)


def _reap(sock):
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        code = os.waitstatus_to_exitcode(status)
        _send(sock, {"exited": pid, "code": code if code >= 0 else None})


def main():
    sock = socket.socket(fileno=int(sys.argv[1]))
    for name in sys.argv[2:]:
        try:
            importlib.import_module(name)
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
    selector = selectors.DefaultSelector()
    selector.register(sock, selectors.EVENT_READ)
    selector.register(wake_r, selectors.EVENT_READ)
    while True:
        for key, _ in selector.select():
            if key.fileobj is sock:
                message, fds, _, _ = socket.recv_fds(sock, 1 << 20, 2)
                if not message:
                    return
                request = json.loads(message)
                if len(fds) != 2:
                    for fd in fds:
                        os.close(fd)
                    _send(sock, {"id": request.get("id"), "error": "expected two pipes"})
                    continue
                pid = os.fork()
                if pid == 0:
                    _run_child(sock, (wake_r, wake_w), request, fds)
                for fd in fds:
                    os.close(fd)
                _send(sock, {"id": request["id"], "pid": pid})
            else:
                try:
                    os.read(wake_r, 4096)
                except BlockingIOError:
                    pass
        _reap(sock)


if __name__ == "__main__":
    main()
