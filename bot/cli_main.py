"""`python -m bot.cli_main` runs the CLI (the same entry point as the `digestbot` script)."""

from .cli import cli

if __name__ == "__main__":
    cli()
