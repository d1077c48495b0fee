"""Plan: references between files, the diff against the snapshot, phases and safety limits.

The pure core: values in, values out. It imports no I/O (no SQLite, no zeep, no files).
"""
