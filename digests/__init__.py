"""digestbot's platform-neutral core: catalog, store, arXiv client, matching, digests, scheduling.

Nothing in this package imports a chat SDK.
"""

__version__ = "0.1.0"

from .models import Channel, Digest, DigestItem, Paper, Schedule, SourceRef, Theme  # noqa: E402

__all__ = ["Channel", "Digest", "DigestItem", "Paper", "Schedule", "SourceRef", "Theme", "__version__"]
