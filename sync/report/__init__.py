"""Report: a plan, a run or a reconciliation rendered as JSON, CSV, Markdown or self-contained HTML.

Pure: it renders what it is given and never recomputes a plan.
"""
