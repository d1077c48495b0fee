"""Benchmark `ims-sync run` for memberships against the emulator (own process, `--latency-ms 100`).

For each batch size (default 1 = createMembership, and 10 = createMemberships of 10) at the in-flight
budget (default 10 objects, itslearning's rule) it writes a OneRoster folder with `benchmarks.plan_set`
(`--ops` memberships: ops/3 persons, ops/75 classes, with keys of their own per configuration), then:

1. setup, not measured: `ims-sync run` with the enrollments file emptied (header only), so that the
   emulator and the state hold the persons, schools and classes;
2. baseline: `ims-sync plan` on the full folder against a copy of that state (start-up, reading and
   planning of exactly what the run plans);
3. measured: `ims-sync run` on the full folder: every operation a createMembership.

It reports ops/s over the execution (the run's wall time minus the baseline's), the share of the ideal
(in-flight objects ÷ latency) and the client CPU per membership (the run's CPU minus the baseline's),
with the columns of `benchmarks.executor`.

    .venv/bin/python -m benchmarks.executor_memberships                 # batch sizes 1 and 10, 2000 ops
    .venv/bin/python -m benchmarks.executor_memberships --ops 300 --batch-sizes 1,10    # quick
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from benchmarks._measure import ROOT, EmulatorProcess, machine, run_measured, start_emulator
from benchmarks.executor import CREDENTIALS, IMS_SYNC, Row, table
from benchmarks.plan_set import CLASSES_PER_PERSON, MAPPING, generate_set

# The key prefixes `generate_set` writes; each configuration gets keys of its own on the emulator.
PREFIXES = ("usr-", "org-", "cls-", "enr-")


def prepare(folder: Path, memberships: int, seed: int, tag: str) -> Path:
    """Write the folder (keys prefixed with `tag`) and a copy without enrollments; return the copy."""
    generate_set(folder, max(100, memberships // CLASSES_PER_PERSON), seed)
    for path in folder.iterdir():
        text = path.read_text(encoding="utf-8")
        for prefix in PREFIXES:
            text = text.replace(prefix, f"{tag}{prefix}")
        path.write_text(text, encoding="utf-8")
    setup = folder.parent / "setup"
    shutil.copytree(folder, setup)
    enrollments = setup / "enrollments.csv"
    header = enrollments.read_text(encoding="utf-8").splitlines()[0]
    enrollments.write_text(header + "\n", encoding="utf-8")
    return setup


def run_argv(
    folder: Path, state: Path, emulator: EmulatorProcess, *, concurrency: int, in_flight: int, batch: int
) -> list[str]:
    """`ims-sync run` for the folder with this budget."""
    return [
        IMS_SYNC, "run", str(folder), "-m", MAPPING, "--state", str(state), "--endpoint", emulator.url,
        "--ca-bundle", str(emulator.ca_bundle), "--concurrency", str(concurrency),
        "--max-in-flight", str(in_flight), "--batch-size", str(batch),
    ]  # fmt: skip


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
    """Set up persons and groups, then time the run that creates `ops` memberships."""
    base = workdir / f"mm-if{in_flight}-b{batch_size}-seed{seed}"
    shutil.rmtree(base, ignore_errors=True)
    folder, state = base / "roster", base / "state"
    setup = prepare(folder, ops, seed, f"m{in_flight}x{batch_size}")
    # The empty enrollments file is meant: without the flag, `run` refuses it as a truncated export.
    fast = run_argv(setup, state, emulator, concurrency=6, in_flight=60, batch=10)
    fast.append("--accept-shrunk-roster")
    done = run_measured(fast, env=env)
    if done.returncode != 0:
        raise SystemExit(f"setup run failed ({done.returncode}):\n{done.stderr[-3000:]}")
    plan_state = base / "plan-state"
    shutil.copytree(state, plan_state)
    plan_out = base / "plan.json"
    baseline = run_measured(
        [IMS_SYNC, "plan", str(folder), "-m", MAPPING, "--state", str(plan_state), "--format", "json",
         "-o", str(plan_out)],
        env=env,
    )  # fmt: skip
    planned = json.loads(plan_out.read_text(encoding="utf-8"))["summary"]
    others = {key: value for key, value in planned.items() if value and key.endswith(("create", "Create"))}
    if set(others) != {"membershipCreate"}:
        raise SystemExit(f"the measured run would do more than create memberships: {planned}")
    concurrency = max(1, in_flight // batch_size)
    report = base / "run.json"
    argv = run_argv(folder, state, emulator, concurrency=concurrency, in_flight=in_flight, batch=batch_size)
    run = run_measured([*argv, "--report", str(report), "--report-format", "json"], env=env)
    if run.returncode != 0 or not report.exists():
        raise SystemExit(f"ims-sync run failed ({run.returncode}):\n{run.stderr[-3000:]}")
    data = json.loads(report.read_text(encoding="utf-8"))
    return Row(
        in_flight=concurrency * batch_size,
        concurrency=concurrency,
        batch_size=batch_size,
        ops=int(planned["membershipCreate"]),
        confirmed=int(data["summary"].get("confirmed", 0)),
        seconds=run.wall_s - baseline.wall_s,
        run=run,
        baseline_cpu_s=baseline.cpu_s,
        latency_s=latency_s,
    )


def main(argv: list[str] | None = None) -> int:
    """Start the emulator, measure each batch size, print the table and the command to reproduce it."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--in-flight", type=int, default=10, help="objects in flight (default 10)")
    parser.add_argument("--batch-sizes", default="1,10", help="1 = single createMembership")
    parser.add_argument("--ops", type=int, default=2000, help="memberships created per configuration")
    parser.add_argument("--latency-ms", type=float, default=100.0)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args(argv)
    batch_sizes = [int(size) for size in args.batch_sizes.split(",")]
    latency_s = args.latency_ms / 1000
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="ims-bench-memberships-"))
    env = {**os.environ, **CREDENTIALS}
    print(f"machine: {machine()}", file=sys.stderr)
    emulator = start_emulator(workdir / "certs", env, "--latency-ms", str(args.latency_ms))
    rows: list[Row] = []
    try:
        for batch_size in batch_sizes:
            row = measure(
                emulator=emulator, workdir=workdir, in_flight=args.in_flight, batch_size=batch_size,
                ops=args.ops, latency_s=latency_s, seed=args.seed, env=env,
            )  # fmt: skip
            rows.append(row)
            print(table([row]).splitlines()[-1], file=sys.stderr)
    finally:
        emulator.stop()
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"machine: {machine()}; emulator latency {args.latency_ms:g} ms, own process; memberships")
    print(table(rows))
    command = " ".join(
        ["python -m benchmarks.executor_memberships", *(argv if argv is not None else sys.argv[1:])]
    )
    print(f"\nreproduce (from {ROOT}): .venv/bin/{command.strip()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
