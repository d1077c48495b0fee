"""Report: a plan, a run or a reconciliation rendered as JSON, CSV, Markdown or self-contained HTML.

Pure: it renders what it is given and never recomputes a plan. Rooms: `render` (the entry points),
`meta` (format, header context), `ops` (what a report says of one operation), `looks` (how each kind's
tables read), `sections` (the format-neutral page of a plan or a run), and one module per format:
`as_json` (its lines of operations from `json_ops`), `as_csv`, `as_markdown`, `as_html` (Jinja2
templates in `templates/`); per school, `by_school` (a plan's or a run's pages by `Plan.schools`, in
plain words) and `as_school_html` (the folder: index and one page per school).
"""
