"""The `/paper` command: catalog search, the arXiv lookup for ids the catalog lacks, and paper cards."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from bot.command_table import Invocation, one_line
from bot.replies import PaperCard, Reply

if TYPE_CHECKING:
    from digests.models import Paper, ThemeScore
    from digests.service import Core

MAX_CARDS = 3
_EMBEDDED_ID = re.compile(r"(?<![\w.])(\d{4}\.\d{4,5})(?:v(\d+))?(?![\w.])")


def _paper(core: Core, inv: Invocation, args: dict[str, Any]) -> Reply:
    from digests import catalog, lookup

    query = args["query"]
    shown = one_line(query, 80)
    ref = catalog.parse_arxiv_ref(query)
    embedded = _EMBEDDED_ID.search(query) if ref is None else None
    arxiv_id = ref[0] if ref else (embedded.group(1) if embedded else None)
    if arxiv_id:
        paper = catalog.get_by_arxiv_id(core, arxiv_id)
        if paper is not None:
            return Reply(f"arXiv {arxiv_id}:", cards=(_card(core, inv, paper),))
        if ref is not None:
            return _arxiv_lookup(core, inv, arxiv_id)
    if not lookup.query_terms(query):
        return Reply(EMPTY_QUERY, ok=False)
    found = lookup.search(core, query, limit=MAX_CARDS)
    if not found:
        close = tuple(lookup.suggest_titles(core, query))
        hint = "" if close else " Try fewer or different words, or an arXiv id."
        return Reply(
            f"Nothing in the catalog matches \u201c{shown}\u201d.{hint}",
            suggestions=close,
        )
    note = " (I used the start of your long query.)" if len(query) > lookup.MAX_QUERY_CHARS else ""
    cards = tuple(_card(core, inv, p) for p, _ in found)
    if found[0][1] < lookup.WEAK_MATCH:
        close = tuple(lookup.suggest_titles(core, query))
        if close:
            # A misspelt title finds only stray words; the closest title is the likelier meaning.
            best = [p for p, _ in lookup.search(core, close[0], limit=1)]
            papers = best + [p for p, _ in found if not best or p.id != best[0].id]
            cards = tuple(_card(core, inv, p) for p in papers[:MAX_CARDS])
            return Reply(f"No paper has all of \u201c{shown}\u201d; nearest matches:{note}", cards=cards,
                         suggestions=close[1:])
    return Reply(f"Best matches for \u201c{shown}\u201d:{note}", cards=cards)


EMPTY_QUERY = "Tell me what to look for: title words, an author or an arXiv id, e.g. /paper constitutional ai"


def workspace_prefix(channel_key: str) -> str:
    """Return the key prefix shared by every channel of the same workspace (`slack:T123:`)."""
    parts = channel_key.split(":")
    return ":".join(parts[:-1]) + ":" if len(parts) > 1 else channel_key


def _card(core: Core, inv: Invocation, paper: Paper, scores: list[ThemeScore] | None = None) -> PaperCard:
    from digests import catalog

    if scores is None:
        scores = catalog.scores_for(core, paper.id) if paper.id is not None else []
    hits = sorted((s for s in scores if s.matched), key=lambda s: -s.score)
    themes = tuple(s.theme for s in hits) or paper.themes
    why: list[str] = []
    for s in hits:
        why += [w for w in s.why if w not in why and w != paper.title]
    posted = catalog.posted_in(core, paper.arxiv_id, workspace_prefix(inv.channel)) if paper.arxiv_id else []
    return PaperCard(paper, themes, tuple(why[:3]), hits[0].score if hits else None, tuple(posted))


LOOKUP_TIMEOUT_SECONDS = 10.0
_LOOKUP_CLIENTS: dict[tuple[str, str], Any] = {}
"""One lookup client per arXiv URL for the whole process, so its 3-second spacing holds across commands."""


def lookup_client(core: Core) -> Any:
    """Return the ArxivClient `/paper` uses: `core.cache["arxiv_client"]` if the runner set one, else a shared one."""
    from digests.arxiv_api import ArxivClient

    client = core.cache.get("arxiv_client")
    if client is not None:
        return client
    s = core.settings
    key = (s.arxiv_api_url, s.user_agent)
    if key not in _LOOKUP_CLIENTS:
        # No retries and a short timeout: someone is waiting for this answer in chat.
        _LOOKUP_CLIENTS[key] = ArxivClient(
            s.arxiv_api_url,
            user_agent=s.user_agent,
            delay_seconds=s.arxiv_delay_seconds,
            timeout=LOOKUP_TIMEOUT_SECONDS,
            retries=0,
        )
    return _LOOKUP_CLIENTS[key]


def _arxiv_lookup(core: Core, inv: Invocation, arxiv_id: str) -> Reply:
    """Look an id up on arXiv itself (it is not in the catalog) and add it; say plainly when that can't be done."""
    from digests.errors import ArxivError
    from digests.fetch import lookup_and_store

    try:
        paper = lookup_and_store(core, arxiv_id, client=lookup_client(core))
    except ArxivError as exc:
        return Reply(
            f"arXiv {arxiv_id} is not in the catalog and arXiv could not be reached ({one_line(str(exc), 160)}); "
            "try again in a few minutes.",
            ok=False,
        )
    if paper is None:
        return Reply(f"arXiv has no paper {arxiv_id}; check the id.", ok=False)
    return Reply(
        f"arXiv {arxiv_id} (found on arXiv and added to the catalog):",
        cards=(_card(core, inv, paper),),
    )
