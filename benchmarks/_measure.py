"""Shared helpers: run a child process and measure its wall time, CPU time and peak RSS."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "ROOT",
    "EmulatorProcess",
    "Launched",
    "Measured",
    "launch",
    "machine",
    "run_measured",
    "start_emulator",
]

#: The repository root (benchmarks run from a checkout).
ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True, slots=True, kw_only=True)
class Measured:
    """One child process: wall seconds, CPU seconds (user + system), peak RSS in MB, exit code, output;
    `started_at` is the wall clock (`time.time()`) when it was forked."""

    wall_s: float
    cpu_s: float
    peak_rss_mb: float
    returncode: int
    stdout: str
    stderr: str
    started_at: float = 0.0


# Runs the measured command as its own child and reports that child's rusage. Why a launcher: on
# Linux a child's ru_maxrss starts from the RSS of the process it was forked from (exec keeps the
# high-water mark), so a command forked straight from a benchmark holding a million-row frame would
# report the benchmark's memory. The launcher is a bare interpreter (about 10 MB). It writes the
# child's pid and start time first (`<result>.pid`), so that a benchmark can signal the command itself.
_LAUNCHER = """
import json, os, sys, time
started, epoch = time.perf_counter(), time.time()
pid = os.fork()
if pid == 0:
    os.execv(sys.argv[2], sys.argv[2:])
with open(sys.argv[1] + ".tmp", "w") as out:
    json.dump([pid, epoch], out)
os.replace(sys.argv[1] + ".tmp", sys.argv[1] + ".pid")
_, status, usage = os.wait4(pid, 0)
wall = time.perf_counter() - started
with open(sys.argv[1], "w") as out:
    cpu = usage.ru_utime + usage.ru_stime
    json.dump([os.waitstatus_to_exitcode(status), wall, cpu, usage.ru_maxrss, epoch], out)
"""


class Launched:
    """A measured command started by `launch`: it can be signalled while it runs, then `wait`ed for."""

    def __init__(
        self, argv: Sequence[str], *, env: Mapping[str, str] | None = None, cwd: Path | None = None
    ) -> None:
        self._scratch = tempfile.TemporaryDirectory(prefix="ims-bench-")
        folder = Path(self._scratch.name)
        self._result, self._stdout, self._stderr = (folder / name for name in ("rusage.json", "out", "err"))
        # Output to files, not pipes: a command that writes much while nobody reads must not block.
        with self._stdout.open("wb") as stdout, self._stderr.open("wb") as stderr:
            self.process = subprocess.Popen(
                [sys.executable, "-S", "-c", _LAUNCHER, str(self._result), *argv],
                stdout=stdout,
                stderr=stderr,
                env=dict(env) if env is not None else None,
                cwd=cwd,
            )

    def started(self) -> tuple[int, float] | None:
        """(pid, wall-clock start) of the measured command once it is forked, else None."""
        marker = self._result.with_name(self._result.name + ".pid")
        if not marker.exists():
            return None
        pid, epoch = json.loads(marker.read_text())
        return int(pid), float(epoch)

    def send_signal(self, signum: int) -> bool:
        """Signal the measured command (not the launcher); False if it is not running (yet)."""
        started = self.started()
        if started is None or self.process.poll() is not None:
            return False
        try:
            os.kill(started[0], signum)
        except ProcessLookupError:
            return False
        return True

    def wait(self, timeout: float | None = None) -> Measured:
        """Wait for the command to end (`subprocess.TimeoutExpired` after `timeout` s); its figures."""
        self.process.wait(timeout=timeout)
        try:
            if not self._result.exists():
                raise RuntimeError(f"the launcher failed: {self._stderr.read_text()[-2000:]}")
            code, wall, cpu, maxrss_kib, epoch = json.loads(self._result.read_text())
            return Measured(
                wall_s=wall,
                cpu_s=cpu,
                peak_rss_mb=maxrss_kib / 1024,  # Linux reports KiB
                returncode=code,
                stdout=self._stdout.read_bytes().decode(),
                stderr=self._stderr.read_bytes().decode(),
                started_at=epoch,
            )
        finally:
            self._scratch.cleanup()


def launch(argv: Sequence[str], *, env: Mapping[str, str] | None = None, cwd: Path | None = None) -> Launched:
    """Start `argv` (its first item an absolute path) as a measured command and return at once."""
    return Launched(argv, env=env, cwd=cwd)


def run_measured(
    argv: Sequence[str], *, env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> Measured:
    """Run `argv` (its first item an absolute path) to completion and measure it alone.

    Wall time is from fork to exit; CPU is user + system; peak RSS is the command's own (see
    `_LAUNCHER`). What earlier commands wrote is flushed to disk first (`os.sync`): a report of
    hundreds of MB left dirty in the page cache would otherwise be written back during the next
    command, and the kernel throttles that command's own writes for it.
    """
    os.sync()
    return launch(argv, env=env, cwd=cwd).wait()


def machine() -> str:
    """One line naming the machine: CPUs, memory, Python, OS."""
    try:
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        memory = f"{pages / 2**30:.1f} GiB RAM"
    except (ValueError, OSError):
        memory = "RAM unknown"
    return (
        f"{os.cpu_count()} CPUs, {memory}, Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()} ({sys.executable})"
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class EmulatorProcess:
    """An `ims-sync emulator` child process and where to reach it."""

    process: subprocess.Popen[bytes]
    url: str
    ca_bundle: Path

    def stop(self) -> None:
        """Stop the emulator (SIGTERM, then SIGKILL after 10 s)."""
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_emulator(cert_dir: Path, env: Mapping[str, str], *options: str) -> EmulatorProcess:
    """Start `ims-sync emulator --port 0` in its own process and wait until it serves."""
    cert_dir.mkdir(parents=True, exist_ok=True)
    argv = [
        str(Path(sys.executable).parent / "ims-sync"),
        "emulator", "--port", "0", "--cert-dir", str(cert_dir), *options,
    ]  # fmt: skip
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=dict(env))
    assert process.stdout is not None
    deadline = time.monotonic() + 30
    url = ""
    for raw in process.stdout:
        line = raw.decode()
        if line.startswith("PMS URL:"):
            url = line.split(":", 1)[1].strip()
        if line.startswith("Serving"):
            break
        if time.monotonic() > deadline:
            break
    if not url:
        process.kill()
        raise RuntimeError("the emulator did not start")
    return EmulatorProcess(process=process, url=url, ca_bundle=cert_dir / "emulator-cert.pem")
