"""`digestbot demo` runs the whole job offline: seeds, a recorded arXiv week, a digest, a lookup."""

from click.testing import CliRunner

from bot.cli import cli


def test_demo_prints_digest_and_lookup_offline(env_setup):
    result = CliRunner().invoke(cli, ["demo"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    out = result.output
    assert "merged into 36 papers" in out
    assert "50 papers scanned" in out
    assert "── Digest for console:demo" in out
    assert "https://arxiv.org/abs/" in out
    assert "Classic:" in out
    assert "scanned" in out.split("── /paper")[0].strip().splitlines()[-1]
    assert "Measuring Progress on Scalable Oversight" in out.split("── /paper")[1]
    assert not (env_setup / "digestbot.db").exists(), "the demo must not touch the user's catalog"
