"""Schema migrations, applied on every open (sqlite-utils `Migrations`, recorded in `_sqlite_migrations`).

Never edit a migration that has shipped: append a new `mNNN_...` function instead.
"""

from __future__ import annotations

from sqlite_utils import Migrations
from sqlite_utils import Database

migrations = Migrations("digestbot")


@migrations()
def m001_initial(db: Database) -> None:
    """Create the first schema: papers + sources + FTS, themes, fetch log, channels, delivery ledger."""
    db.executescript(
        """
        CREATE TABLE papers (
            id INTEGER PRIMARY KEY,
            arxiv_id TEXT UNIQUE,
            version INTEGER,
            title TEXT,
            abstract TEXT NOT NULL DEFAULT '',
            authors TEXT NOT NULL DEFAULT '',
            authors_json TEXT NOT NULL DEFAULT '[]',
            affiliations_json TEXT NOT NULL DEFAULT '[]',
            categories_json TEXT NOT NULL DEFAULT '[]',
            primary_category TEXT,
            published TEXT,
            updated TEXT,
            doi TEXT,
            journal_ref TEXT,
            comment TEXT,
            origin TEXT NOT NULL,
            seed_key TEXT UNIQUE,
            announced TEXT,
            created_at TEXT NOT NULL,
            modified_at TEXT NOT NULL
        );
        CREATE INDEX papers_origin ON papers(origin);
        CREATE INDEX papers_announced ON papers(announced);
        CREATE TABLE paper_sources (
            paper_id INTEGER NOT NULL REFERENCES papers(id) ON DELETE CASCADE,
            file TEXT NOT NULL,
            line INTEGER NOT NULL,
            kind TEXT NOT NULL,
            title TEXT,
            text TEXT,
            PRIMARY KEY (file, line)
        );
        CREATE INDEX paper_sources_paper ON paper_sources(paper_id);
        CREATE TABLE paper_revisions (
            arxiv_id TEXT NOT NULL,
            version INTEGER NOT NULL,
            updated TEXT,
            seen_at TEXT NOT NULL,
            PRIMARY KEY (arxiv_id, version)
        );
        CREATE TABLE paper_themes (
            paper_id INTEGER NOT NULL REFERENCES papers(id) ON DELETE CASCADE,
            theme TEXT NOT NULL,
            score REAL NOT NULL,
            matched INTEGER NOT NULL,
            why_json TEXT NOT NULL DEFAULT '[]',
            terms_json TEXT NOT NULL DEFAULT '[]',
            PRIMARY KEY (paper_id, theme)
        );
        CREATE INDEX paper_themes_theme ON paper_themes(theme, matched, score);
        CREATE TABLE seed_files (
            file TEXT PRIMARY KEY,
            sha256 TEXT NOT NULL,
            loaded_at TEXT NOT NULL
        );
        CREATE TABLE fetch_runs (
            id INTEGER PRIMARY KEY,
            started TEXT NOT NULL,
            finished TEXT,
            window_start TEXT NOT NULL,
            window_end TEXT NOT NULL,
            outcome TEXT NOT NULL,
            reason TEXT,
            queries_json TEXT NOT NULL DEFAULT '[]',
            requests INTEGER NOT NULL DEFAULT 0,
            pages INTEGER NOT NULL DEFAULT 0,
            retries INTEGER NOT NULL DEFAULT 0,
            papers INTEGER NOT NULL DEFAULT 0,
            scanned_json TEXT NOT NULL DEFAULT '{}'
        );
        CREATE TABLE http_cache (
            key TEXT PRIMARY KEY,
            day TEXT NOT NULL,
            url TEXT NOT NULL,
            status INTEGER NOT NULL,
            body BLOB NOT NULL,
            fetched_at TEXT NOT NULL
        );
        CREATE TABLE channels (
            key TEXT PRIMARY KEY,
            themes_json TEXT NOT NULL DEFAULT '[]',
            weekday INTEGER,
            time TEXT,
            tz TEXT,
            size_new INTEGER,
            size_classic INTEGER,
            broken_reason TEXT,
            broken_at TEXT,
            source TEXT NOT NULL DEFAULT 'chat',
            created_at TEXT NOT NULL,
            modified_at TEXT NOT NULL
        );
        CREATE TABLE deliveries (
            id INTEGER PRIMARY KEY,
            digest_id TEXT NOT NULL UNIQUE,
            channel TEXT NOT NULL,
            week TEXT NOT NULL,
            status TEXT NOT NULL,
            message_ref TEXT,
            attempts INTEGER NOT NULL DEFAULT 0,
            error TEXT,
            retry_at TEXT,
            payload_json TEXT,
            created_at TEXT NOT NULL,
            posted_at TEXT,
            UNIQUE (channel, week)
        );
        CREATE TABLE sent_papers (
            channel TEXT NOT NULL,
            arxiv_id TEXT NOT NULL,
            version INTEGER,
            digest_id TEXT NOT NULL,
            sent_at TEXT NOT NULL,
            PRIMARY KEY (channel, arxiv_id)
        );
        CREATE TABLE classics_shown (
            channel TEXT NOT NULL,
            paper_id INTEGER NOT NULL,
            digest_id TEXT NOT NULL,
            shown_at TEXT NOT NULL,
            PRIMARY KEY (channel, paper_id)
        );
        CREATE TABLE command_log (
            id INTEGER PRIMARY KEY,
            channel TEXT,
            user_id TEXT,
            command TEXT NOT NULL,
            ok INTEGER NOT NULL,
            at TEXT NOT NULL
        );
        """
    )
    db["papers"].enable_fts(
        ["title", "abstract", "authors"], fts_version="FTS5", create_triggers=True, tokenize="porter"
    )


@migrations()
def m002_catalog_meta_and_title_index(db: Database) -> None:
    """Add a normalised-title column for exact title lookups and a meta table for the catalog version."""
    db.executescript(
        """
        ALTER TABLE papers ADD COLUMN title_norm TEXT;
        CREATE INDEX papers_title_norm ON papers(title_norm);
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        INSERT INTO meta (key, value) VALUES ('catalog_version', '0');
        """
    )


@migrations()
def m003_channels_config_hash(db: Database) -> None:
    """Remember which `[[channels]]` config entry a channel was last seeded from (config vs chat rule)."""
    db.execute("ALTER TABLE channels ADD COLUMN config_hash TEXT")


@migrations()
def m004_title_fts(db: Database) -> None:
    """Add a title-only FTS5 index: title lookups on a large catalog stay fast when title words are common."""
    db.executescript(
        """
        CREATE VIRTUAL TABLE papers_title_fts USING fts5(
            title, content='papers', content_rowid='id', tokenize='porter'
        );
        INSERT INTO papers_title_fts(papers_title_fts) VALUES ('rebuild');
        CREATE TRIGGER papers_title_ai AFTER INSERT ON papers BEGIN
            INSERT INTO papers_title_fts(rowid, title) VALUES (new.id, new.title);
        END;
        CREATE TRIGGER papers_title_ad AFTER DELETE ON papers BEGIN
            INSERT INTO papers_title_fts(papers_title_fts, rowid, title) VALUES ('delete', old.id, old.title);
        END;
        CREATE TRIGGER papers_title_au AFTER UPDATE OF title ON papers BEGIN
            INSERT INTO papers_title_fts(papers_title_fts, rowid, title) VALUES ('delete', old.id, old.title);
            INSERT INTO papers_title_fts(rowid, title) VALUES (new.id, new.title);
        END;
        """
    )


@migrations()
def m005_title_prefix_index(db: Database) -> None:
    """Add an unstemmed title index for as-you-type completion: the porter stemmer also shortens a typed
    prefix ("constituti" finds nothing), so completion needs the words as written."""
    db.executescript(
        """
        CREATE VIRTUAL TABLE papers_title_prefix USING fts5(
            title, content='papers', content_rowid='id', tokenize='unicode61 remove_diacritics 2', prefix='2 3'
        );
        INSERT INTO papers_title_prefix(papers_title_prefix) VALUES ('rebuild');
        CREATE TRIGGER papers_title_prefix_ai AFTER INSERT ON papers BEGIN
            INSERT INTO papers_title_prefix(rowid, title) VALUES (new.id, new.title);
        END;
        CREATE TRIGGER papers_title_prefix_ad AFTER DELETE ON papers BEGIN
            INSERT INTO papers_title_prefix(papers_title_prefix, rowid, title) VALUES ('delete', old.id, old.title);
        END;
        CREATE TRIGGER papers_title_prefix_au AFTER UPDATE OF title ON papers BEGIN
            INSERT INTO papers_title_prefix(papers_title_prefix, rowid, title) VALUES ('delete', old.id, old.title);
            INSERT INTO papers_title_prefix(rowid, title) VALUES (new.id, new.title);
        END;
        """
    )


@migrations()
def m006_delivery_lease(db: Database) -> None:
    """Add a lease to `deliveries`: which live process is delivering a digest (`host:pid:token`) and until when
    (ISO UTC), so two processes never both post or recover the same pending digest (see ledger.claim)."""
    db.executescript(
        """
        ALTER TABLE deliveries ADD COLUMN claimed_by TEXT;
        ALTER TABLE deliveries ADD COLUMN claimed_until TEXT;
        """
    )
