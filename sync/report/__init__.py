"""Report: a plan, a run or a reconciliation rendered as JSON, CSV, Markdown or self-contained HTML.

Pure: it renders what it is given and never recomputes a plan. Rooms: `render` (the entry points),
`meta` (format, header context), `ops` (what a report says of one operation), `looks` (how each kind's
tables read), `sections` (the format-neutral page of a plan or a run), and one module per format:
`as_json`, `as_csv`, `as_markdown`, `as_html` (Jinja2 templates in `templates/`).
"""
