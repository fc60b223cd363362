"""Parse the four seed formats into merged Paper records (stub; the seeds work fills this in)."""

from __future__ import annotations

from pathlib import Path

from .models import Paper


def parse_seeds(seeds_dir: Path) -> list[Paper]:
    """Return the merged, deduplicated seed papers from every seed file in `seeds_dir`."""
    return []


def seed_key(paper: Paper) -> str:
    """Return a key that identifies a merged seed paper across reloads and seed-file edits."""
    raise NotImplementedError
