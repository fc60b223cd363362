"""Score papers against themes with no LLM and no model download.

Each (paper, theme) pair gets eight features (FEATURES), computed over title + abstract:

- keyword evidence: how many of the theme's keywords occur, split into strong phrases and weak words
  (marked "~" in config: generic words that only support other evidence), both discounted for abstracts
  longer than the ones the coefficients were fitted on, plus how many occur in the title;
- similarity: TF-IDF cosine to the theme's profile (centroid of its description, keywords and exemplar seed
  papers) and to its nearest exemplar seed paper;
- context: whether the paper is about language models / AI systems at all (alignment words are treacherous:
  "word alignment", "post-training quantization", "reward" in robot control ...);
- negative evidence: the theme's negative keywords plus the shared list in config/themes.toml;
- category: whether the paper's primary arXiv category is one of the theme's.

Scale: the score is ``sigmoid(COEF . features + INTERCEPT)`` with ONE set of coefficients shared by every
theme (fitted on the tune half of tests/fixtures/labelled/, see ``bench/score.py --fit``). So a score means
the same for every theme: roughly the probability that the paper belongs to that theme. The default
threshold 0.5 is the same everywhere; a theme's `threshold` (or ``[matching] thresholds``) moves only that
theme's cut-off, and the max over themes is a fair "is this paper on-topic at all" score.

Text is counted without per-token Python: lower-cased bytes go through numpy, words become 64-bit
polynomial hashes, and phrases are looked up as hashes of consecutive word hashes.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import sparse  # type: ignore[import-untyped]

from .errors import ConfigError
from .models import Paper, Theme, ThemeScore

if TYPE_CHECKING:
    from .service import Core

log = logging.getLogger(__name__)

DEFAULT_THRESHOLD = 0.5
_split = str.split
REFERENCE_WORDS = 85.0
"""Median words in title + abstract of the labelled papers the coefficients were fitted on."""
LENGTH_EXPONENT = 0.5
"""How fast keyword evidence is discounted in longer abstracts (0: not at all, 1: per-word density)."""
WEAK = "~"
MAX_WHY = 3
WHY_MIN_SIMILARITY = 0.05

# Shared logistic coefficients, fitted on the tune half of tests/fixtures/labelled/ (bench/score.py --fit),
# then two choices made on the tune half only: the exemplar weight is raised from ~0 to 1.0 (the labelled set
# has no near-copies of seed papers, but a fetched seed paper should count as on-theme), and the intercept is
# lowered by 0.5 (tune P/R 0.94/0.96 -> 0.97/0.88; on the tune papers with full-length 2026 abstracts
# 0.78/1.00 -> 0.89/0.89), because real weeks are dominated by LLM papers that are not on these themes.
FEATURES = ("keywords", "weak_keywords", "title_keywords", "centroid", "exemplar", "context", "negatives", "category")
COEF = np.array([3.05, 1.28, 1.24, 0.7, 1.0, 2.31, -1.87, 1.69])
INTERCEPT = -5.37

# fmt: off
CONTEXT_TERMS = (
    "language model", "language models", "llm", "llms", "large language model", "chatgpt", "gpt", "gpt 2", "gpt 3",
    "gpt 4", "chatbot", "chat model", "assistant", "assistants", "claude", "llama", "gemini", "ai system",
    "ai systems", "ai safety", "ai alignment", "artificial general intelligence", "agi", "foundation model",
    "foundation models", "transformer language", "instruction-tuned", "instruction tuning", "lm", "lms",
    "alignment research", "misaligned", "misalignment", "human feedback",
)
# fmt: on
STOP_WORDS = frozenset(
    _split("""
    a about above across after again against all almost also although always am among an and another any are
    around as at be because been before being below between both but by can could did do does doing done down
    during each either else enough etc even ever every few for from further had has have having he her here hers
    him his how however i if in into is it its itself just least less like made make many may me might more most
    much must my neither no nor not of off often on once one only or other others our ours out over own per
    perhaps rather same several she should show shows shown since so some such than that the their theirs them
    themselves then there these they this those though through thus to too toward under until up upon us use used
    uses using very via was we well were what when where whether which while who whom whose why will with within
    without would yet you your we paper propose proposed present approach method methods new based work results
    show demonstrate find found also two three first second
""")
)
# Words every ML abstract uses: weighting them like topic words would make every LLM paper look on-topic.
GENERIC_WORDS = frozenset(
    _split("""
    model models language large training trained train performance task tasks data dataset datasets learning
    neural network networks result study studies state art existing prior recent recently however approaches
    methods framework frameworks various different including significant significantly improve improves improved
    improvement improvements achieve achieves achieved accuracy effective effectively efficient efficiency simple
    novel key important problem problems setting settings set number large scale across provide provides make
    makes range wide high low level levels better best strong stronger weak weaker well code open source release
    released available experiments experimental empirical empirically evaluate evaluated evaluation analysis
    analyze propose proposes introduce introduces paper work via llm llms lm lms gpt transformer transformers
    parameters parameter billion size sizes sequence sequences input inputs output outputs text generation
    generate generated generating
""")
)

# --------------------------------------------------------------------------------------------------
# Text normalisation and vectorised counting
# --------------------------------------------------------------------------------------------------

# Non-ASCII characters become one '?' byte (so character offsets stay byte offsets), then every byte that is
# not a letter or digit becomes a space. Keywords are normalised the same way.
_BYTES = bytes(c if chr(c).isalnum() and c < 128 else 32 for c in range(256)).lower()
_P = 0x100000001B3
_PINV = pow(_P, -1, 1 << 64)
_Q = np.uint64(0x9E3779B97F4A7C15)
_MASK = (1 << 64) - 1
_CHUNK_CHARS = 1_000_000
_powers: dict[str, np.ndarray] = {}


def _to_bytes(text: str) -> bytes:
    return text.encode("ascii", "replace").lower().translate(_BYTES)


def normalize(text: str | None) -> str:
    """Return `text` lower-cased with punctuation turned into single spaces (the form keywords are matched in)."""
    return " ".join(_to_bytes(text or "").decode("ascii").split())


def _power_tables(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Return P**k and P**-k (mod 2**64) for k < n, grown on demand."""
    if len(_powers.get("p", ())) < n:
        size = max(n, 2 * len(_powers.get("p", ())), 1 << 16)
        for key, base in (("p", _P), ("inv", _PINV)):
            table = np.full(size, base, dtype=np.uint64)
            table[0] = 1
            _powers[key] = np.cumprod(table, dtype=np.uint64)
    return _powers["p"], _powers["inv"]


def _word_hash(word: str) -> int:
    h, power = 0, 1
    for byte in word.encode("ascii", "replace"):
        h = (h + byte * power) & _MASK
        power = (power * _P) & _MASK
    return h


def _phrase_hash(words: Sequence[str]) -> int:
    h = _word_hash(words[0])
    for word in words[1:]:
        h = (h * int(_Q) + _word_hash(word)) & _MASK
    return h


def _variants(phrase: str) -> list[str]:
    """Return the phrase and its plural forms (last word only)."""
    head, _, last = phrase.rpartition(" ")
    head = head + " " if head else ""
    out = [phrase]
    if last.isalpha() and len(last) > 2:
        out.append(f"{head}{last}es" if last.endswith(("s", "x", "ch", "sh")) else f"{head}{last}s")
        if last.endswith("y") and last[-2] not in "aeiou":
            out.append(f"{head}{last[:-1]}ies")
    return out


class _HashTable:
    """Lookup of 64-bit hashes in a two-choice direct-addressed table: a few gathers, no binary search."""

    def __init__(self, mapping: Mapping[int, int]) -> None:
        size = 1 << max(12, (64 * max(len(mapping), 1) - 1).bit_length())
        self.mask = np.uint64(size - 1)
        for attempt in range(40):
            self.shifts = (np.uint64(attempt), np.uint64(63 - (size - 1).bit_length() - attempt))
            self.keys = np.zeros(size, dtype=np.uint64)
            self.ids = np.full(size, -1, dtype=np.int64)
            if all(self._place(key, value) for key, value in mapping.items()):
                return
        raise ValueError("could not place keyword hashes")  # pragma: no cover - needs ~40 unlucky draws

    def _place(self, key: int, value: int) -> bool:
        for shift in self.shifts:
            slot = (key >> int(shift)) & int(self.mask)
            if self.ids[slot] < 0:
                self.keys[slot], self.ids[slot] = key, value
                return True
        return False

    def lookup(self, hashes: np.ndarray) -> np.ndarray:
        """Return the id of each hash, or -1."""
        out = np.full(len(hashes), -1, dtype=np.int64)
        for shift in self.shifts:
            slots = (hashes >> shift) & self.mask
            found = self.keys[slots] == hashes
            out[found] = self.ids[slots[found]]
        return out


class Lexicon:
    """Count occurrences of fixed words and phrases in many texts at once (plurals folded in)."""

    def __init__(self, entries: Sequence[str]) -> None:
        self.entries = list(dict.fromkeys(normalize(e) for e in entries if normalize(e)))
        self.index = {e: i for i, e in enumerate(self.entries)}
        tables: dict[int, dict[int, int]] = {1: {}}
        for exact in (True, False):  # exact entries win over another entry's plural variant
            for i, entry in enumerate(self.entries):
                for form in [entry] if exact else _variants(entry)[1:]:
                    words = form.split()
                    tables.setdefault(len(words), {}).setdefault(_phrase_hash(words), i)
        self.max_words = max(tables)
        self._tables = {n: _HashTable(t) for n, t in tables.items() if t}
        firsts = {_word_hash(v.split()[0]): 0 for e in self.entries if " " in e for v in _variants(e)}
        self._first_words = _HashTable(firsts) if firsts else None

    def count(self, texts: Sequence[str]) -> sparse.csr_matrix:
        """Return a (texts x entries) matrix of occurrence counts."""
        return self.count_words(texts)[0]

    def count_words(self, texts: Sequence[str]) -> tuple[sparse.csr_matrix, np.ndarray]:
        """Return the (texts x entries) occurrence counts and the number of words in each text."""
        lengths = np.zeros(len(texts), dtype=np.int64)
        rows: list[np.ndarray] = []
        cols: list[np.ndarray] = []
        first = 0
        while first < len(texts):
            last, size = first, 0
            while last < len(texts) and (size < _CHUNK_CHARS or last == first):
                size += len(texts[last] or "") + 1
                last += 1
            self._count_chunk(texts[first:last], first, rows, cols, lengths)
            first = last
        r = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)
        c = np.concatenate(cols) if cols else np.zeros(0, dtype=np.int64)
        return sparse.csr_matrix((np.ones(len(r)), (r, c)), shape=(len(texts), len(self.entries))), lengths

    def _count_chunk(
        self, texts: Sequence[str], first: int, rows: list[np.ndarray], cols: list[np.ndarray], lengths: np.ndarray
    ) -> None:
        chars = np.fromiter((len(t or "") + 1 for t in texts), dtype=np.int64, count=len(texts))
        doc_starts = np.concatenate(([0], np.cumsum(chars)[:-1]))
        arr = np.frombuffer(_to_bytes(" ".join(t or "" for t in texts) + " "), dtype=np.uint8)
        is_word = arr != 32
        edges = np.flatnonzero(np.diff(np.concatenate(([False], is_word))))  # alternating word starts and ends
        if len(edges) == 0:
            return
        powers, inverse = _power_tables(len(arr))
        # A word's hash is sum(byte_k * P**(pos_k)) over the chunk, shifted back by P**-start: sum(byte_k * P**k).
        sums = np.add.reduceat(arr * powers[: len(arr)], edges)[::2]
        starts = edges[::2]
        hashes = sums * inverse[starts]
        doc_of_word = np.searchsorted(doc_starts, starts, side="right") - 1 + first
        lengths[first : first + len(texts)] = np.bincount(doc_of_word - first, minlength=len(texts))
        ids = self._tables[1].lookup(hashes) if 1 in self._tables else np.full(len(hashes), -1)
        hit = np.flatnonzero(ids >= 0)
        rows.append(doc_of_word[hit])
        cols.append(ids[hit])
        if self._first_words is None:
            return
        cand = np.flatnonzero(self._first_words.lookup(hashes) >= 0)
        current = hashes[cand]
        for n in range(2, self.max_words + 1):
            keep = cand + n - 1 < len(hashes)
            cand, current = cand[keep], current[keep]
            current = current * _Q + hashes[cand + n - 1]
            if n not in self._tables:
                continue
            ids = self._tables[n].lookup(current)
            hit = np.flatnonzero((ids >= 0) & (doc_of_word[cand] == doc_of_word[cand + n - 1]))
            rows.append(doc_of_word[cand[hit]])
            cols.append(ids[hit])


# --------------------------------------------------------------------------------------------------
# The matcher
# --------------------------------------------------------------------------------------------------


def is_weak(keyword: str) -> bool:
    """Return True for a keyword marked weak with a leading "~" (a generic word that only supports a match)."""
    return keyword.startswith(WEAK)


def paper_body(paper: Paper) -> str:
    """Return a paper's abstract, or the best excerpt a seed source gave."""
    return paper.abstract or next((s.text for s in paper.sources if s.text), "") or ""


def paper_text(paper: Paper) -> str:
    """Return the text a paper is matched on: title and abstract."""
    return f"{paper.title or ''}. {paper_body(paper)}"


def _l2_rows(matrix: sparse.csr_matrix) -> sparse.csr_matrix:
    norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1))).ravel()
    norms[norms == 0] = 1.0
    return sparse.csr_matrix(sparse.diags(1.0 / norms) @ matrix)


def _exemplar_hits(exemplar: str, paper: Paper) -> bool:
    want = normalize(exemplar)
    if not want:
        return False
    texts = [paper.title, paper.abstract] + [s.title for s in paper.sources] + [s.text for s in paper.sources]
    for text in texts:
        have = normalize(text)
        if have and (have.startswith(want) or (len(have) >= 40 and want.startswith(have))):
            return True
    return False


@dataclass
class Features:
    """Per (paper, theme) feature arrays, each shaped (papers, themes), plus what the reasons need."""

    keywords: np.ndarray
    weak_keywords: np.ndarray
    title_keywords: np.ndarray
    centroid: np.ndarray
    exemplar: np.ndarray
    context: np.ndarray
    negatives: np.ndarray
    words: np.ndarray
    """Words in title + abstract, per paper."""
    category: np.ndarray
    """1 if the paper's primary arXiv category is one of the theme's (or unknown), 0.5 if cross-listed, else 0."""
    doc_vectors: sparse.csr_matrix
    keyword_hits: sparse.csr_matrix
    seed_similarity: np.ndarray

    def stack(self) -> np.ndarray:
        """Return the features as one (papers, themes, len(FEATURES)) array in COEF order."""
        # Keyword hits grow with abstract length; discount them beyond the length the coefficients were fitted on.
        damp = (np.minimum(1.0, REFERENCE_WORDS / np.maximum(self.words, 1)) ** LENGTH_EXPONENT)[:, None]
        return np.stack(
            [
                np.log1p(self.keywords * damp),
                np.log1p(self.weak_keywords * damp),
                np.log1p(self.title_keywords),
                self.centroid,
                self.exemplar,
                np.broadcast_to(self.context[:, None], self.keywords.shape),
                np.log1p(self.negatives),
                self.category,
            ],
            axis=-1,
        )


class Matcher:
    """Themes compiled against the seed catalog; score papers with `score`."""

    def __init__(self, themes: Sequence[Theme], seeds: Sequence[Paper], thresholds: Mapping[str, float]) -> None:
        self.themes = tuple(themes)
        self.seeds = tuple(seeds)
        self.thresholds = np.array([thresholds.get(t.name, t.threshold or DEFAULT_THRESHOLD) for t in self.themes])
        self.exemplars = np.zeros((len(self.themes), len(self.seeds)), dtype=bool)
        for ti, theme in enumerate(self.themes):
            for si, seed in enumerate(self.seeds):
                self.exemplars[ti, si] = any(_exemplar_hits(e, seed) for e in theme.exemplars)
        self._build_lexicon()
        self._build_profiles()
        _power_tables(_CHUNK_CHARS + 65536)

    @classmethod
    def build(
        cls, themes: Sequence[Theme], seed_papers: Sequence[Paper], thresholds: Mapping[str, float] | None = None
    ) -> Matcher:
        """Return a matcher for `themes`, using `seed_papers` as exemplars and nearest neighbours."""
        return cls(themes, seed_papers, thresholds or {})

    def _build_lexicon(self) -> None:
        profile_texts = [self._profile_text(t) for t in self.themes]
        seed_texts = [paper_text(p) for p in self.seeds]
        words = {w for text in profile_texts + seed_texts for w in normalize(text).split()}
        vocab = sorted(
            w for w in words if w not in STOP_WORDS and w not in GENERIC_WORDS and len(w) > 1 and not w.isdigit()
        )
        phrases = [k for t in self.themes for k in t.keywords + t.negative_keywords] + list(CONTEXT_TERMS)
        self.lexicon = Lexicon(vocab + phrases)
        self.vocab_ids = np.array([self.lexicon.index[normalize(w)] for w in vocab], dtype=np.int64)
        self.vocab = vocab
        index = self.lexicon.index
        n_entries = len(self.lexicon.entries)
        self.keyword_matrix = np.zeros((n_entries, len(self.themes)))
        self.word_matrix = np.zeros((n_entries, len(self.themes)))
        self.negative_matrix = np.zeros((n_entries, len(self.themes)))
        # Keywords that normalise to nothing (e.g. all non-ASCII) can never be found in a text: skip them.
        keywords = [[k for k in t.keywords if normalize(k)] for t in self.themes]
        for ti, theme in enumerate(self.themes):
            for k in keywords[ti]:
                (self.word_matrix if is_weak(k) else self.keyword_matrix)[index[normalize(k)], ti] = 1.0
            for k in theme.negative_keywords:
                if normalize(k):
                    self.negative_matrix[index[normalize(k)], ti] = 1.0
        self.context_ids = np.array(sorted({index[normalize(c)] for c in CONTEXT_TERMS}), dtype=np.int64)
        self.keyword_names = [{index[normalize(k)]: k.lstrip(WEAK) for k in reversed(ks)} for ks in keywords]
        # Reasons list phrases before single words, each in config order.
        self.keyword_rank = [
            {index[normalize(k)]: (is_weak(k), " " not in normalize(k), r) for r, k in reversed(list(enumerate(ks)))}
            for ks in keywords
        ]

    @staticmethod
    def _profile_text(theme: Theme) -> str:
        return " ".join([theme.label, theme.description, *theme.keywords])

    def _tfidf(self, counts: sparse.csr_matrix) -> sparse.csr_matrix:
        tf = counts[:, self.vocab_ids].tocsr()
        tf.data = np.log1p(tf.data)
        return _l2_rows(sparse.csr_matrix(tf.multiply(self.idf[None, :])))

    def _build_profiles(self) -> None:
        profile_counts = self.lexicon.count([self._profile_text(t) for t in self.themes])
        seed_counts = self._counts(self.seeds)[0]
        docs = sparse.vstack([profile_counts, seed_counts]).tocsr()[:, self.vocab_ids]
        df = np.asarray((docs > 0).sum(axis=0)).ravel()
        self.idf = np.log((1 + docs.shape[0]) / (1 + df)) + 1.0
        self.seed_vectors = self._tfidf(seed_counts)
        profiles = self._tfidf(profile_counts).toarray()
        self.profile_words = profiles > 0  # reasons only name words the theme's own description uses
        seeds = self.seed_vectors.toarray()
        centroids = []
        for ti in range(len(self.themes)):
            members = seeds[self.exemplars[ti]]
            centroid = profiles[ti] + (members.mean(axis=0) if len(members) else 0.0)
            centroids.append(centroid / (np.linalg.norm(centroid) or 1.0))
        self.centroids = np.array(centroids).reshape(len(self.themes), len(self.vocab))

    def _counts(self, papers: Sequence[Paper]) -> tuple[sparse.csr_matrix, sparse.csr_matrix, np.ndarray]:
        """Return (title + abstract counts with the title counted twice, title counts, words per paper)."""
        titles, title_words = self.lexicon.count_words([p.title or "" for p in papers])
        bodies, body_words = self.lexicon.count_words([paper_body(p) for p in papers])
        return sparse.csr_matrix(bodies + 2 * titles), titles, title_words + body_words

    def features(self, papers: Sequence[Paper], exclude_seed: Sequence[int] | None = None) -> Features:
        """Return the feature arrays for `papers`; `exclude_seed[i]` hides seed i from paper i (for seeds)."""
        counts, titles, words = self._counts(papers)
        present = counts.copy()
        present.data[:] = 1.0
        title_present = titles.copy()
        title_present.data[:] = 1.0
        vectors = self._tfidf(counts)
        seed_sim = (
            np.asarray((vectors @ self.seed_vectors.T).todense()) if len(self.seeds) else np.zeros((len(papers), 0))
        )
        if exclude_seed is not None:
            for i, s in enumerate(exclude_seed):
                if s >= 0:
                    seed_sim[i, s] = 0.0
        exemplar = np.zeros((len(papers), len(self.themes)))
        for ti in range(len(self.themes)):
            if self.exemplars[ti].any():
                exemplar[:, ti] = seed_sim[:, self.exemplars[ti]].max(axis=1)
        context = (np.asarray(present[:, self.context_ids].sum(axis=1)).ravel() > 0).astype(float)
        return Features(
            keywords=np.asarray(present @ self.keyword_matrix),
            weak_keywords=np.asarray(present @ self.word_matrix),
            title_keywords=np.asarray(title_present @ (self.keyword_matrix + 0.5 * self.word_matrix)),
            centroid=np.asarray(vectors @ self.centroids.T),
            exemplar=exemplar,
            context=context,
            negatives=np.asarray(present @ self.negative_matrix),
            words=words.astype(float),
            category=self._category_fit(papers),
            doc_vectors=vectors,
            keyword_hits=sparse.csr_matrix(
                present.multiply(np.asarray((self.keyword_matrix + self.word_matrix).any(axis=1))[None, :])
            ),
            seed_similarity=seed_sim,
        )

    def _category_fit(self, papers: Sequence[Paper]) -> np.ndarray:
        """Return (papers, themes): 1 primary category on-theme or unknown, 0.5 cross-listed there, 0 elsewhere."""
        out = np.ones((len(papers), len(self.themes)))
        wanted = [set(t.categories) for t in self.themes]
        cache: dict[tuple[str | None, tuple[str, ...]], list[float]] = {}
        for i, paper in enumerate(papers):
            key = (paper.primary_category, paper.categories)
            row = cache.get(key)
            if row is None:
                primary = paper.primary_category or (paper.categories[0] if paper.categories else None)
                row = cache[key] = [
                    1.0
                    if primary is None or not cats or primary in cats
                    else 0.5
                    if cats & set(paper.categories)
                    else 0.0
                    for cats in wanted
                ]
            out[i] = row
        return out

    @staticmethod
    def probabilities(features: Features) -> np.ndarray:
        """Return the (papers, themes) scores in [0, 1] from the shared coefficients."""
        z = features.stack() @ COEF + INTERCEPT
        return np.asarray(1.0 / (1.0 + np.exp(-z)), dtype=float)

    def score_matrix(self, papers: Sequence[Paper]) -> np.ndarray:
        """Return only the (papers, themes) score matrix: the fast path for bulk ranking."""
        return self.probabilities(self.features(papers))

    def score(self, papers: Sequence[Paper]) -> list[list[ThemeScore]]:
        """Return one ThemeScore per theme for each paper; `why` and `terms` are filled where it matched."""
        if not papers:
            return []
        feats = self.features(papers)
        return self._theme_scores(feats, self.probabilities(feats))

    def _theme_scores(self, feats: Features, scores: np.ndarray) -> list[list[ThemeScore]]:
        pair_doc, pair_theme = np.nonzero(scores >= self.thresholds[None, :])
        whys = self._why(feats, pair_doc, pair_theme)
        terms = self._terms(feats, pair_doc, pair_theme)
        reasons: dict[int, dict[int, tuple[tuple[str, ...], tuple[str, ...]]]] = {}
        for i, t, w, k in zip(pair_doc.tolist(), pair_theme.tolist(), whys, terms):
            reasons.setdefault(i, {})[t] = (w, k)
        names = [t.name for t in self.themes]
        # ThemeScore is frozen, so equal non-matches can share one object (most of 20,000 x themes).
        shared: list[dict[float, ThemeScore]] = [{} for _ in names]

        def unmatched(ti: int, value: float) -> ThemeScore:
            score = shared[ti].get(value)
            if score is None:
                score = shared[ti][value] = ThemeScore(names[ti], value, False)
            return score

        out: list[list[ThemeScore]] = []
        for i, row in enumerate(np.round(scores, 4).tolist()):
            found = reasons.get(i)
            if found is None:
                out.append([unmatched(ti, value) for ti, value in enumerate(row)])
                continue
            out.append(
                [
                    ThemeScore(names[ti], value, True, *found[ti]) if ti in found else unmatched(ti, value)
                    for ti, value in enumerate(row)
                ]
            )
        return out

    def _why(self, feats: Features, docs: np.ndarray, themes: np.ndarray) -> list[tuple[str, ...]]:
        """Return the 1-3 nearest seed papers for each (doc, theme) pair, preferring the theme's own seeds."""
        if not len(self.seeds) or not len(docs):
            return [() for _ in docs]
        sims = feats.seed_similarity[docs]
        members = self.exemplars[themes] | (sims > 0.35)
        members[~members.any(axis=1)] = True
        ranked = np.where(members, sims, -1.0)
        order = np.argsort(-ranked, axis=1, kind="stable")[:, :MAX_WHY]
        titles = [p.display_title for p in self.seeds]
        out = []
        for row, picks in zip(ranked, order.tolist()):
            good = [titles[s] for s in picks if row[s] >= WHY_MIN_SIMILARITY]
            out.append(tuple(good) or (titles[picks[0]],))
        return out

    def _terms(self, feats: Features, docs: np.ndarray, themes: np.ndarray) -> list[tuple[str, ...]]:
        """Return the theme keywords found in each (doc, theme) pair, topped up with its most on-theme words."""
        hits = feats.keyword_hits
        per_doc = {int(i): hits.indices[hits.indptr[i] : hits.indptr[i + 1]].tolist() for i in np.unique(docs)}
        out = []
        vectors = feats.doc_vectors
        for i, t in zip(docs.tolist(), themes.tolist()):
            names, rank = self.keyword_names[t], self.keyword_rank[t]
            terms = _drop_plurals(
                [names[c] for c in sorted((c for c in per_doc[i] if c in names), key=rank.__getitem__)]
            )
            if len(terms) < 2:
                cols = vectors.indices[vectors.indptr[i] : vectors.indptr[i + 1]]
                weights = vectors.data[vectors.indptr[i] : vectors.indptr[i + 1]] * self.centroids[t, cols]
                weights = weights * self.profile_words[t, cols]
                top = np.argsort(-weights, kind="stable")[:3]
                terms += [self.vocab[c] for c in cols[top[weights[top] > 0]] if self.vocab[c] not in terms]
            out.append(tuple(terms[:6]))
        return out


def _drop_plurals(terms: list[str]) -> list[str]:
    """Drop a term when its singular (or plural) is already listed: "preferences" after "preference"."""
    seen: set[str] = set()
    out = []
    for term in terms:
        forms = _forms(term)
        if not forms & seen:
            out.append(term)
        seen |= forms
    return out


@functools.lru_cache(maxsize=4096)
def _forms(term: str) -> frozenset[str]:
    base = normalize(term)
    return frozenset([base, *_variants(base)])


# --------------------------------------------------------------------------------------------------
# Core-facing API
# --------------------------------------------------------------------------------------------------


def thresholds_from_config(themes: Sequence[Theme], section: Any) -> dict[str, float]:
    """Return per-theme thresholds from `[matching]`: `threshold` (all themes) and `thresholds = {name = x}`."""
    if not isinstance(section, Mapping):
        raise ConfigError("[matching] in your config file must be a table", variable="matching")
    names = [t.name for t in themes]
    out: dict[str, float] = {}
    default = section.get("threshold")
    if default is not None:
        out = {t.name: _check_threshold(default, "matching.threshold") for t in themes}
    per_theme = section.get("thresholds", {})
    if not isinstance(per_theme, Mapping):
        raise ConfigError("[matching] thresholds must be a table such as {rlhf = 0.6}", variable="matching.thresholds")
    for name, value in per_theme.items():
        if name not in names:
            from .themes import suggest_themes

            hint = suggest_themes(themes, name)
            raise ConfigError(
                f"[matching] thresholds names an unknown theme {name!r}"
                + (f" (did you mean {hint[0]!r}?)" if hint else "")
                + f"; themes: {', '.join(names)}",
                variable=f"matching.thresholds.{name}",
            )
        out[name] = _check_threshold(value, f"matching.thresholds.{name}")
    return out


def _check_threshold(value: Any, variable: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 < float(value) < 1.0:
        raise ConfigError(
            f"{variable} must be a number between 0 and 1 (default 0.5), got {value!r}", variable=variable
        )
    return float(value)


def get_matcher(core: Core) -> Matcher:
    """Return the matcher for the core's themes and seed catalog, memoised on the catalog version."""
    from . import catalog

    version = catalog.catalog_version(core)
    cached = core.cache.get("matcher")
    if isinstance(cached, tuple) and cached[0] == version:
        return cached[1]  # type: ignore[no-any-return]
    thresholds = thresholds_from_config(core.themes, core.settings.section("matching"))
    matcher = Matcher.build(core.themes, catalog.seed_papers(core), thresholds)
    core.cache["matcher"] = (version, matcher)
    return matcher


def tag_seeds(themes: Sequence[Theme], seed_papers: Sequence[Paper]) -> list[tuple[str, ...]]:
    """Return the themes each seed paper belongs to: its exemplar themes plus themes it clearly matches."""
    if not seed_papers or not themes:
        return [() for _ in seed_papers]
    matcher = Matcher.build(themes, seed_papers)
    feats = matcher.features(seed_papers, exclude_seed=range(len(seed_papers)))
    scores = matcher.probabilities(feats)
    out = []
    for i in range(len(seed_papers)):
        names = [
            t.name
            for ti, t in enumerate(matcher.themes)
            if matcher.exemplars[ti, i] or scores[i, ti] >= matcher.thresholds[ti]
        ]
        out.append(tuple(names))
    return out


def score_and_store(core: Core, papers: Sequence[Paper]) -> dict[int, list[ThemeScore]]:
    """Score `papers` (which must have ids) against every theme, store the scores, and return them by paper id."""
    from . import catalog

    with_ids = [p for p in papers if p.id is not None]
    if not with_ids:
        return {}
    scores = get_matcher(core).score(with_ids)
    result = {p.id: s for p, s in zip(with_ids, scores) if p.id is not None}
    stored: dict[int, Sequence[ThemeScore]] = dict(result)
    catalog.store_many_scores(core, stored)
    return result
