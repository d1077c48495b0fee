"""A warm interpreter that forks `ims-sync` commands on request, so crash trials skip ~1.5 s of imports each.

Run as `python -m tests.forkserver`. It imports the sync engine once, prints `ready`, then reads one
JSON command a line on stdin: `{"id", "argv", "env", "stdout", "stderr"}`. For each it forks a child
that runs `sync.cli.app.main(argv)` exactly as the `ims-sync` console script does (its own process, its
own signal handlers, output to the given files) and prints `{"id", "pid"}`; when a child ends it
prints `{"exit": pid, "code": exit code (negative: killed by that signal)}`. The server stays single
threaded, so forking is safe. `ForkServer` is the test side.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO, Any

__all__ = ["ForkServer"]


def _child(command: dict[str, Any]) -> None:
    """In the forked child: become the command and exit with its code (never return)."""
    code = 70
    try:
        os.environ.update(command["env"])
        null = os.open(os.devnull, os.O_RDONLY)
        out = os.open(command["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        err = os.open(command["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(null, 0)
        os.dup2(out, 1)
        os.dup2(err, 2)
        # A fresh process gets default signal dispositions: SIGINT raises KeyboardInterrupt, SIGTERM kills.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        from sync.cli.app import main  # already imported by the server: no cost

        code = main(command["argv"])
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def serve() -> None:
    """The server loop: fork a child per command line, report pids and exit codes on stdout."""
    import sync.cli.app  # the costly imports, once
    import sync.ims.clients
    import sync.plan.diff
    import sync.read.mapping
    import sync.read.roster
    import sync.report.render
    import sync.send.executor
    import sync.state.store

    sync.ims.exchange.bundled_wsdl(sync.ims.persons.PMS_SPEC)  # parse the WSDL once; children inherit it

    def say(message: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(message) + "\n")
        sys.stdout.flush()

    say({"ready": True})
    buffer = b""
    live: set[int] = set()
    open_input = True
    while open_input or live:
        readable, _, _ = select.select([0] if open_input else [], [], [], 0.005)
        while live:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                break
            live.discard(pid)
            say({"exit": pid, "code": os.waitstatus_to_exitcode(status)})
        if not readable:
            continue
        chunk = os.read(0, 65536)
        if not chunk:
            open_input = False
            continue
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            command = json.loads(line)
            sys.stdout.flush()
            pid = os.fork()
            if pid == 0:
                _child(command)
            live.add(pid)
            say({"id": command["id"], "pid": pid})


class ForkServer:
    """The test side: start the server, spawn commands, wait for or signal them."""

    def __init__(self, cwd: Path) -> None:
        """Start `python -m tests.forkserver` in `cwd` and wait until it has imported everything."""
        self._process = subprocess.Popen(
            [sys.executable, "-m", "tests.forkserver"],
            cwd=cwd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self._lock = threading.Condition()
        self._pids: dict[int, int] = {}  # command id -> pid
        self._codes: dict[int, int] = {}  # pid -> exit code
        self._next = 0
        assert self._process.stdout is not None
        first = self._process.stdout.readline()
        if '"ready"' not in first:
            raise RuntimeError(f"the fork server did not start: {first!r}")
        self._reader = threading.Thread(target=self._read, args=(self._process.stdout,), daemon=True)
        self._reader.start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            message = json.loads(line)
            with self._lock:
                if "pid" in message:
                    self._pids[message["id"]] = message["pid"]
                else:
                    self._codes[message["exit"]] = message["code"]
                self._lock.notify_all()

    def spawn(self, argv: list[str], *, env: dict[str, str], stdout: Path, stderr: Path) -> int:
        """Fork `ims-sync argv` with `env` added; its output goes to the files. Returns the child's pid."""
        assert self._process.stdin is not None
        with self._lock:
            self._next += 1
            ident = self._next
        command = {"id": ident, "argv": argv, "env": env, "stdout": str(stdout), "stderr": str(stderr)}
        self._process.stdin.write(json.dumps(command) + "\n")
        self._process.stdin.flush()
        with self._lock:
            if not self._lock.wait_for(lambda: ident in self._pids, timeout=10):
                raise RuntimeError("the fork server did not answer")
            return self._pids[ident]

    def exit_code(self, pid: int) -> int | None:
        """The child's exit code, or None while it runs."""
        with self._lock:
            return self._codes.get(pid)

    def wait(self, pid: int, timeout: float = 60.0) -> int:
        """Wait for the child to end; its exit code (negative: the signal that killed it)."""
        with self._lock:
            if not self._lock.wait_for(lambda: pid in self._codes, timeout=timeout):
                raise TimeoutError(f"child {pid} still runs after {timeout} s")
            return self._codes[pid]

    def close(self) -> None:
        """Stop the server once its children have ended (killing them all after 30 s: a failed test)."""
        assert self._process.stdin is not None
        self._process.stdin.close()
        try:
            self._process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with self._lock:
                stragglers = [pid for pid in self._pids.values() if pid not in self._codes]
            for pid in stragglers:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            self._process.kill()
            self._process.wait(timeout=10)
        finally:
            if self._process.stdout is not None:
                self._process.stdout.close()


if __name__ == "__main__":
    serve()
