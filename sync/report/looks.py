"""How each kind of object is presented in the Markdown and HTML tables: headings, columns, hints.

The one per-kind table of the report (`LOOKS`, keyed by `Kind.name`): what a kind's tables say is
prose and choice of columns, not data `sync.models.kinds` holds. Persons keep the headings and
anchors of the persons-only reports ("New people", "#creates"), so their `title` is empty.
Pure data: imports only the models.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from sync.models.kinds import KINDS, Kind

__all__ = ["LOOKS", "Look", "look_of"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Look:
    """One kind's tables. Columns name record fields (`full_name` is a person's given and family
    name); a deletion's columns read the record it carries, or else the references it holds."""

    noun: str  # "people": "New people (create)", "People: create" in the summary
    title: str  # "Group": "Group identifier changes", anchor "group-..."; "" for persons
    update_columns: tuple[str, ...]  # after "Sync key", before "Changes"
    rename_columns: tuple[str, ...]  # after the old and new sync key, before "Identity" and "Changes"
    deletion_columns: tuple[str, ...]  # after "Sync key", before "Identity" and "Reason"
    create_hint: str
    update_hint: str
    rename_hint: str
    deletion_hint: str  # in a plan
    unsent_hint: str  # in a run report, for the candidates it did not send

    @property
    def anchor(self) -> str:
        """The prefix of the kind's section anchors: "group-" ("" for persons)."""
        return f"{self.title.lower()}-" if self.title else ""

    def heading(self, text: str) -> str:
        """`text` ("identifier changes") named for the kind: "Group identifier changes"."""
        return f"{self.title} {text}" if self.title else text[:1].upper() + text[1:]


LOOKS: Final[Mapping[str, Look]] = {
    "person": Look(
        noun="people",
        title="",
        update_columns=("full_name", "username"),
        rename_columns=("full_name",),
        deletion_columns=(),
        create_hint="People in the roster that itslearning does not have yet.",
        update_hint="Each changed field, before → after.",
        rename_hint="People recognised by their identity key whose sync key changed; fields may change too.",
        deletion_hint=(
            "In itslearning, gone from the roster. Always listed; deleted only by a run with "
            "--deletes delete."
        ),
        unsent_hint=(
            "Gone from the roster or marked for deletion; deleted only by a run with --deletes delete."
        ),
    ),
    "group": Look(
        noun="groups",
        title="Group",
        update_columns=("name",),
        rename_columns=("name",),
        deletion_columns=("parent",),
        create_hint="Groups in the roster that itslearning does not have yet; parents are created first.",
        update_hint="Each changed field, before → after; a changed parent moves the group.",
        rename_hint="Groups recognised by their identity whose sync key changed; fields may change too.",
        deletion_hint=(
            "In itslearning, gone from the roster (parent as the snapshot holds it). Always listed; deleted, "
            "children first, only by --deletes delete."
        ),
        unsent_hint="Gone from the roster; kept by this run, deleted only by a run with --deletes delete.",
    ),
    "membership": Look(
        noun="memberships",
        title="Membership",
        update_columns=("group", "person", "role"),
        rename_columns=("group", "person"),
        deletion_columns=("group", "person", "role"),
        create_hint="A person in a group with a role; sent after the people and groups they need.",
        update_hint="Each changed field, before → after.",
        rename_hint=(
            "The same person in the same group under a new enrolment id: renamed, not enrolled twice."
        ),
        deletion_hint=(
            "In itslearning, gone from the roster. Always listed; deactivated by --deletes deactivate, "
            "deleted by --deletes delete."
        ),
        unsent_hint=(
            "Gone from the roster; neither deactivated nor deleted by this run (--deletes off, or already "
            "inactive)."
        ),
    ),
}

assert set(LOOKS) == {kind.name for kind in KINDS}, "every kind needs its look"


def look_of(kind: Kind) -> Look:
    """The kind's presentation."""
    return LOOKS[kind.name]
