"""`digestbot console`: piped input, arguments, channel option, exit status, help."""

from __future__ import annotations

from click.testing import CliRunner

from bot.cli import cli
from bot.console import run_line


def invoke(args, input=None):
    return CliRunner().invoke(cli, ["console", *args], input=input, catch_exceptions=False)


def test_console_runs_piped_commands():
    result = invoke([], input="/paper constitutional ai\n\n/digest subscribe rlhf\n/digest topics\n")
    assert result.exit_code == 0, result.output
    assert "digestbot> /paper constitutional ai" in result.output
    assert "1. Constitutional AI: Harmlessness from AI Feedback" in result.output
    assert "This channel now gets RLHF and preference learning (rlhf)" in result.output
    assert "\u2713 rlhf: RLHF and preference learning." in result.output


def test_console_state_persists_per_channel():
    assert invoke(["--channel", "team", "/digest subscribe oversight"]).exit_code == 0
    topics = invoke(["--channel", "console:team", "/digest topics"]).output
    assert "\u2713 oversight:" in topics
    assert "\u2713 oversight:" not in invoke(["/digest topics"]).output


def test_console_stops_at_quit_and_fails_on_bad_commands():
    result = invoke([], input="/digest stauts\nquit\n/digest subscribe rlhf\n")
    assert result.exit_code == 1
    assert "Did you mean /digest status?" in result.output
    assert "subscribe rlhf" not in result.output


def test_console_rejects_bad_channel():
    result = CliRunner().invoke(cli, ["console", "--channel", "console:bad name!", "/digest help"])
    assert result.exit_code == 1 and "Error:" in result.output and "Traceback" not in result.output


def test_console_preview_prints_the_digest():
    result = invoke(["/digest subscribe rlhf", "/digest preview"])
    assert result.exit_code == 0, result.output
    assert "Here is what this channel's next digest would hold" in result.output


def test_console_help_has_an_example():
    result = invoke(["--help"])
    assert result.exit_code == 0 and "Example:" in result.output and "--channel" in result.output


def test_run_line_accepts_commands_without_slash(fresh_core):
    assert run_line(fresh_core, "console:x", "me", "   ") is None
    assert run_line(fresh_core, "console:x", "me", "# comment") is None
    assert run_line(fresh_core, "console:x", "me", "paper constitutional ai").cards
    assert not run_line(fresh_core, "console:x", "me", "/wat").ok


def test_prompt_mode_reads_until_end_of_input(fresh_core):
    from bot.console import prompt_lines, run_console

    typed = iter(["/digest subscribe rlhf", "/digest bogus"])

    def read(prompt: str) -> str:
        assert prompt == "digestbot> "
        try:
            return next(typed)
        except StopIteration:
            raise EOFError from None

    out: list[str] = []
    failures = run_console(fresh_core, "console:p", prompt_lines(read), out.append, prompt=True)
    assert failures == 1 and len(out) == 2
    assert not any(line.startswith("digestbot> ") for line in out)  # the prompt already showed the line
