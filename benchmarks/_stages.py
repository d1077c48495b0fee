"""Run `ims-sync plan` in this process with a timer on each stage; print the stages as JSON.

Used by `benchmarks.plan_set` as a child process (never imported by it):

    python -m benchmarks._stages [--profile] -- plan FOLDER -m oneroster --state S --format json -o F

The real command runs through `sync.cli.app.main`; the stages are timed by wrapping the functions the
command calls (in their modules, so the command's own lookups find the wrappers). Each stage's time is
its own (self) time: a timed stage called inside another is subtracted from the outer one. What no
stage claims (click, logging, the summary) is reported as "rest of the command". With `--profile` the
command runs under cProfile instead and the heaviest functions are printed (stage timers off).
"""

from __future__ import annotations

import time

STARTED = time.perf_counter()

import cProfile  # noqa: E402 - the clock starts before the imports it measures
import functools  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import pstats  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import Any  # noqa: E402

_seconds: dict[str, float] = {}
_rss_mb: dict[str, float] = {}
_stack: list[float] = []  # per open stage: time spent in the stages it called


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _timed(label: Callable[..., str], function: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        name = label(*args, **kwargs)
        _stack.append(0.0)
        started = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            elapsed = time.perf_counter() - started
            inner = _stack.pop()
            _seconds[name] = _seconds.get(name, 0.0) + elapsed - inner
            _rss_mb[name] = _peak_rss_mb()
            if _stack:
                _stack[-1] += elapsed

    return wrapper


def _wrap(owner: Any, attribute: str, label: Callable[..., str]) -> None:
    setattr(owner, attribute, _timed(label, getattr(owner, attribute)))


def _install() -> None:
    """Wrap the stages of `ims-sync plan` where the command looks them up."""
    import sync.cli.limits
    import sync.cli.plan
    import sync.plan.diff
    import sync.plan.kind_plan
    import sync.plan.links
    import sync.plan.school_sizes
    import sync.read.roster_set
    import sync.report.render
    import sync.state.store

    def fixed(name: str) -> Callable[..., str]:
        return lambda *_args, **_kwargs: name

    _wrap(sync.read.roster_set, "read_persons", fixed("read persons"))  # with the files joined to them
    _wrap(sync.read.roster_set, "read_groups", fixed("read groups"))
    _wrap(sync.read.roster_set, "read_memberships", fixed("read memberships"))
    _wrap(sync.state.store.StateStore, "load", lambda _store, kind: f"load snapshot {kind.plural}")
    _wrap(sync.plan.links, "check_group_parents", fixed("links (groups)"))
    _wrap(sync.plan.links, "check_membership_links", fixed("links (memberships)"))
    _wrap(sync.plan.diff, "plan_kind", lambda kind, *_args, **_kwargs: f"diff {kind.plural}")
    _wrap(sync.plan.kind_plan, "moved_keys", fixed("diff: move renamed keys"))
    _wrap(sync.plan.diff, "plan_schools", fixed("diff: schools"))
    _wrap(sync.plan.school_sizes, "school_counts", fixed("limits: school sizes"))
    _wrap(sync.cli.limits, "hold_breaches", fixed("limits: check and hold"))
    _wrap(sync.report.render, "render_plan", fixed("report: render"))
    _wrap(sync.cli.plan, "write", fixed("report: write"))


def main() -> int:
    """Parse `[--profile] -- ARGV`, run the command, print JSON."""
    args = sys.argv[1:]
    profile = args[:1] == ["--profile"]
    argv = args[args.index("--") + 1 :]
    # What the plan command imports lazily, imported here so its cost is a stage of its own.
    import sync.cli.app
    import sync.plan.diff
    import sync.plan.links
    import sync.plan.school_sizes
    import sync.read.roster_set
    import sync.report.render
    import sync.state.store

    imported = time.perf_counter()
    out: dict[str, Any] = {"imports": imported - STARTED}
    if profile:
        profiler = cProfile.Profile()
        code = profiler.runcall(sync.cli.app.main, argv)
        total = time.perf_counter() - imported
        text = io.StringIO()
        stats = pstats.Stats(profiler, stream=text)
        rows = []
        for (file, line, name), (_, calls, own, cumulative, _) in stats.stats.items():  # type: ignore[attr-defined]
            rows.append({"function": f"{file.rsplit('/', 1)[-1]}:{line}({name})", "calls": calls,
                         "tottime": own, "cumtime": cumulative})  # fmt: skip
        rows.sort(key=lambda row: -row["tottime"])
        out.update(code=code, command=total, profile=rows[:40])
    else:
        _install()
        code = sync.cli.app.main(argv)
        total = time.perf_counter() - imported
        out.update(code=code, command=total, stages=_seconds, rss_mb=_rss_mb, peak_rss_mb=_peak_rss_mb())
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
