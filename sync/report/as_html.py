"""HTML: a plan's or a run's page as one self-contained HTML file, rendered from the Jinja2 templates
in `templates/` with autoescaping (every value is text, never markup).

The page loads nothing from elsewhere: its CSS and JS (`report.css`, `report.js`, searchable and
sortable tables) are inline, and its Content-Security-Policy allows exactly those two, by hash.
Pure: reads only its own package files.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence
from functools import cache
from importlib import resources

from jinja2 import Environment, PackageLoader, StrictUndefined

from sync.report.meta import meta_items
from sync.report.ops import FIELD_LABELS
from sync.report.sections import Count, Page

__all__ = ["chart", "environment", "head_assets", "render_html"]


@cache
def _asset(name: str) -> str:
    return (resources.files("sync.report") / "templates" / name).read_text(encoding="utf-8")


def _csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii") + "'"


@cache
def _head_assets() -> tuple[str, str, str]:
    """The inline CSS, inline JS and a CSP that allows exactly those two (by hash) and nothing else."""
    css, js = _asset("report.css"), _asset("report.js")
    csp = (
        f"default-src 'none'; style-src {_csp_hash(css)}; script-src {_csp_hash(js)}; "
        "img-src 'none'; base-uri 'none'; form-action 'none'"
    )
    return css, js, csp


@cache
def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("sync.report", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["thousands"] = "{:,}".format
    env.globals["label"] = lambda field: FIELD_LABELS.get(field, field)
    return env


def _chart(counts: Sequence[Count]) -> dict[str, object]:
    """The geometry of the summary's bar chart: one bar per count that has a colour."""
    bars = [(label, n, colour) for label, n, colour in counts if colour]
    top = max((n for _, n, _ in bars), default=0) or 1
    label_w = 230 if any(len(label) > 20 for label, _, _ in bars) else 150
    bar_w, row_h = 260, 24
    widths = [max(round(bar_w * n / top) if n else 0, 1) for _, n, _ in bars]
    return {
        "width": label_w + bar_w + 80,
        "height": row_h * len(bars) + 4,
        "label_x": label_w - 8,
        "bar_x": label_w,
        "bar_height": row_h - 8,
        "bars": [
            {
                "label": label,
                "n": n,
                "colour": colour,
                "text_y": i * row_h + 18,
                "bar_y": i * row_h + 5,
                "width": width,
                "count_x": label_w + width + 6,
            }
            for i, ((label, n, colour), width) in enumerate(zip(bars, widths, strict=True))
        ],
    }


#: Shared with the per-school pages (`sync.report.as_school_html`).
environment, head_assets, chart = _environment, _head_assets, _chart


def render_html(page: Page, max_rows: int) -> str:
    """The page as one HTML document, each table capped at `max_rows` rows with a note of the rest."""
    css, js, csp = _head_assets()
    return (
        _environment()
        .get_template("page.html.j2")
        .render(
            page=page,
            meta_items=meta_items(page.meta, page.extra_meta),
            chart=_chart(page.counts),
            max_rows=max_rows,
            css=css,
            js=js,
            csp=csp,
        )
    )
