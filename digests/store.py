"""Open the SQLite file under DIGESTBOT_HOME and bring its schema up to date."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from sqlite_utils import Database

from .migrations import migrations


def open_db(path: Path | str | None = None) -> Database:
    """Return a Database on `path` (None: in memory), created and migrated on first use."""
    if path is None:
        db = Database(memory=True)
    else:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        db = Database(path)
        db.execute("PRAGMA journal_mode=WAL")
        # WAL + NORMAL: a crash of the process loses nothing committed; only power loss can drop the last commit.
        db.execute("PRAGMA synchronous=NORMAL")
    db.execute("PRAGMA foreign_keys=ON")
    db.execute("PRAGMA busy_timeout=5000")
    migrations.apply(db)
    return db


def utcnow_iso(now: datetime | None = None) -> str:
    """Return `now` (default: the current time) as an ISO 8601 UTC string with seconds."""
    now = now or datetime.now(timezone.utc)
    return now.astimezone(timezone.utc).isoformat(timespec="seconds")
