"""The package imports, migrates a real SQLite file, and never pulls a chat SDK into the core."""

import subprocess
import sys

from click.testing import CliRunner

from bot.cli import cli
from digests.migrations import migrations
from digests.store import open_db


def test_help_lists_commands():
    result = CliRunner().invoke(cli, ["--help"], catch_exceptions=False)
    assert result.exit_code == 0
    assert "Weekly AI post-training" in result.output


def test_migrations_idempotent(tmp_path):
    path = tmp_path / "x.db"
    open_db(path)
    db = open_db(path)
    assert db["_sqlite_migrations"].count == len(migrations._migrations)
    assert "papers_fts" in db.table_names()


def test_import_digests_pulls_no_chat_sdk():
    code = (
        "import sys, digests, digests.service, digests.catalog, digests.models\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('slack_bolt', 'slack_sdk', 'discord', 'aiohttp', 'bot')]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
