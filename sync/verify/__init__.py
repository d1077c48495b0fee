"""Verify: read back what IMS ES holds for the snapshot's objects, report where it drifted, repair.

The nightly plan trusts the snapshot; `verify` checks it against the target. Rooms:

- `compare`: pure: snapshot values against IMS ES values, field by field over `Kind.fields`, into
  `sync.models.drift.Drift` rows, and what the next run does about each; the sample's choice;
- `reading`: the reads (readPersons in batches, readAllPersons pages, readGroup, readMembershipsForGroup,
  readMembership), within the in-flight budget, each journalled with its messageIdentifier/messageIdRef;
- `check`: one verify: which objects (all, or a seeded sample), the reads, the comparison, and what
  the next run does about each drifted object;
- `repair`: `--repair`: each drifted object recorded in the snapshot, one transaction per object.

May import ims, state, plan, read and models; never send, report or cli.
"""
