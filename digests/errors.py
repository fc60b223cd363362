"""Errors raised by the core. Edges (CLI, chat adapters) turn them into one friendly line.

DigestBotError
 ├── ConfigError(variable, where)          missing or invalid configuration
 ├── CatalogError                          bad catalog input (import line, query)
 │    └── ImportLineError(line)
 ├── UnknownThemeError(theme, known)
 ├── ChannelError(channel)                 unknown or broken channel
 ├── ArxivError(url, attempt, message)     anything from arXiv
 │    ├── ArxivHTTPError(status)           non-retryable HTTP status or an Atom error entry
 │    ├── ArxivThrottledError(retry_after) 429/503 after retries ran out
 │    └── ArxivEmptyPageError(raw)         a page came back empty while more were promised
 └── DeliveryError(channel, code, retry_after, permanent)
"""

from __future__ import annotations

from typing import Any


class DigestBotError(Exception):
    """Base of every error digestbot raises on purpose."""

    def __init__(self, message: str, **context: Any) -> None:
        super().__init__(message)
        self.message = message
        self.context = context
        for key, value in context.items():
            setattr(self, key, value)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.message, self.context))

    def __str__(self) -> str:
        return self.message


def _rebuild(cls: type[DigestBotError], message: str, context: dict[str, Any]) -> DigestBotError:
    err = cls.__new__(cls)
    DigestBotError.__init__(err, message, **context)
    return err


class ConfigError(DigestBotError):
    """Configuration is missing or invalid; the message names the variable and where to set it."""


class CatalogError(DigestBotError):
    """Catalog input could not be used."""


class ImportLineError(CatalogError):
    """One line of a bulk import is invalid (context: line)."""


class UnknownThemeError(DigestBotError):
    """A theme name is not configured (context: theme, known)."""


class ChannelError(DigestBotError):
    """A channel is unknown or cannot be used (context: channel)."""


class ArxivError(DigestBotError):
    """Anything that went wrong talking to arXiv (context: url, attempt)."""


class ArxivHTTPError(ArxivError):
    """arXiv answered with an error status or an Atom error entry; not retried (context: status)."""


class ArxivThrottledError(ArxivError):
    """arXiv kept answering 429/503 until the retries ran out (context: retry_after)."""


class ArxivEmptyPageError(ArxivError):
    """A page was empty although totalResults promised more (context: raw)."""


class DeliveryError(DigestBotError):
    """A platform refused a post (context: channel, code, retry_after, permanent)."""
