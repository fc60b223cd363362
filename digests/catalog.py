"""The paper catalog in SQLite: seed sync, arXiv upserts, lookup (stub; being written)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .service import Core


def sync_seeds(core: "Core") -> None:
    """Load seeds/ into the catalog when a seed file is new or changed."""
