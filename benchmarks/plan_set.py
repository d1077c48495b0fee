"""Benchmark `ims-sync plan` on generated OneRoster folders: persons, groups and memberships.

For each size N (default 10^4 and 10^5 persons; 10^6 with `--sizes` or `--million`) it writes a seeded
OneRoster folder, `users.csv` as `benchmarks.plan` writes it (N persons), `orgs.csv` (one district and
N/500 schools; each person in one of them through users.csv `orgSourcedIds`: N school memberships),
`classes.csv` (N/25 classes, spread over the schools) and `enrollments.csv` (3 classes per person: 3N
enrolments, a teacher's as teacher, everyone else's as student). It then seeds a state
directory through the project's own code (`read_roster_set(folder, "oneroster")`, then
`StateStore.seed` of each kind) with the same records, about 1 % of each
kind changed:

- persons: 0.8 % another family name (updates), 0.05 % missing (creates), 0.05 % under another
  sync key with the same username (identifier changes, whose memberships the snapshot holds under the
  old key), 0.1 % extra (deletion candidates);
- groups: 0.8 % another name, 0.1 % missing, 0.1 % extra (at least one of each);
- memberships: 0.8 % another role, 0.1 % missing, 0.1 % extra (at least one of each); memberships of
  persons or groups missing from the snapshot are missing too (creates).

Then, each in its own process:

- `ims-sync plan FOLDER -m oneroster --state S --format json -o plan.json` (process start to report
  written): wall time, CPU time, peak RSS, best of `--repeats`;
- the same command inside `benchmarks._stages`, which times each stage (read persons, groups,
  memberships; snapshot loads; links; diff; report) in that process;
- with `--profile`, the same command under cProfile: the functions with the most own time.

Run it from the repository root:

    .venv/bin/python -m benchmarks.plan_set                      # 10^4 and 10^5 persons
    .venv/bin/python -m benchmarks.plan_set --million --workdir /tmp/bench-set   # adds 10^6; data kept
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
from typing import Any

import numpy as np
import pyarrow as pa  # type: ignore[import-untyped]  # pyarrow ships no type information
import pyarrow.compute as pc  # type: ignore[import-untyped]
import pyarrow.csv as pa_csv  # type: ignore[import-untyped]

from benchmarks._measure import ROOT, Measured, machine, run_measured
from benchmarks.plan import best, generate

MAPPING = "oneroster"
PERSONS_PER_CLASS = 25
PERSONS_PER_SCHOOL = 500
CLASSES_PER_PERSON = 3
STAGES = (
    "imports",
    "read persons",
    "read groups",
    "read memberships",
    "load snapshot persons",
    "load snapshot groups",
    "load snapshot memberships",
    "links (groups)",
    "links (memberships)",
    "diff persons",
    "diff groups",
    "diff: move renamed keys",
    "diff memberships",
    "diff: schools",
    "limits: school sizes",
    "limits: check and hold",
    "report: render",
    "report: write",
    "rest of the command",
    "start-up and exit (outside Python's main)",
)


def _text(values: Any) -> Any:
    return pa.array(values, type=pa.large_string())


def _scalar(text: str) -> Any:
    return pa.scalar(text, type=pa.large_string())


def _numbered(prefix: str, numbers: Any, width: int) -> Any:
    """`prefix` + zero-padded numbers, as an Arrow string column (no Python object per value)."""
    digits = pc.utf8_lpad(pa.array(numbers, type=pa.int64()).cast(pa.large_string()), width, "0")
    return pc.binary_join_element_wise(_scalar(prefix), digits, _scalar(""))


def _write(path: Path, columns: dict[str, Any], n: int) -> None:
    arrays = {name: value if isinstance(value, pa.Array) else _text(np.full(n, value)) for name, value in
              columns.items()}  # fmt: skip
    pa_csv.write_csv(pa.table(arrays), path, write_options=pa_csv.WriteOptions(quoting_style="needed"))


def generate_set(folder: Path, n: int, seed: int) -> None:
    """Write a OneRoster folder of `n` persons, their schools, classes and 3 enrollments each."""
    folder.mkdir(parents=True, exist_ok=True)
    users = folder / "users.csv"
    generate(users, n, seed)
    rng = np.random.default_rng(seed + 2)
    schools = max(1, n // PERSONS_PER_SCHOOL)
    classes = max(CLASSES_PER_PERSON, n // PERSONS_PER_CLASS)
    stamp = "2024-08-01T06:00:00Z"
    school_ids = _numbered("org-s", np.arange(schools), 5)
    # Each person belongs to one school (users.csv orgSourcedIds): one school membership each.
    table = pa_csv.read_csv(users, convert_options=pa_csv.ConvertOptions(strings_can_be_null=False))
    person_school = _numbered("org-s", np.arange(n) % schools, 5)
    table = table.set_column(table.schema.get_field_index("orgSourcedIds"), "orgSourcedIds", person_school)
    pa_csv.write_csv(table, users, write_options=pa_csv.WriteOptions(quoting_style="needed"))
    _write(
        folder / "orgs.csv",
        {
            "sourcedId": pa.concat_arrays([_text(["org-district"]), school_ids]),
            "status": "active",
            "dateLastModified": stamp,
            "name": pa.concat_arrays(
                [_text(["Bergvik kommune"]), _numbered("Skole ", np.arange(schools), 5)]
            ),
            "type": pa.concat_arrays([_text(["district"]), _text(np.full(schools, "school"))]),
            "identifier": _numbered("9745", np.arange(schools + 1), 5),
            "parentSourcedId": pa.concat_arrays([_text([""]), _text(np.full(schools, "org-district"))]),
        },
        schools + 1,
    )
    class_numbers = np.arange(classes)
    _write(
        folder / "classes.csv",
        {
            "sourcedId": _numbered("cls-", class_numbers, 6),
            "status": "active",
            "dateLastModified": stamp,
            "title": _numbered("Klasse ", class_numbers, 6),
            "grades": _text((class_numbers % 10 + 1).astype(str)),
            "courseSourcedId": _numbered("crs-", class_numbers % 200, 3),
            "classCode": _numbered("K", class_numbers, 6),
            "classType": "scheduled",
            "location": "",
            "schoolSourcedId": _numbered("org-s", class_numbers % schools, 5),
            "termSourcedIds": "term-2024h",
            "subjects": "",
            "subjectCodes": "",
            "periods": "",
        },
        classes,
    )
    # Each person in 3 distinct classes: a random first one, then a third of the classes further on.
    person = np.repeat(np.arange(n), CLASSES_PER_PERSON)
    step = np.tile(np.arange(CLASSES_PER_PERSON), n) * max(1, classes // CLASSES_PER_PERSON)
    klass = (rng.integers(0, classes, n)[person] + step) % classes
    roles = pa_csv.read_csv(users, convert_options=pa_csv.ConvertOptions(include_columns=["role"]))
    is_teacher = np.asarray(pc.equal(roles.column("role"), "teacher").to_numpy(zero_copy_only=False))
    m = len(person)
    _write(
        folder / "enrollments.csv",
        {
            "sourcedId": _numbered("enr-", np.arange(m), 8),
            "status": "active",
            "dateLastModified": stamp,
            "classSourcedId": _numbered("cls-", klass, 6),
            "schoolSourcedId": _numbered("org-s", klass % schools, 5),
            "userSourcedId": _numbered("usr-", person + 1, 7),
            "role": _text(np.where(is_teacher[person], "teacher", "student")),
            "primary": "false",
            "beginDate": "2024-08-19",
            "endDate": "2025-06-20",
        },
        m,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Planted:
    """What the seeding changed, per kind: (updates, creates, identifier changes, deletions)."""

    persons: tuple[int, int, int, int]
    groups: tuple[int, int, int, int]
    memberships: tuple[int, int, int, int]


def _count(n: int, fraction: float) -> int:
    return max(1, round(n * fraction)) if fraction and n else 0


def _plant(
    frame: Any, *, rng: np.random.Generator, column: str, changed: Any, fractions: tuple[float, float, float]
) -> tuple[Any, Any, Any, Any]:
    """(rows with `column` changed on a fraction, the updated keys, the rows left out, the left-out keys
    to rename) picked at random; `changed` maps old values to new ones (an array function)."""
    import pandas as pd

    n = len(frame)
    n_update, n_create, n_rename = (_count(n, fraction) for fraction in fractions)
    picked = rng.permutation(n)
    updated = picked[:n_update]
    left_out = picked[n_update : n_update + n_create + n_rename]
    values = frame[column].to_numpy(dtype=object, copy=True)
    values[updated] = changed(values[updated])
    out = frame.copy()
    out[column] = pd.array(values, dtype="str")
    keep = np.ones(n, dtype=bool)
    keep[left_out] = False
    return out.loc[keep], frame.iloc[left_out[:n_create]], frame.iloc[left_out[n_create:]], updated


def seed_set(folder: Path, state: Path, seed: int) -> Planted:
    """Seed `state` from the folder, read through the project's own reader, about 1 % of each kind changed."""
    import pandas as pd

    from sync.models.kinds import GROUP, MEMBERSHIP, PERSON
    from sync.read.roster_set import read_roster_set
    from sync.state.store import StateStore

    roster = read_roster_set(folder, MAPPING)
    assert roster.groups is not None
    assert roster.memberships is not None
    if roster.rejects:
        raise SystemExit(f"the generated folder has {len(roster.rejects)} rejects: {roster.rejects[:3]}")
    rng = np.random.default_rng(seed + 1)

    def suffixed(suffix: str) -> Any:
        return lambda values: [f"{value}{suffix}" for value in values]

    def extra(frame: Any, count: int, prefix: str, values: dict[str, Any]) -> Any:
        keys = pd.Index([f"{prefix}{i:07d}" for i in range(count)], dtype="str", name="sync_key")
        data = {name: [values.get(name, "x") if name != "identity" else f"{prefix}{i}" for i in range(count)]
                for name in frame.columns}  # fmt: skip
        return pd.DataFrame(data, index=keys).astype("str")

    persons = roster.persons.frame.drop(columns=["password", "row", "delete"])
    kept, _created, renamed, _ = _plant(
        persons, rng=rng, column="family_name", changed=suffixed("-Old"), fractions=(0.008, 0.0005, 0.0005)
    )
    old_key = {key: f"old-{key}" for key in renamed.index}
    renamed = renamed.rename(index=old_key)
    n_delete = _count(len(persons), 0.001)
    persons_seeded = pd.concat([kept, renamed, extra(persons, n_delete, "gone-usr-", {})])

    groups = roster.groups.frame.drop(columns=["file", "row", "delete"])
    classes = groups.loc[groups["type"] == "Course"]
    kept_g, created_g, _, _ = _plant(
        groups, rng=rng, column="name", changed=suffixed(" (old name)"), fractions=(0.008, 0.001, 0.0)
    )
    n_delete_g = _count(len(groups), 0.001)
    groups_seeded = pd.concat(
        [kept_g, extra(groups, n_delete_g, "gone-cls-", {"type": "Course", "parent": str(groups.index[1])})]
    )

    memberships = roster.memberships.frame.drop(columns=["file", "row", "delete"])

    def other_role(roles: Any) -> Any:
        return np.where(roles == "Learner", "Instructor", "Learner")

    kept_m, _, _, _ = _plant(
        memberships, rng=rng, column="role", changed=other_role, fractions=(0.008, 0.001, 0.0)
    )
    # As the snapshot holds them: under a renamed person's old key; none for a person or group it lacks.
    kept_m = kept_m.assign(person=kept_m["person"].map(lambda key: old_key.get(key, key)).astype("str"))
    known = kept_m["person"].isin(persons_seeded.index) & kept_m["group"].isin(groups_seeded.index)
    kept_m = kept_m.loc[known.to_numpy()]
    n_delete_m = _count(len(memberships), 0.001)
    member = {
        "group": str(classes.index[0]),
        "person": str(persons.index[0]),
        "role": "Learner",
        "active": "true",
    }
    extra_m = extra(memberships, n_delete_m, "gone-enr-", member)
    extra_m["person"] = pd.array(persons.index[: len(extra_m)].to_numpy(dtype=object), dtype="str")
    with StateStore.open(state) as store:
        store.seed(PERSON, persons_seeded)
        store.seed(GROUP, groups_seeded)
        store.seed(MEMBERSHIP, pd.concat([kept_m, extra_m]))
    n_update_p = _count(len(persons), 0.008)
    return Planted(
        persons=(n_update_p, len(_created), len(renamed), n_delete),
        groups=(_count(len(groups), 0.008), len(created_g), 0, n_delete_g),
        memberships=(_count(len(memberships), 0.008), len(memberships) - len(kept_m), 0, n_delete_m),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Row:
    """The figures of one size."""

    n: int
    groups: int
    memberships: int
    csv_mb: float
    plan: Measured
    summary: dict[str, int]
    stages: dict[str, float]
    stages_run: Measured
    profile: list[dict[str, Any]]


def plan_argv(folder: Path, state: Path, out: Path) -> list[str]:
    """The measured command's arguments (after the program name)."""
    return ["plan", str(folder), "-m", MAPPING, "--state", str(state), "--format", "json", "-o", str(out)]


def _lines(path: Path) -> int:
    with path.open("rb") as handle:
        return sum(block.count(b"\n") for block in iter(lambda: handle.read(1 << 20), b"")) - 1


def measure(n: int, workdir: Path, seed: int, repeats: int, *, profile: bool) -> Row:
    """Generate (or reuse) the folder and state for `n` persons and measure the plan on it."""
    base = workdir / f"set-n{n}-seed{seed}"
    folder, state, marker = base / "roster", base / "state", base / "ready"
    if not marker.exists():
        shutil.rmtree(base, ignore_errors=True)
        base.mkdir(parents=True)
        started = time.perf_counter()
        generate_set(folder, n, seed)
        generated = time.perf_counter() - started
        planted = seed_set(folder, state, seed)
        seeded = time.perf_counter() - started - generated
        print(
            f"  n={n:,}: generated in {generated:.1f} s; seeded in {seeded:.1f} s, planted "
            f"(update, create, rename, delete) {planted}",
            file=sys.stderr,
        )
        marker.write_text("ok\n")
    out = base / "plan.json"
    ims_sync = str(Path(sys.executable).parent / "ims-sync")
    plans = [run_measured([ims_sync, *plan_argv(folder, state, out)]) for _ in range(repeats)]
    summary = json.loads(out.read_text(encoding="utf-8"))["summary"]
    stages_argv = [sys.executable, "-m", "benchmarks._stages", "--", *plan_argv(folder, state, out)]
    staged = [run_measured(stages_argv, cwd=ROOT) for _ in range(repeats)]
    stages_run = best(staged)
    data = json.loads(stages_run.stdout)
    stages = {"imports": data["imports"], **data["stages"]}
    stages["rest of the command"] = data["command"] - sum(data["stages"].values())
    stages["start-up and exit (outside Python's main)"] = (
        stages_run.wall_s - data["imports"] - data["command"]
    )
    rows: list[dict[str, Any]] = []
    if profile:
        profiled = run_measured(
            [sys.executable, "-m", "benchmarks._stages", "--profile", "--", *plan_argv(folder, state, out)],
            cwd=ROOT,
        )
        rows = json.loads(best([profiled]).stdout)["profile"]
    return Row(
        n=n,
        groups=_lines(folder / "orgs.csv") + _lines(folder / "classes.csv"),
        memberships=_lines(folder / "enrollments.csv"),
        csv_mb=sum(path.stat().st_size for path in folder.iterdir()) / 1e6,
        plan=best(plans),
        summary={str(k): int(v) for k, v in summary.items()},
        stages=stages,
        stages_run=stages_run,
        profile=rows,
    )


def table(rows: list[Row]) -> str:
    """The whole-command figures as a Markdown table."""
    lines = [
        "| persons | groups | memberships | CSV MB | plan wall s | plan CPU s | plan peak RSS MB "
        "| plan summary |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for row in rows:
        summary = ", ".join(f"{key} {value:,}" for key, value in row.summary.items() if value)
        lines.append(
            f"| {row.n:,} | {row.groups:,} | {row.memberships:,} | {row.csv_mb:.0f} | {row.plan.wall_s:.2f} "
            f"| {row.plan.cpu_s:.2f} | {row.plan.peak_rss_mb:.0f} | {summary} |"
        )
    return "\n".join(lines)


def stage_table(rows: list[Row]) -> str:
    """Seconds per stage (one process with stage timers), one column per size."""
    head = " | ".join(f"{row.n:,} persons s" for row in rows)
    lines = [f"| stage | {head} |", "| --- |" + " ---: |" * len(rows)]
    for stage in STAGES:
        cells = " | ".join(f"{row.stages.get(stage, 0.0):.3f}" for row in rows)
        lines.append(f"| {stage} | {cells} |")
    walls = " | ".join(f"**{row.stages_run.wall_s:.2f}**" for row in rows)
    rss = " | ".join(f"{row.stages_run.peak_rss_mb:.0f}" for row in rows)
    lines += [f"| **process wall** | {walls} |", f"| peak RSS MB | {rss} |"]
    return "\n".join(lines)


def profile_table(row: Row, top: int = 20) -> str:
    """The functions with the most own time under cProfile."""
    lines = [
        f"cProfile, {row.n:,} persons (profiler overhead included):",
        "",
        "| function | calls | own s | cumulative s |",
        "| --- | ---: | ---: | ---: |",
    ]
    for entry in row.profile[:top]:
        lines.append(
            f"| `{entry['function']}` | {entry['calls']:,} | {entry['tottime']:.3f} "
            f"| {entry['cumtime']:.3f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Parse the options, run the sizes, print the tables and the command to reproduce them."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000", help="comma-separated person counts")
    parser.add_argument("--million", action="store_true", help="add 10^6 persons (3x10^6 memberships)")
    parser.add_argument("--seed", type=int, default=20240801)
    parser.add_argument("--repeats", type=int, default=3, help="runs per command; the fastest is kept")
    parser.add_argument("--profile", action="store_true", help="also run the largest size under cProfile")
    parser.add_argument("--workdir", type=Path, default=None, help="data directory (reused when present)")
    parser.add_argument("--keep", action="store_true", help="keep a temporary workdir")
    args = parser.parse_args(argv)
    sizes = [int(size) for size in args.sizes.split(",")]
    if args.million and 1_000_000 not in sizes:
        sizes.append(1_000_000)
    if min(sizes) < 100:
        parser.error("sizes start at 100 persons (4 classes)")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="ims-bench-plan-set-"))
    print(f"machine: {machine()}", file=sys.stderr)
    print(f"data in {workdir}", file=sys.stderr)
    rows: list[Row] = []
    try:
        for n in sizes:
            rows.append(
                measure(n, workdir, args.seed, args.repeats, profile=args.profile and n == max(sizes))
            )
            print(table(rows[-1:]).splitlines()[-1], file=sys.stderr)
    finally:
        if args.workdir is None and not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"machine: {machine()}")
    print(table(rows))
    print()
    print(stage_table(rows))
    if rows[-1].profile:
        print()
        print(profile_table(rows[-1]))
    command = " ".join(["python -m benchmarks.plan_set", *(argv if argv is not None else sys.argv[1:])])
    print(f"\nreproduce (from {ROOT}): .venv/bin/{command.strip()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
