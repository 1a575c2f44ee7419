"""A warm start for the fault table: one server process imports asrmerge and its libraries once, then forks a
fresh child per case that runs the same entry point as ``python -m asrmerge`` (``asrmerge.cli.main.main``).

Each child is a real process with its own pid, working folder, environment, argv and stdin/stdout/stderr
pipes (passed over a Unix socket), exits with the status the command chooses, and can be signalled; what
it saves is only the start-up (about 1.5 s of importing torch per case, 5 s with transformers): a hundred
cases would otherwise take minutes on two cores. The server never runs a tensor operation, so no thread
pool exists when it forks. ``tests/faults/test_table.py`` checks that a sample of cases gives the same
exit codes and messages through :func:`tests.conftest.cli` (a fresh interpreter), and
``ASRMERGE_FAULTS_FRESH=1`` runs the whole table that way.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

from tests.conftest import ROOT

PRELOAD = (
    "asrmerge.cli.main", "asrmerge.taskvectors", "asrmerge.conversion", "asrmerge.merge.engine", "asrmerge.merge.plan",
    "asrmerge.diagnostics.inspection", "asrmerge.diagnostics.layers", "asrmerge.asr.model", "asrmerge.asr.decoding",
    "asrmerge.asr.scoring", "asrmerge.asr.mapsswe", "transformers", "rich.console", "rich.progress", "rich.table",
)


def serve(path: str) -> None:
    """Import everything, listen on ``path``, fork one child per request, report each child's exit status."""
    import importlib

    for name in PRELOAD:
        importlib.import_module(name)
    from transformers import (
        GenerationConfig,
        WhisperConfig,
        WhisperForConditionalGeneration,
        WhisperProcessor,
    )

    del GenerationConfig, WhisperConfig, WhisperForConditionalGeneration, WhisperProcessor
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    listener.bind(path)
    listener.listen(64)
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 1)
    sel = selectors.DefaultSelector()
    sel.register(listener, selectors.EVENT_READ)
    waiting: dict[int, socket.socket] = {}
    while True:
        for _ in sel.select(timeout=0.01):
            conn, _ = listener.accept()
            msg, fds, _, _ = socket.recv_fds(conn, 1 << 20, 3)
            req = json.loads(msg)
            if req.get("stop"):
                return
            pid = os.fork()
            if pid == 0:
                _child(req, fds, [listener, conn])
            for fd in fds:
                os.close(fd)
            conn.send(str(pid).encode())
            waiting[pid] = conn
        while waiting:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                break
            conn = waiting.pop(pid)
            conn.send(str(status).encode())
            conn.close()


def _child(req: dict, fds: list[int], sockets: list[socket.socket]) -> None:
    code = 1
    try:
        for s in sockets:
            s.close()
        for i, fd in enumerate(fds):
            os.dup2(fd, i)
        for fd in fds:
            if fd > 2:
                os.close(fd)
        os.chdir(req["cwd"])
        os.environ.clear()
        os.environ.update(req["env"])
        import tempfile

        tempfile.tempdir = None
        for sig in (signal.SIGTERM, signal.SIGCHLD):
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)  # as the interpreter starts; main() restores SIG_DFL
        sys.argv = [str(ROOT / "asrmerge" / "__main__.py"), *req["args"]]
        code = _main()
    finally:
        os._exit(code)


def _main() -> int:
    """``asrmerge.__main__`` and the interpreter's exit: the status, flushing as Python does."""
    import atexit
    import traceback

    code = 0
    try:
        from asrmerge.cli.main import main

        main()
    except SystemExit as e:
        if e.code is None:
            code = 0
        elif isinstance(e.code, int):
            code = e.code & 0xFF
        else:
            print(e.code, file=sys.stderr)
            code = 1
    except KeyboardInterrupt:
        traceback.print_exc()
        sys.stderr.flush()
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
    except BaseException:
        traceback.print_exc()
        code = 1
    threading._shutdown()  # type: ignore[attr-defined]  # as the interpreter ends: join threads, then atexit
    atexit._run_exitfuncs()
    try:
        sys.stdout.flush()
    except OSError:
        code = 120
    try:
        sys.stderr.flush()
    except OSError:
        pass
    return code


class Zygote:
    """The server, and :meth:`run`, which works like :func:`tests.conftest.cli`."""

    def __init__(self, folder: Path) -> None:
        self.path = str(folder / "zygote.sock")
        self.log = open(folder / "zygote.log", "wb")
        self.env = {**os.environ, "PYTHONPATH": str(ROOT), "NO_COLOR": "1"}
        self.proc = subprocess.Popen([sys.executable, "-c", "import sys; from tests.faults.zygote import serve; "
                                      "serve(sys.argv[1])", self.path], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=self.log, env=self.env, cwd=ROOT)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line == b"ready\n", f"the zygote did not start: {(folder / 'zygote.log').read_text()}"

    def spawn(self, *args: str, input: bytes | None = None, cwd: Path | None = None,
              env: dict[str, str] | None = None, stdout: int | None = None) -> Child:
        """Start ``asrmerge ARGS`` in a child of the server; ``stdout``: a descriptor to give it instead of a
        pipe that is captured."""
        in_r, in_w = os.pipe()
        out_r, out_w = (None, stdout) if stdout is not None else os.pipe()
        err_r, err_w = os.pipe()
        req = {"args": list(args), "cwd": str(cwd or Path.cwd()), "env": {**self.env, **(env or {})}}
        s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        s.connect(self.path)
        socket.send_fds(s, [json.dumps(req).encode()], [in_r, out_w, err_w])
        for fd in (in_r, err_w) if stdout is not None else (in_r, out_w, err_w):
            os.close(fd)
        return Child(["asrmerge", *args], int(s.recv(64)), s, input, in_w, out_r, err_r)

    def run(self, *args: str, input: bytes | None = None, cwd: Path | None = None,
            env: dict[str, str] | None = None, timeout: float = 600) -> subprocess.CompletedProcess[bytes]:
        """Run ``asrmerge ARGS`` like :func:`tests.conftest.cli`: stdout and stderr captured, ``input`` on stdin."""
        return self.spawn(*args, input=input, cwd=cwd, env=env).wait(timeout)

    def close(self) -> None:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as s:
                s.connect(self.path)
                r, w = os.pipe()
                socket.send_fds(s, [b'{"stop": true}'], [r, w, w])
                os.close(r)
                os.close(w)
            self.proc.wait(timeout=30)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
            self.log.close()


class Child:
    """A running command: its pid (to signal), and :meth:`wait` for its status and output."""

    def __init__(self, args: list[str], pid: int, sock: socket.socket, input: bytes | None, in_w: int,
                 out_r: int | None, err_r: int) -> None:
        self.args, self.pid, self._sock = args, pid, sock
        self._got: dict[str, bytes] = {}
        self._threads = [threading.Thread(target=self._feed, args=(in_w, input)),
                         threading.Thread(target=self._drain, args=("stderr", err_r))]
        if out_r is not None:
            self._threads.append(threading.Thread(target=self._drain, args=("stdout", out_r)))
        for t in self._threads:
            t.start()

    @staticmethod
    def _feed(fd: int, data: bytes | None) -> None:
        try:
            if data:
                _write_all(fd, data)
        except BrokenPipeError:
            pass
        finally:
            os.close(fd)

    def _drain(self, name: str, fd: int) -> None:
        chunks = []
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
        os.close(fd)
        self._got[name] = b"".join(chunks)

    def send_signal(self, sig: int) -> None:
        os.kill(self.pid, sig)

    def wait(self, timeout: float = 600) -> subprocess.CompletedProcess[bytes]:
        """The exit status (``-N`` for signal N, as subprocess says it) and everything it wrote."""
        self._sock.settimeout(timeout)
        try:
            status = int(self._sock.recv(64))
        except TimeoutError:
            os.kill(self.pid, signal.SIGKILL)
            self._sock.settimeout(None)
            status = int(self._sock.recv(64))
        self._sock.close()
        for t in self._threads:
            t.join()
        return subprocess.CompletedProcess(self.args, os.waitstatus_to_exitcode(status), self._got.get("stdout", b""),
                                           self._got.get("stderr", b""))


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]
