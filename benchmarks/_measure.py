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

__all__ = ["ROOT", "EmulatorProcess", "Measured", "machine", "run_measured", "start_emulator"]

#: The repository root (benchmarks run from a checkout).
ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True, slots=True, kw_only=True)
class Measured:
    """One child process: wall seconds, CPU seconds (user + system), peak RSS in MB, exit code, output."""

    wall_s: float
    cpu_s: float
    peak_rss_mb: float
    returncode: int
    stdout: str
    stderr: str


# Runs the measured command as its own child and reports that child's rusage. Why a launcher: on
# Linux a child's ru_maxrss starts from the RSS of the process it was forked from (exec keeps the
# high-water mark), so a command forked straight from a benchmark holding a million-row frame would
# report the benchmark's memory. The launcher is a bare interpreter (about 10 MB).
_LAUNCHER = """
import json, os, sys, time
started = time.perf_counter()
pid = os.fork()
if pid == 0:
    os.execv(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
wall = time.perf_counter() - started
with open(sys.argv[1], "w") as out:
    cpu = usage.ru_utime + usage.ru_stime
    json.dump([os.waitstatus_to_exitcode(status), wall, cpu, usage.ru_maxrss], out)
"""


def run_measured(
    argv: Sequence[str], *, env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> Measured:
    """Run `argv` (its first item an absolute path) to completion and measure it alone.

    Wall time is from fork to exit; CPU is user + system; peak RSS is the command's own (see
    `_LAUNCHER`).
    """
    with tempfile.TemporaryDirectory(prefix="ims-bench-") as scratch:
        result = Path(scratch) / "rusage.json"
        completed = subprocess.run(
            [sys.executable, "-S", "-c", _LAUNCHER, str(result), *argv],
            capture_output=True,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            check=False,
        )
        if not result.exists():
            raise RuntimeError(f"the launcher failed: {completed.stderr.decode()[-2000:]}")
        code, wall, cpu, maxrss_kib = json.loads(result.read_text())
    return Measured(
        wall_s=wall,
        cpu_s=cpu,
        peak_rss_mb=maxrss_kib / 1024,  # Linux reports KiB
        returncode=code,
        stdout=completed.stdout.decode(),
        stderr=completed.stderr.decode(),
    )


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
