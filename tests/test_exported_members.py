"""The package's public names: exported, sorted, and each really defined."""

from __future__ import annotations

import sync


def test_all_is_sorted_and_complete() -> None:
    """`sync.__all__` is sorted (isort-style) and every name in it exists on the package."""
    names = [n for n in sync.__all__ if n != "__version__"]
    assert names == sorted(names, key=lambda n: (not n.isupper(), n))
    missing = [name for name in sync.__all__ if not hasattr(sync, name)]
    assert missing == []


def test_every_error_class_is_exported() -> None:
    """Every exception class in sync.errors is part of the public API."""
    import sync.errors

    assert set(sync.errors.__all__) <= set(sync.__all__)
