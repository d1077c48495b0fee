"""Benchmark `ims-sync run` against the emulator (own process, `--latency-ms 100`): creates per second.

For each concurrency level it writes a fresh state directory and a generated OneRoster roster of
people the emulator does not know (so every operation is a createPerson), runs the real
`ims-sync run ... --concurrency C --max-in-flight max(C, 10)` as a child process, and reports:

- ops/s over the execution (the run's wall time minus that of `ims-sync plan` on the same roster and
  an empty state: start-up, reading and planning excluded), and its share of the ideal, in-flight
  objects ÷ latency;
- client CPU seconds per operation: the run's CPU (user + system, `os.wait4`) minus the CPU of
  `ims-sync plan` on the same roster and an empty state (start-up, reading, planning), divided by the
  number of operations.

With `--batch-sizes 1,10,50` it also measures mass createPersons, if `ims-sync run --help` offers
`--batch-size` (in-flight objects = concurrency x batch size; the concurrency is then chosen so
that the budget stays at the level asked for).

    .venv/bin/python -m benchmarks.executor                       # levels 1, 8, 10, 32, 64
    .venv/bin/python -m benchmarks.executor --levels 10 --ops 3000 --batch-sizes 1,10
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from benchmarks._measure import ROOT, EmulatorProcess, Measured, machine, run_measured, start_emulator
from benchmarks.plan import generate

IMS_SYNC = str(Path(sys.executable).parent / "ims-sync")
# A benchmark-only credential for the local emulator; never a real site's.
CREDENTIALS = {"IMS_ES_USERNAME": "benchmark", "IMS_ES_PASSWORD": "benchmark-only-secret"}


@dataclass(frozen=True, slots=True, kw_only=True)
class Row:
    """One measured configuration."""

    in_flight: int
    concurrency: int
    batch_size: int
    ops: int
    confirmed: int
    seconds: float
    run: Measured
    baseline_cpu_s: float
    latency_s: float

    @property
    def ops_per_s(self) -> float:
        """Confirmed operations per second of execution."""
        return self.confirmed / self.seconds if self.seconds > 0 else 0.0

    @property
    def ideal(self) -> float:
        """In-flight objects ÷ latency: what a client with no overhead of its own would reach."""
        return self.in_flight / self.latency_s

    @property
    def cpu_ms_per_op(self) -> float:
        """Client CPU per operation, start-up and planning excluded."""
        return max(self.run.cpu_s - self.baseline_cpu_s, 0.0) / max(self.ops, 1) * 1000


def has_batch_size() -> bool:
    """True when this version's `ims-sync run` offers `--batch-size` (mass createPersons)."""
    result = run_measured([IMS_SYNC, "run", "--help"])
    return "--batch-size" in result.stdout


def measure(
    *,
    emulator: EmulatorProcess,
    workdir: Path,
    in_flight: int,
    batch_size: int,
    ops: int,
    latency_s: float,
    seed: int,
    env: dict[str, str],
) -> Row:
    """Run `ims-sync run` once for `ops` new people at an in-flight budget of `in_flight` objects."""
    folder = workdir / f"if{in_flight}-b{batch_size}-seed{seed}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    roster, report = folder / "users.csv", folder / "run.json"
    # Distinct keys per configuration, so that every operation is a real create on the emulator.
    generate(roster, ops, seed)
    text = roster.read_text(encoding="utf-8").replace("usr-", f"b{in_flight}x{batch_size}-")
    roster.write_text(text, encoding="utf-8")
    concurrency = max(1, in_flight // batch_size)
    common = [str(roster), "-m", "oneroster-users", "--state"]
    baseline = run_measured(
        [IMS_SYNC, "plan", *common, str(folder / "plan-state"), "--format", "json", "-o",
         str(folder / "plan.json")],
        env=env,
    )  # fmt: skip
    argv = [
        IMS_SYNC, "run", *common, str(folder / "state"), "--endpoint", emulator.url,
        "--ca-bundle", str(emulator.ca_bundle), "--concurrency", str(concurrency),
        "--max-in-flight", str(max(in_flight, 10)), "--report", str(report), "--report-format", "json",
    ]  # fmt: skip
    if batch_size > 1:
        argv += ["--batch-size", str(batch_size)]
    run = run_measured(argv, env=env)
    if run.returncode != 0 or not report.exists():
        raise SystemExit(f"ims-sync run failed ({run.returncode}):\n{run.stderr[-3000:]}")
    data = json.loads(report.read_text(encoding="utf-8"))
    # The report's times have whole seconds only; the plan's wall time (start-up, reading, planning on
    # the same roster) subtracted from the run's is the execution, to the millisecond.
    seconds = run.wall_s - baseline.wall_s
    return Row(
        in_flight=concurrency * batch_size,  # what the budget admits: whole batches only
        concurrency=concurrency,
        batch_size=batch_size,
        ops=ops,
        confirmed=int(data["summary"].get("confirmed", 0)),
        seconds=seconds,
        run=run,
        baseline_cpu_s=baseline.cpu_s,
        latency_s=latency_s,
    )


def table(rows: list[Row]) -> str:
    """The figures as a Markdown table."""
    lines = [
        "| in flight (objects) | concurrency x batch | creates | seconds | ops/s | ideal ops/s | share "
        "| client CPU ms/op | run wall s | run peak RSS MB |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        lines.append(
            f"| {row.in_flight} | {row.concurrency} x {row.batch_size} | {row.confirmed}/{row.ops} "
            f"| {row.seconds:.1f} | {row.ops_per_s:.1f} | {row.ideal:.0f} "
            f"| {row.ops_per_s / row.ideal:.0%} | {row.cpu_ms_per_op:.2f} | {row.run.wall_s:.1f} "
            f"| {row.run.peak_rss_mb:.0f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Start the emulator, run every configuration, print the table and the command to reproduce."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--levels", default="1,8,10,32,64", help="in-flight budgets (objects)")
    parser.add_argument("--ops", type=int, default=2000, help="creates per level (see --max-seconds)")
    parser.add_argument(
        "--max-seconds", type=float, default=30.0, help="fewer creates where the ideal would take longer"
    )
    parser.add_argument("--latency-ms", type=float, default=100.0)
    parser.add_argument("--batch-sizes", default="1", help="1 = single createPerson; e.g. 1,10,50")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args(argv)
    levels = [int(level) for level in args.levels.split(",")]
    batch_sizes = [int(size) for size in args.batch_sizes.split(",")]
    if any(size > 1 for size in batch_sizes) and not has_batch_size():
        print("note: this ims-sync run has no --batch-size yet; measuring single calls only", file=sys.stderr)
        batch_sizes = [1]
    latency_s = args.latency_ms / 1000
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="ims-bench-executor-"))
    env = {**os.environ, **CREDENTIALS}
    print(f"machine: {machine()}", file=sys.stderr)
    emulator = start_emulator(workdir / "certs", env, "--latency-ms", str(args.latency_ms))
    rows: list[Row] = []
    try:
        for batch_size in batch_sizes:
            for level in levels:
                if level < batch_size:
                    continue
                ops = min(args.ops, max(50, math.ceil(level / latency_s * args.max_seconds)))
                row = measure(
                    emulator=emulator, workdir=workdir, in_flight=level, batch_size=batch_size, ops=ops,
                    latency_s=latency_s, seed=args.seed, env=env,
                )  # fmt: skip
                rows.append(row)
                print(table([row]).splitlines()[-1], file=sys.stderr)
    finally:
        emulator.stop()
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"machine: {machine()}; emulator latency {args.latency_ms:g} ms, own process")
    print(table(rows))
    command = " ".join(["python -m benchmarks.executor", *(argv if argv is not None else sys.argv[1:])])
    print(f"\nreproduce (from {ROOT}): .venv/bin/{command.strip()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
