"""The example config documents every section and loads cleanly; secrets never come from files."""

from pathlib import Path

from digests.service import open_core
from digests.settings import PROJECT_ROOT, load_settings

EXAMPLE = PROJECT_ROOT / "config" / "digestbot.example.toml"


def _commented_block(text: str, header: str) -> str:
    lines = text.splitlines()
    start = lines.index(f"# {header}")
    block = []
    for line in lines[start:]:
        if not line.startswith("# "):
            break
        block.append(line[2:])
    return "\n".join(block)


def test_example_config_loads_and_its_examples_work(monkeypatch, tmp_path):
    text = EXAMPLE.read_text()
    config = tmp_path / "digestbot.toml"
    config.write_text(text)
    monkeypatch.setenv("DIGESTBOT_CONFIG", str(config))
    settings = load_settings()
    assert settings.arxiv_delay_seconds == 3.0 and settings.slack_port == 3000 and settings.admins == ()
    open_core(settings)
    examples = "\n".join(_commented_block(text, h) for h in ("[[themes]]", "[[channels]]"))
    config.write_text(text + "\n" + examples + "\n")
    core = open_core(load_settings())
    assert "agents" in core.theme_names
    from digests.channels import get_channel

    channel = get_channel(core, "slack:T0001:C0001")
    assert channel.themes == ("rlhf", "oversight") and channel.schedule.tz == "Europe/Berlin"


def test_tokens_only_from_environment(tmp_path, monkeypatch):
    config = tmp_path / "digestbot.toml"
    config.write_text('[slack]\nbot_token = "xoxb-from-file"\n')
    monkeypatch.setenv("DIGESTBOT_CONFIG", str(config))
    assert load_settings().slack_bot_token is None
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-env")
    settings = load_settings()
    assert settings.slack_bot_token == "xoxb-env"
    assert "xoxb" not in repr(settings)


def test_example_mentions_no_secret_values():
    text = EXAMPLE.read_text()
    assert "xoxb-" not in text and "xapp-" not in text
    assert Path(EXAMPLE).is_file()
