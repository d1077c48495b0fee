"""Benchmark issue 16's targets, each beside pandas in the same run: the nights with many operations.

Measurements (`--only`, comma-separated; default all four), each command in its own process:

- `first`: the first night (an empty state directory: every person a create),
  `ims-sync plan users.csv -m oneroster-users --state EMPTY --format F -o OUT` for every `--formats` at
  every `--sizes` (users.csv as `benchmarks.plan.generate` writes it): wall, CPU, peak RSS, and the
  seconds from process start to the report written (the report's modification time);
- `night`: the ordinary 1 % night (the state seeded by `benchmarks.plan.seed_snapshot`) without the
  snapshot's Arrow cache (deleted before each run: the snapshot is read from SQLite), `--format json`;
- `folder`: the OneRoster folder plan (`benchmarks.plan_set`'s folder and seeding: `--folder-persons`
  persons, a school membership and 3 enrolments each), first night and 1 % night, `--format json`;
- `run`: `ims-sync run` of the first night against the emulator (its own process, `--latency-ms`,
  started as `benchmarks.executor` starts it): seconds from process start to the first request sent
  (from the run's JSON log: the earliest `ims_request` event's time less its `duration_ms`) and the
  run's peak RSS. The run is stopped with SIGTERM `--run-seconds` after it started (later if it has not
  sent anything yet, at most `--run-timeout`): this is about the start, not the night.

Beside each: `pandas.read_csv(path, dtype=str)` of the same CSV files as a whole process (import
included), and the ratio of the wall times. The table at the end says whether each of the issue's
targets holds where the issue states one; a time target is judged on the whole process's wall time
(start to exit, a little more than start to report written), 1 GB is 1024 MB.

Run it from the repository root:

    .venv/bin/python -m benchmarks.first_night                # 2 x 10^5 and 10^6; 3 repeats, best kept
    .venv/bin/python -m benchmarks.first_night --sizes 200000 --only first,night --workdir /tmp/fn-bench
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from benchmarks._measure import ROOT, Launched, Measured, launch, machine, run_measured, start_emulator
from benchmarks.executor import CREDENTIALS, IMS_SYNC
from benchmarks.plan import MAPPING, best, generate, seed_snapshot
from benchmarks.plan_set import MAPPING as FOLDER_MAPPING
from benchmarks.plan_set import _lines, generate_set, seed_set
from sync.state.cache import CACHE_NAME

MEASUREMENTS = ("first", "night", "folder", "run")
FORMATS = ("json", "csv", "md", "html")
MILLION = 1_000_000
GB = 1024.0  # MB
QUIET = ("nchanged", "napshot")  # summary counts left out of the notes
PANDAS_SNIPPET = "import sys, pandas as pd\nfor path in sys.argv[1:]:\n    pd.read_csv(path, dtype=str)\n"


@dataclass(frozen=True, slots=True, kw_only=True)
class Row:
    """One measured command beside pandas, and the issue's target for it (if it states one)."""

    what: str
    people: int
    fmt: str
    measured: Measured
    #: Seconds from process start to the report written, or (a run) to the first request sent.
    reached_s: float | None
    pandas: Measured
    target: str = "—"
    holds: bool | None = None
    note: str = ""
    #: A run stopped after its start: its time is that to the first request, not the process's.
    start_only: bool = False

    @property
    def seconds(self) -> float | None:
        """The time set beside pandas'."""
        return self.reached_s if self.start_only else self.measured.wall_s


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """What to measure and how often."""

    workdir: Path
    seed: int
    repeats: int
    latency_ms: float
    run_seconds: float
    run_timeout: float


def _fresh(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def _plan(source: Path, mapping: str, state: Path, fmt: str, out: Path) -> list[str]:
    return [
        IMS_SYNC, "plan", str(source), "-m", mapping, "--state", str(state), "--format", fmt, "-o", str(out),
    ]  # fmt: skip


def _best_plan(argv_for: Callable[[], list[str]], out: Path, repeats: int) -> tuple[Measured, float]:
    """The fastest of `repeats` runs (`argv_for` prepares each), and its seconds to the report written."""
    runs: list[tuple[Measured, float]] = []
    for _ in range(repeats):
        argv = argv_for()
        out.unlink(missing_ok=True)
        measured = run_measured(argv)
        written = out.stat().st_mtime - measured.started_at if out.exists() else float("nan")
        runs.append((measured, written))
    fastest = best([measured for measured, _ in runs])
    return fastest, next(written for measured, written in runs if measured is fastest)


class Bench:
    """The data (generated once per size, reused from `--workdir`) and the measurements on it."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._pandas: dict[tuple[Path, ...], Measured] = {}

    def roster(self, n: int) -> Path:
        """users.csv of `n` people."""
        folder = self.settings.workdir / f"n{n}-seed{self.settings.seed}"
        path = folder / "users.csv"
        if not (folder / "ready").exists():
            _fresh(folder)
            started = time.perf_counter()
            generate(path, n, self.settings.seed)
            print(f"  n={n:,}: generated in {time.perf_counter() - started:.1f} s", file=sys.stderr)
            (folder / "ready").write_text("ok\n")
        return path

    def pandas(self, *paths: Path) -> Measured:
        """`pandas.read_csv(path, dtype=str)` of every path, as a whole process (measured once per run)."""
        if paths not in self._pandas:
            argv = [sys.executable, "-c", PANDAS_SNIPPET, *map(str, paths)]
            self._pandas[paths] = best([run_measured(argv) for _ in range(self.settings.repeats)])
        return self._pandas[paths]

    def first(self, n: int, fmt: str) -> Row:
        """The first night's plan in one format."""
        users = self.roster(n)
        state, out = users.parent / "empty-state", users.parent / f"first.{fmt}"
        measured, written = _best_plan(
            lambda: _plan(users, MAPPING, _fresh(state), fmt, out), out, self.settings.repeats
        )
        pandas = self.pandas(users)
        if n == MILLION:
            target = "≤ 3 s, ≤ 1 GB"
            holds: bool | None = measured.wall_s <= 3 and measured.peak_rss_mb <= GB
        elif n == 200_000:
            target, holds = "≤ 2x pandas", measured.wall_s <= 2 * pandas.wall_s
        else:
            target, holds = "—", None
        return Row(
            what="first night", people=n, fmt=fmt, measured=measured, reached_s=written, pandas=pandas,
            target=target, holds=holds,
        )  # fmt: skip

    def night(self, n: int) -> Row:
        """The 1 % night without the Arrow cache."""
        users = self.roster(n)
        state, out = users.parent / "state-1pct", users.parent / "night.json"
        if not (users.parent / "seeded").exists():
            _fresh(state)
            planted = seed_snapshot(users, state, self.settings.seed)
            print(f"  n={n:,}: seeded (update, create, delete) {planted}", file=sys.stderr)
            (users.parent / "seeded").write_text("ok\n")

        def argv() -> list[str]:
            (state / CACHE_NAME).unlink(missing_ok=True)
            return _plan(users, MAPPING, state, "json", out)

        measured, written = _best_plan(argv, out, self.settings.repeats)
        pandas = self.pandas(users)
        holds = measured.wall_s <= 3 and measured.peak_rss_mb <= GB if n == MILLION else None
        return Row(
            what="1 % night, no Arrow cache", people=n, fmt="json", measured=measured, reached_s=written,
            pandas=pandas, target="≤ 3 s, ≤ 1 GB" if n == MILLION else "—", holds=holds,
        )  # fmt: skip

    def folder(self, n: int) -> list[Row]:
        """The OneRoster folder plan, first night and 1 % night (the Arrow cache as a run leaves it)."""
        base = self.settings.workdir / f"set-n{n}-seed{self.settings.seed}"
        roster, state = base / "roster", base / "state"
        if not (base / "ready").exists():
            _fresh(base)
            generate_set(roster, n, self.settings.seed)
            planted = seed_set(roster, state, self.settings.seed)
            print(f"  folder n={n:,}: planted (update, create, rename, delete) {planted}", file=sys.stderr)
            (base / "ready").write_text("ok\n")
        pandas = self.pandas(*sorted(roster.glob("*.csv")))
        enrolments = _lines(roster / "enrollments.csv")
        out = base / "plan.json"

        def measured(what: str, state_for: Callable[[], Path]) -> Row:
            best_run, written = _best_plan(
                lambda: _plan(roster, FOLDER_MAPPING, state_for(), "json", out), out, self.settings.repeats
            )
            summary = json.loads(out.read_text(encoding="utf-8"))["summary"]
            plan = ", ".join(
                f"{key} {value:,}" for key, value in summary.items() if value and not key.endswith(QUIET)
            )
            return Row(
                what=what, people=n, fmt="json", measured=best_run, reached_s=written, pandas=pandas,
                target="≤ 2 s" if n == 100_000 else "—",
                holds=best_run.wall_s <= 2 if n == 100_000 else None,
                note=f"{enrolments:,} enrolments; plan: {plan}",
            )  # fmt: skip

        return [
            measured("folder first night", lambda: _fresh(base / "empty-state")),
            measured("folder 1 % night", lambda: state),
        ]

    def run(self, n: int) -> Row:
        """`ims-sync run` of the first night against the emulator, stopped after its start."""
        users = self.roster(n)
        folder = users.parent
        env = {**os.environ, **CREDENTIALS}
        runs: list[tuple[Measured, RunLog]] = []
        for _ in range(self.settings.repeats):
            log = folder / "run-log.jsonl"
            log.unlink(missing_ok=True)
            emulator = start_emulator(folder / "certs", env, "--latency-ms", str(self.settings.latency_ms))
            try:
                argv = [
                    IMS_SYNC, "--log-format", "json", "--log-file", str(log),
                    "run", str(users), "-m", MAPPING, "--state", str(_fresh(folder / "run-state")),
                    "--endpoint", emulator.url, "--ca-bundle", str(emulator.ca_bundle),
                ]  # fmt: skip
                measured = self._stop_after_start(launch(argv, env=env), log)
            finally:
                emulator.stop()
            runs.append((measured, RunLog.read(log)))
        for measured, _ in runs:
            if measured.returncode not in (0, 1, -signal.SIGTERM, -signal.SIGKILL):
                raise SystemExit(f"ims-sync run failed ({measured.returncode}):\n{measured.stderr[-2000:]}")
        measured, events = min(runs, key=lambda pair: pair[1].first_sent or float("inf"))
        first = None if events.first_sent is None else events.first_sent - measured.started_at
        planned = None if events.run_start is None else events.run_start - measured.started_at
        holds = None
        if n == MILLION:
            holds = first is not None and first <= 5 and measured.peak_rss_mb <= 1.5 * GB
        return Row(
            what="run, first night", people=n, fmt="—", measured=measured, reached_s=first,
            pandas=self.pandas(users), target="first request ≤ 5 s, ≤ 1.5 GB" if n == MILLION else "—",
            holds=holds, start_only=True,
            note=f"run_start at {_seconds(planned)} s; first request {events.first_operation or 'none'}; "
            f"{events.confirmed:,} confirmed before the stop; exit {measured.returncode}",
        )  # fmt: skip

    def _stop_after_start(self, running: Launched, log: Path) -> Measured:
        """Let the run go `--run-seconds` (longer until it has sent a request), then SIGTERM it."""
        settings = self.settings
        while running.process.poll() is None:
            started = running.started()
            elapsed = time.time() - started[1] if started else 0.0
            if elapsed >= settings.run_timeout or (elapsed >= settings.run_seconds and _has_sent(log)):
                break
            time.sleep(0.5)
        # First SIGTERM: requests in flight finish, the rest is skipped. A second one aborts.
        for signum, grace in ((signal.SIGTERM, 120.0), (signal.SIGTERM, 30.0), (signal.SIGKILL, None)):
            running.send_signal(signum)
            try:
                return running.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                continue
        raise AssertionError("unreachable: SIGKILL then wait without a timeout")


def _has_sent(log: Path) -> bool:
    return log.exists() and b'"ims_request"' in log.read_bytes()


def _seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


@dataclass(frozen=True, slots=True)
class RunLog:
    """What a run's JSON log says about its start: wall-clock times (`time.time()` scale)."""

    first_sent: float | None
    first_operation: str
    run_start: float | None
    confirmed: int

    @classmethod
    def read(cls, log: Path) -> RunLog:
        """Read the events; a request's sending time is its event's time (the answer) less its duration."""
        first_sent: float | None = None
        first_operation, run_start, confirmed = "", None, 0
        lines = log.read_text(encoding="utf-8").splitlines() if log.exists() else []
        for line in lines:
            try:
                event = json.loads(line)
                at = datetime.fromisoformat(event["timestamp"]).timestamp()
            except (ValueError, KeyError):
                continue  # a line cut short by the stop
            if event.get("event") == "run_start":
                run_start = at
            if event.get("event") != "ims_request":
                continue
            confirmed += event.get("outcome") == "confirmed"
            sent = at - float(event.get("duration_ms") or 0.0) / 1000
            if first_sent is None or sent < first_sent:
                first_sent, first_operation = sent, str(event.get("operation", ""))
        return cls(first_sent, first_operation, run_start, confirmed)


def table(rows: Sequence[Row]) -> str:
    """The figures as a Markdown table, each beside pandas and the issue's target."""
    lines = [
        "| measurement | people | format | wall s | CPU s | peak RSS MB "
        "| start → report (run: first request) s | pandas process s (MB) | ÷ pandas (run: first request) "
        "| target | holds | note |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: | --- | ---: | --- | --- | --- |",
    ]
    for row in rows:
        m, p = row.measured, row.pandas
        holds = "—" if row.holds is None else ("yes" if row.holds else "**no**")
        lines.append(
            f"| {row.what} | {row.people:,} | {row.fmt} | {m.wall_s:.2f} | {m.cpu_s:.2f} "
            f"| {m.peak_rss_mb:.0f} | {_seconds(row.reached_s)} | {p.wall_s:.2f} ({p.peak_rss_mb:.0f}) "
            f"| {'—' if row.seconds is None else f'{row.seconds / p.wall_s:.1f}x'} "
            f"| {row.target} | {holds} | {row.note} |"
        )
    return "\n".join(lines)


def _load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f}, {five:.2f}, {fifteen:.2f}"


def main(argv: list[str] | None = None) -> int:
    """Parse the options, run the measurements, print the table and the command to reproduce it."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--sizes", default="200000,1000000", help="comma-separated roster sizes (people)")
    parser.add_argument("--formats", default=",".join(FORMATS), help="first night: comma-separated formats")
    parser.add_argument("--only", default=",".join(MEASUREMENTS), help="among " + ", ".join(MEASUREMENTS))
    parser.add_argument("--folder-persons", type=int, default=100_000, help="persons in the folder plan")
    parser.add_argument("--seed", type=int, default=20240801)
    parser.add_argument("--repeats", type=int, default=3, help="runs per command; the fastest is kept")
    parser.add_argument("--latency-ms", type=float, default=100.0, help="the emulator's (run)")
    parser.add_argument("--run-seconds", type=float, default=60.0, help="stop the run this long after start")
    parser.add_argument(
        "--run-timeout", type=float, default=600.0, help="stop it then even if it sent nothing"
    )
    parser.add_argument("--workdir", type=Path, default=None, help="data directory (reused when present)")
    parser.add_argument("--keep", action="store_true", help="keep a temporary workdir")
    args = parser.parse_args(argv)
    sizes = [int(size) for size in args.sizes.split(",")]
    formats = args.formats.split(",")
    only = args.only.split(",")
    for name, chosen, allowed in (("--formats", formats, FORMATS), ("--only", only, MEASUREMENTS)):
        if unknown := set(chosen) - set(allowed):
            parser.error(f"{name}: unknown {', '.join(sorted(unknown))}")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="ims-bench-first-night-"))
    settings = Settings(
        workdir=workdir, seed=args.seed, repeats=args.repeats, latency_ms=args.latency_ms,
        run_seconds=args.run_seconds, run_timeout=args.run_timeout,
    )  # fmt: skip
    bench = Bench(settings)
    load_before = _load()
    print(f"machine: {machine()}; load average {load_before}", file=sys.stderr)
    print(f"data in {workdir}", file=sys.stderr)
    rows: list[Row] = []

    def add(*new: Row) -> None:
        rows.extend(new)
        for line in table(new).splitlines()[2:]:
            print(line, file=sys.stderr)

    try:
        for n in sizes:
            if "first" in only:
                for fmt in formats:
                    add(bench.first(n, fmt))
            if "night" in only:
                add(bench.night(n))
            if "run" in only:
                add(bench.run(n))
        if "folder" in only:
            add(*bench.folder(args.folder_persons))
    finally:
        if args.workdir is None and not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"machine: {machine()}")
    print(f"load average (1, 5, 15 min): {load_before} before, {_load()} after")
    print(table(rows))
    command = " ".join(["python -m benchmarks.first_night", *(argv if argv is not None else sys.argv[1:])])
    print(f"\nreproduce (from {ROOT}): .venv/bin/{command.strip()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
