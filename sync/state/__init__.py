"""State: the SQLite snapshot and journal, the Arrow cache, the run lock, adoption and reconciliation.

The only place that touches the state directory.
"""
