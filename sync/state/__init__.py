"""State: the SQLite snapshot and journal, the Arrow caches, the run lock, adoption and reconciliation.

The only place that touches the state directory, and the only package of the sync engine that imports
sqlite3 and filelock. Its rooms:

- `store`: `StateStore`, composing the rooms below (one connection, its transactions, its errors);
- `schema`: the migrations, the schema version, opening the database;
- `tables`: one snapshot table per kind (from `sync.models.kinds`) and its statements;
- `loading`: reading a table fast into Arrow, and the frames `StateStore.load` returns;
- `cache`: `persons.arrow` and `memberships.arrow`, stamped by the tables' generations;
- `journal`: requests, answers and runs; `changes`: `Upsert`, `Rename`, `Remove` and their cascades;
- `commits`: the journal's writes of concurrent threads, committed in groups (one transaction each);
- `lock`: the run lock; `clock`: stored times;
- `adopt`: a populated site into the snapshot; `reconcile`: flags on the journal (pure).
- `check`: `snapshot check`, the integrity check and the state's invariants, read-only.
"""
