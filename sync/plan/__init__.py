"""Plan: references between files, the diff against the snapshot, phases, what a run sends, safety limits.

The pure core: values in, values out. It imports no I/O (no SQLite, no zeep, no files). Rooms:
links (references between roster files), columns (the column-wise diff of one kind), identity
(identity matching and its conflicts), kind_plan (one kind's planning step), diff (entry points),
ordering (phases), selection (`--only` and pause windows: what a run sends, what it holds), safety
(limits), schools (which school each planned object belongs to).
"""
