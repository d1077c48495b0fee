"""Benchmark `ims-sync verify` against the emulator (own process, `--latency-ms 100`): objects read per
second, for a whole check and for `--sample`.

For each size it generates a OneRoster users.csv of `n` people, seeds the engine's snapshot with them
(`StateStore.seed`) and the emulator's state file with the same people (as a run would have left both,
without paying for the run), starts `ims-sync emulator --state FILE --latency-ms 100`, and runs the real
`ims-sync verify` as a child process for each configuration: in-flight budget x persons per readPersons
(and per readAllPersons page), whole or `--sample N`. Every run must find no drift (exit 0).

Reported: wall seconds (start-up, reading the roster and loading the snapshot included), requests (from
the journal), persons checked per second, the client's CPU and peak RSS.

    .venv/bin/python -m benchmarks.verify                                   # 2,000 and 10,000 people
    .venv/bin/python -m benchmarks.verify --sizes 100000 --configs 10x10:1000,50x50
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from benchmarks._measure import ROOT, Measured, machine, run_measured, start_emulator
from benchmarks.plan import generate

IMS_SYNC = str(Path(sys.executable).parent / "ims-sync")
# A benchmark-only credential for the local emulator; never a real site's.
CREDENTIALS = {"IMS_ES_USERNAME": "benchmark", "IMS_ES_PASSWORD": "benchmark-only-secret"}


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    """One way to run verify: objects in flight, persons per request, and a sample size (None: all)."""

    in_flight: int
    batch: int
    sample: int | None

    @classmethod
    def parse(cls, text: str) -> Config:
        """`10x10` (whole check) or `10x10:1000` (a sample of 1000)."""
        budget, _, sample = text.partition(":")
        in_flight, _, batch = budget.partition("x")
        return cls(in_flight=int(in_flight), batch=int(batch), sample=int(sample) if sample else None)

    def argv(self) -> list[str]:
        sample = ["--sample", str(self.sample), "--seed", "1"] if self.sample else []
        return ["--max-in-flight", str(self.in_flight), "--batch-size", str(self.batch), *sample]


@dataclass(frozen=True, slots=True, kw_only=True)
class Row:
    """One measured verify."""

    people: int
    config: Config
    checked: int
    requests: int
    run: Measured


def seed(folder: Path, people: int, rng_seed: int) -> tuple[Path, Path, Path]:
    """The roster, the engine's state directory and the emulator's state file, all holding `people`."""
    from sync.emulator.store import Store
    from sync.models import PERSON_FIELDS, Person
    from sync.models.kinds import PERSON
    from sync.read.roster_set import read_roster_set
    from sync.state.store import StateStore

    roster, state, emulator_state = folder / "users.csv", folder / "state", folder / "emulator.sqlite3"
    generate(roster, people, rng_seed)
    frame = read_roster_set(roster, "oneroster-users").persons.frame
    with StateStore.open(state) as store:
        store.seed(PERSON, frame)
    emulator = Store(emulator_state)
    with emulator.transaction():
        for key, *values in frame[list(PERSON_FIELDS)].itertuples():
            emulator.put(Person(sync_key=str(key), **dict(zip(PERSON_FIELDS, map(str, values), strict=True))))
    emulator.close()
    return roster, state, emulator_state


def requests_of(state: Path) -> int:
    """The requests the last verify journalled."""
    with sqlite3.connect(state / "state.sqlite3") as db:
        (count,) = db.execute(
            "SELECT COUNT(*) FROM requests WHERE run_id = (SELECT MAX(run_id) FROM runs)"
        ).fetchone()
    return int(count)


def table(rows: list[Row], latency_ms: float) -> str:
    """The figures as a Markdown table."""
    lines = [
        "| people | in flight x per request | checked | requests | wall s | checked/s | client CPU s "
        "| peak RSS MB |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        what = f"{row.config.in_flight} x {row.config.batch}" + (
            f", sample {row.config.sample}" if row.config.sample else ""
        )
        lines.append(
            f"| {row.people:,} | {what} | {row.checked:,} | {row.requests:,} | {row.run.wall_s:.1f} "
            f"| {row.checked / row.run.wall_s:.0f} | {row.run.cpu_s:.1f} | {row.run.peak_rss_mb:.0f} |"
        )
    return "\n".join([*lines, f"(emulator latency {latency_ms:g} ms per request, own process)"])


def main(argv: list[str] | None = None) -> int:
    """Seed, start the emulator, run every configuration, print the table and the command to reproduce."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--sizes", default="2000,10000", help="people")
    parser.add_argument(
        "--configs", default="10x10,10x10:1000", help="IN_FLIGHTxBATCH[:SAMPLE], comma-separated"
    )
    parser.add_argument("--latency-ms", type=float, default=100.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args(argv)
    configs = [Config.parse(text) for text in args.configs.split(",")]
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="ims-bench-verify-"))
    env = {**os.environ, **CREDENTIALS}
    print(f"machine: {machine()}", file=sys.stderr)
    rows: list[Row] = []
    try:
        for people in (int(size) for size in args.sizes.split(",")):
            folder = workdir / f"n{people}"
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
            roster, state, emulator_state = seed(folder, people, args.seed)
            emulator = start_emulator(
                folder / "certs", env, "--state", str(emulator_state), "--latency-ms", str(args.latency_ms)
            )
            try:
                for config in configs:
                    out = folder / "drift.json"
                    run = run_measured(
                        [IMS_SYNC, "verify", str(roster), "-m", "oneroster-users", "--state", str(state),
                         "--endpoint", emulator.url, "--ca-bundle", str(emulator.ca_bundle),
                         *config.argv(), "--format", "json", "-o", str(out)],
                        env=env,
                    )  # fmt: skip
                    if run.returncode != 0:
                        raise SystemExit(f"ims-sync verify exited {run.returncode}:\n{run.stderr[-3000:]}")
                    checked = sum(json.loads(out.read_text(encoding="utf-8"))["meta"]["checked"].values())
                    row = Row(
                        people=people, config=config, checked=checked, requests=requests_of(state), run=run
                    )
                    rows.append(row)
                    print(table([row], args.latency_ms).splitlines()[2], file=sys.stderr)
            finally:
                emulator.stop()
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"machine: {machine()}")
    print(table(rows, args.latency_ms))
    command = " ".join(["python -m benchmarks.verify", *(argv if argv is not None else sys.argv[1:])])
    print(f"\nreproduce (from {ROOT}): .venv/bin/{command.strip()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
