"""Benchmark `ims-sync plan` on generated OneRoster rosters against a snapshot with 1 % changed.

For each size (default 10^4, 10^5, 10^6 people) it writes a seeded users.csv, seeds a state directory
through the project's own code (`read_roster`, then `StateStore.seed(PERSON, ...)`) with the same people,
1 % changed (0.8 % updated fields, 0.1 % missing → creates, 0.1 % extra → deletion candidates), then
times, each in its own process:

- `ims-sync plan users.csv -m oneroster-users --state S --format json -o plan.json` (process start to
  report written): wall time, CPU time, peak RSS; with the snapshot's Arrow cache (as after a run) and
  without it (the cache deleted first: the snapshot is read from SQLite and the cache rewritten);
- pandas' default C reader, `pd.read_csv(users.csv)`, and `pd.read_csv(users.csv, engine="pyarrow")`:
  the read alone (timed inside the process) and the whole process (import included), peak RSS.

Run it from the repository root:

    .venv/bin/python -m benchmarks.plan                 # 10^4, 10^5, 10^6; 3 repeats, best kept
    .venv/bin/python -m benchmarks.plan --sizes 1000000 --repeats 5 --workdir /tmp/bench-plan --keep
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa  # type: ignore[import-untyped]  # pyarrow ships no type information
import pyarrow.compute as pc  # type: ignore[import-untyped]
import pyarrow.csv as pa_csv  # type: ignore[import-untyped]

from benchmarks._measure import ROOT, Measured, machine, run_measured
from sync.state.cache import CACHE_NAME

MAPPING = "oneroster-users"
HEADER = [
    "sourcedId",
    "status",
    "dateLastModified",
    "enabledUser",
    "orgSourcedIds",
    "role",
    "username",
    "userIds",
    "givenName",
    "familyName",
    "middleName",
    "identifier",
    "email",
    "sms",
    "phone",
    "agentSourcedIds",
    "grades",
    "password",
]
GIVEN = np.array(
    [
        "Emma",
        "Noah",
        "Olivia",
        "Lucas",
        "Nora",
        "Oliver",
        "Ella",
        "William",
        "Sofie",
        "Jakob",
        "Leah",
        "Emil",
        "Frida",
        "Filip",
        "Ingrid",
        "Aksel",
        "Maja",
        "Henrik",
        "Sara",
        "Theodor",
        "Astrid",
        "Johannes",
        "Selma",
        "Mathias",
        "Tiril",
        "Elias",
        "Hedda",
        "Isak",
        "Ida",
        "Magnus",
    ]
)
FAMILY = np.array(
    [
        "Hansen",
        "Johansen",
        "Olsen",
        "Larsen",
        "Andersen",
        "Pedersen",
        "Nilsen",
        "Kristiansen",
        "Jensen",
        "Karlsen",
        "Johnsen",
        "Pettersen",
        "Eriksen",
        "Berg",
        "Haugen",
        "Hagen",
        "Johannessen",
        "Andreassen",
        "Jacobsen",
        "Dahl",
        "Jørgensen",
        "Halvorsen",
        "Henriksen",
        "Lund",
        "Sørensen",
        "Moen",
        "Iversen",
        "Strand",
        "Solberg",
        "Kristoffersen",
    ]
)
ROLES = np.array(["student"] * 17 + ["teacher", "teacher", "parent"])

PANDAS_SNIPPET = (
    "import sys, time, pandas as pd\n"
    "t = time.perf_counter()\n"
    "frame = pd.read_csv(sys.argv[1]{engine})\n"
    "print(time.perf_counter() - t, len(frame))\n"
)


def generate(path: Path, n: int, seed: int) -> None:
    """Write a OneRoster users.csv of `n` people (column-wise with Arrow: seconds for 10^6)."""
    rng = np.random.default_rng(seed)
    ids = np.arange(n)
    given = pa.array(GIVEN[rng.integers(0, len(GIVEN), n)])
    family = pa.array(FAMILY[rng.integers(0, len(FAMILY), n)])
    number = pa.array(np.char.mod("%07d", ids + 1))

    def join(*parts: object) -> object:
        return pc.binary_join_element_wise(*parts, "")

    username = join(pc.utf8_lower(given), ".", pc.utf8_lower(family), number)
    sms = np.where(rng.random(n) < 0.5, np.char.add("+479", np.char.mod("%07d", ids % 10_000_000)), "")
    columns = {
        "sourcedId": join("usr-", number),
        "status": pa.array(np.full(n, "active")),
        "dateLastModified": pa.array(np.full(n, "2024-08-01T06:00:00Z")),
        "enabledUser": pa.array(np.full(n, "true")),
        "orgSourcedIds": pa.array(np.char.add("org-", (ids % 97).astype(str))),
        "role": pa.array(ROLES[rng.integers(0, len(ROLES), n)]),
        "username": username,
        "userIds": pa.array(np.full(n, "")),
        "givenName": given,
        "familyName": family,
        "middleName": pa.array(np.full(n, "")),
        "identifier": pa.array((ids + 20_000).astype(str)),
        "email": join(username, "@s", pa.array((ids % 97).astype(str)), ".no"),
        "sms": pa.array(sms),
        "phone": pa.array(np.full(n, "")),
        "agentSourcedIds": pa.array(np.full(n, "")),
        "grades": pa.array((ids % 10 + 1).astype(str)),
        "password": join("Start-", number, "!"),
    }
    table = pa.table({name: columns[name] for name in HEADER})
    pa_csv.write_csv(table, path, write_options=pa_csv.WriteOptions(quoting_style="needed"))


def seed_snapshot(csv_path: Path, state: Path, seed: int) -> tuple[int, int, int]:
    """Seed `state` with the roster's people, 1 % changed; return (updates, creates, deletions) planted."""
    import pandas as pd

    from sync.models.kinds import PERSON
    from sync.read.mapping import load_mapping
    from sync.read.roster import read_roster
    from sync.state.store import StateStore

    frame = read_roster(csv_path, load_mapping(MAPPING)).frame.drop(columns=["password", "row", "delete"])
    n = len(frame)
    rng = np.random.default_rng(seed + 1)
    picked = rng.permutation(n)
    n_update, n_create, n_delete = round(n * 0.008), round(n * 0.001), round(n * 0.001)
    updated = picked[:n_update]
    dropped = picked[n_update : n_update + n_create]
    family = frame["family_name"].to_numpy(dtype=object, copy=True)
    family[updated] = [f"{name}-Old" for name in family[updated]]
    frame["family_name"] = pd.array(family, dtype="str")
    keep = np.ones(n, dtype=bool)
    keep[dropped] = False
    extra_keys = [f"gone-{i:07d}" for i in range(n_delete)]
    extra = pd.DataFrame(
        {name: [f"gone.{i}" if name in ("identity", "username") else "x" for i in range(n_delete)]
         for name in frame.columns},
        index=pd.Index(extra_keys, name="sync_key"),
    )  # fmt: skip
    with StateStore.open(state) as store:
        store.seed(PERSON, pd.concat([frame.loc[keep], extra]))
    return n_update, n_create, n_delete


@dataclass(frozen=True, slots=True, kw_only=True)
class Row:
    """The figures of one roster size."""

    n: int
    csv_mb: float
    plan: Measured
    plan_cold: Measured
    plan_summary: dict[str, int]
    pandas_c: Measured
    pandas_c_read_s: float
    pandas_arrow: Measured
    pandas_arrow_read_s: float


def best(runs: list[Measured]) -> Measured:
    """The fastest of several runs (the least disturbed by other work on the machine)."""
    for run in runs:
        if run.returncode not in (0, 1):  # plan exits 1 when rows are rejected: still a plan
            raise SystemExit(f"a measured command failed ({run.returncode}):\n{run.stderr[-2000:]}")
    return min(runs, key=lambda run: run.wall_s)


def plan_argv(csv_path: Path, state: Path, out: Path) -> list[str]:
    """The measured command."""
    return [
        str(Path(sys.executable).parent / "ims-sync"),
        "plan", str(csv_path), "-m", MAPPING, "--state", str(state), "--format", "json", "-o", str(out),
    ]  # fmt: skip


def measure(n: int, workdir: Path, seed: int, repeats: int) -> Row:
    """Generate (or reuse) the data for `n` people and measure plan and pandas on it."""
    folder = workdir / f"n{n}-seed{seed}"
    csv_path, state, marker = folder / "users.csv", folder / "state", folder / "ready"
    if not marker.exists():
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        started = time.perf_counter()
        generate(csv_path, n, seed)
        generated = time.perf_counter() - started
        planted = seed_snapshot(csv_path, state, seed)
        seeded = time.perf_counter() - started - generated
        print(
            f"  n={n:,}: generated in {generated:.1f} s, seeded {planted} (update, create, delete) "
            f"in {seeded:.1f} s",
            file=sys.stderr,
        )
        marker.write_text("ok\n")
    out = folder / "plan.json"
    cold = []
    for _ in range(repeats):
        # Without the snapshot's Arrow cache: the first plan after the snapshot changed outside a run.
        (state / CACHE_NAME).unlink(missing_ok=True)
        cold.append(run_measured(plan_argv(csv_path, state, out)))
    plans = [run_measured(plan_argv(csv_path, state, out)) for _ in range(repeats)]
    summary = json.loads(out.read_text(encoding="utf-8"))["summary"]

    def pandas(engine: str) -> tuple[Measured, float]:
        snippet = PANDAS_SNIPPET.format(engine=f", engine={engine!r}" if engine else "")
        runs = [run_measured([sys.executable, "-c", snippet, str(csv_path)]) for _ in range(repeats)]
        fastest = best(runs)
        return fastest, min(float(run.stdout.split()[0]) for run in runs)

    pandas_c, pandas_c_read = pandas("")
    pandas_arrow, pandas_arrow_read = pandas("pyarrow")
    return Row(
        n=n,
        csv_mb=csv_path.stat().st_size / 1e6,
        plan=best(plans),
        plan_cold=best(cold),
        plan_summary={str(k): int(v) for k, v in summary.items()},
        pandas_c=pandas_c,
        pandas_c_read_s=pandas_c_read,
        pandas_arrow=pandas_arrow,
        pandas_arrow_read_s=pandas_arrow_read,
    )


def table(rows: list[Row]) -> str:
    """The figures as a Markdown table."""
    lines = [
        "| people | CSV MB | plan wall s | plan CPU s | plan peak RSS MB | plan without cache s (MB) "
        "| pandas C read s (process s, MB) "
        "| pandas pyarrow read s (process s, MB) | plan ÷ pandas C read | plan: update/create/delete |",
        "| ---: | ---: | ---: | ---: | ---: | --- | --- | --- | ---: | --- |",
    ]
    for row in rows:
        s = row.plan_summary
        lines.append(
            f"| {row.n:,} | {row.csv_mb:.0f} | {row.plan.wall_s:.2f} | {row.plan.cpu_s:.2f} "
            f"| {row.plan.peak_rss_mb:.0f} | {row.plan_cold.wall_s:.2f} ({row.plan_cold.peak_rss_mb:.0f}) "
            f"| {row.pandas_c_read_s:.2f} ({row.pandas_c.wall_s:.2f}, {row.pandas_c.peak_rss_mb:.0f}) "
            f"| {row.pandas_arrow_read_s:.2f} ({row.pandas_arrow.wall_s:.2f}, "
            f"{row.pandas_arrow.peak_rss_mb:.0f}) "
            f"| {row.plan.wall_s / row.pandas_c_read_s:.2f}x "
            f"| {s.get('update', 0)}/{s.get('create', 0)}/{s.get('delete', 0)} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Parse the options, run the sizes, print the table and the command to reproduce it."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000,1000000", help="comma-separated roster sizes")
    parser.add_argument("--seed", type=int, default=20240801)
    parser.add_argument("--repeats", type=int, default=3, help="runs per command; the fastest is kept")
    parser.add_argument("--workdir", type=Path, default=None, help="data directory (reused when present)")
    parser.add_argument("--keep", action="store_true", help="keep a temporary workdir")
    args = parser.parse_args(argv)
    sizes = [int(size) for size in args.sizes.split(",")]
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="ims-bench-plan-"))
    print(f"machine: {machine()}", file=sys.stderr)
    print(f"data in {workdir}", file=sys.stderr)
    try:
        rows = []
        for n in sizes:
            rows.append(measure(n, workdir, args.seed, args.repeats))
            print(table(rows[-1:]).splitlines()[-1], file=sys.stderr)
    finally:
        if args.workdir is None and not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"machine: {machine()}")
    print(table(rows))
    command = " ".join(["python -m benchmarks.plan", *(argv if argv is not None else sys.argv[1:])])
    print(f"\nreproduce (from {ROOT}): .venv/bin/{command.strip()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
