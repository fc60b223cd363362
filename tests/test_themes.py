"""Themes: the shipped defaults, user additions and overrides, config errors, and name lookup."""

from __future__ import annotations

from pathlib import Path

import pytest

from digests.errors import ConfigError, UnknownThemeError
from digests.settings import load_settings
from digests.themes import find_theme, load_themes

DEFAULT_NAMES = (
    "rlhf",
    "oversight",
    "interpretability",
    "evaluations",
    "reasoning",
    "instruction-tuning",
    "safety-policy",
)


def settings_with(tmp_path: Path, toml: str):
    path = tmp_path / "digestbot.toml"
    path.write_text(toml, encoding="utf-8")
    return load_settings({"DIGESTBOT_HOME": str(tmp_path), "DIGESTBOT_CONFIG": str(path)})


def test_defaults_cover_the_catalog_topics():
    themes = load_themes(load_settings())
    assert tuple(t.name for t in themes) == DEFAULT_NAMES
    for theme in themes:
        assert theme.label and theme.description and theme.keywords and theme.exemplars and theme.categories
        assert "word alignment" in theme.negative_keywords  # shared negatives reach every theme


def test_user_theme_is_added_and_default_overridden_by_name(tmp_path):
    settings = settings_with(
        tmp_path,
        """
[[themes]]
name = "rlhf"
threshold = 0.7
keywords = ["dpo", "reward model"]

[[themes]]
name = "agents"
label = "Agents and tool use"
keywords = ["tool use", "web agents"]
categories = ["cs.AI"]
""",
    )
    themes = load_themes(settings)
    rlhf = find_theme(themes, "rlhf")
    assert rlhf.threshold == 0.7
    assert rlhf.keywords == ("dpo", "reward model")
    assert rlhf.label == "RLHF and preference learning"  # untouched keys keep their defaults
    assert themes[-1].name == "agents" and themes[-1].label == "Agents and tool use"
    assert themes[-1].description == "Agents and tool use"


def test_user_can_disable_a_default_theme(tmp_path):
    themes = load_themes(settings_with(tmp_path, '[[themes]]\nname = "safety-policy"\nenabled = false\n'))
    assert "safety-policy" not in [t.name for t in themes]


@pytest.mark.parametrize(
    ("toml", "fragment"),
    [
        ('[[themes]]\nlabel = "No name"\nkeywords = ["x"]\n', "needs a `name`"),
        ('[[themes]]\nname = "Bad Name"\nkeywords = ["x"]\n', "short slug"),
        ('[[themes]]\nname = "rlhf"\nkeywrods = ["x"]\n', "unknown key(s) keywrods"),
        ('[[themes]]\nname = "rlhf"\nthreshold = 3\n', "between 0 and 1"),
        ('[[themes]]\nname = "rlhf"\nkeywords = "dpo"\nexemplars = [1]\n', "list of non-empty strings"),
        ('[[themes]]\nname = "new-one"\nlabel = "New"\n', "needs `keywords` or `exemplars`"),
        ('[[themes]]\nname = "x"\nkeywords = ["a"]\ncategories = ["computer science"]\n', "not an arXiv category"),
        ('[[themes]]\nname = "x"\nkeywords = ["a"]\n[[themes]]\nname = "x"\nkeywords = ["b"]\n', "appears twice"),
        ('themes = "rlhf"\n', "must be a list"),
    ],
)
def test_bad_theme_config_is_a_clear_config_error(tmp_path, toml, fragment):
    with pytest.raises(ConfigError) as info:
        load_themes(settings_with(tmp_path, toml))
    assert fragment in str(info.value)
    assert "digestbot.toml" in str(info.value)


def test_missing_themes_file_names_the_setting(tmp_path):
    settings = settings_with(tmp_path, '[paths]\nthemes = "nope.toml"\n')
    with pytest.raises(ConfigError, match=r"\[paths\] themes"):
        load_themes(settings)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("rlhf", "rlhf"),
        ("RLHF", "rlhf"),
        ("Reasoning and math", "reasoning"),
        ("instruction tuning", "instruction-tuning"),
        ("Safety-Policy", "safety-policy"),
        ("evaluations and red teaming", "evaluations"),
    ],
)
def test_find_theme_by_slug_or_label_any_case(query, expected):
    assert find_theme(load_themes(load_settings()), query).name == expected


@pytest.mark.parametrize(
    ("query", "suggestion"),
    [("rlfh", "rlhf"), ("interp", "interpretability"), ("evals", "evaluations"), ("safety", "safety-policy")],
)
def test_unknown_theme_suggests_the_closest(query, suggestion):
    themes = load_themes(load_settings())
    with pytest.raises(UnknownThemeError) as info:
        find_theme(themes, query)
    assert info.value.suggestions[0] == suggestion
    assert f"Did you mean {suggestion!r}" in str(info.value)
    assert info.value.known == list(DEFAULT_NAMES)
    assert "oversight" in str(info.value)
