"""Channel subscriptions: themes, schedule and size per channel key (stub; filled by the digest issue)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .service import Core


def apply_config_channels(core: "Core") -> None:
    """Apply the `[[channels]]` declared in the config file to the store."""
