"""ims-es-sync: batch CSV synchronisation of school rosters into itslearning over IMS ES v1.0."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
