"""The streaming Atom/RSS parsers over real arXiv bytes (tests/fixtures/realdata, see SOURCES.md §1-3)."""

from __future__ import annotations

from collections import Counter

import pytest
from conftest import REALDATA

from digests.arxiv_feed import ArxivFeedError, parse_atom, parse_rss, split_arxiv_id


def page(name: str):
    return parse_atom((REALDATA / name).read_bytes())


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("http://arxiv.org/abs/2401.01234v2", ("2401.01234", 2)),
        ("http://arxiv.org/abs/hep-th/9711200v3", ("hep-th/9711200", 3)),
        ("hep-th/9711200", ("hep-th/9711200", None)),
        ("oai:arXiv.org:2608.11232v1", ("2608.11232", 1)),
        ("https://arxiv.org/abs/1706.03762", ("1706.03762", None)),
    ],
)
def test_split_arxiv_id(raw, expected):
    assert split_arxiv_id(raw) == expected


def test_current_format_entry_every_field():
    p = page("arxiv_api_2026_idlist_1207.7214.xml").papers[0]
    assert (p.arxiv_id, p.version, p.origin) == ("1207.7214", 2, "arxiv")
    assert p.title.startswith("Observation of a new particle")
    assert p.authors == ("The ATLAS Collaboration",)  # leading space stripped
    assert p.published == "2012-07-31T11:59:59+00:00" and p.updated == "2012-08-31T19:29:54+00:00"
    assert p.doi == "10.1016/j.physletb.2012.08.020"
    assert p.journal_ref == "Phys.Lett. B716 (2012) 1-29"
    assert p.comment.startswith("24 pages plus author list")
    assert p.categories == ("hep-ex",) and p.primary_category == "hep-ex"


def test_legacy_format_crosslist_wrapped_title_and_summary():
    result = page("arxiv_api_2016_legacy_idlist_1111.2011v2_v2_doi_journalref_crosslist.xml")
    p = result.papers[0]
    assert (result.total, result.start, result.per_page) == (1, 0, 10)
    assert (p.arxiv_id, p.version) == ("1111.2011", 2)
    assert p.title == "Quantum Criticality for Extended Nodes on a Bethe Lattice in the Large Connectivity Limit"
    assert p.abstract.startswith("Theoretical description of anisotropic systems, such as layered superconductors")
    assert "\n" not in p.abstract and "  " not in p.abstract
    assert p.primary_category == "cond-mat.str-el" and p.categories == ("cond-mat.str-el", "cond-mat.stat-mech")
    assert p.published != p.updated and p.doi == "10.1103/PhysRevB.85.115117"


def test_old_style_id_with_affiliations():
    p = page("arxiv_api_2026_idlist_astro-ph_0601001_oldstyle_journalref_affiliation.xml").papers[0]
    assert (p.arxiv_id, p.version) == ("astro-ph/0601001", 1)
    assert "Ohio State" in p.affiliations and p.journal_ref == "ActaAstron.56:1-50,2006"
    assert not p.abstract.startswith(" ")


@pytest.mark.parametrize(
    "name, arxiv_id, version",
    [
        ("arxiv_api_2026_idlist_hep-th_9711200.xml", "hep-th/9711200", 3),
        ("arxiv_api_2026_idlist_hep-ex_0406020v1.xml", "hep-ex/0406020", 1),
        ("arxiv_api_2026_idlist_1706.03762_v7_multiversion.xml", "1706.03762", 7),
        ("arxiv_api_2026_idlist_2104.12255v1_versioned_id.xml", "2104.12255", 1),
        ("arxiv_api_docs_usermanual_2007_typical_response.xml", "hep-ex/0307015", None),
    ],
)
def test_ids_and_versions(name, arxiv_id, version):
    p = page(name).papers[0]
    assert (p.arxiv_id, p.version) == (arxiv_id, version)


def test_utf8_authors_and_many_of_them():
    p = page("arxiv_api_2026_idlist_1707.08567_34_authors_utf8.xml").papers[0]
    assert len(p.authors) == 34 and "Dirk Wübben" in p.authors


def test_search_page_totals_and_every_entry():
    result = page("arxiv_api_2026_search_all-testing_start10_max10.xml")
    assert (result.total, result.start, result.per_page, len(result.papers)) == (214881, 10, 10, 10)
    big = page("arxiv_api_2026_search_all-testing_start0_max100.xml")
    assert len({p.arxiv_id for p in big.papers}) == 100
    assert all(p.title and p.abstract and p.authors and p.categories for p in big.papers)
    assert not any("\n" in p.abstract for p in big.papers)


@pytest.mark.parametrize(
    "name, message",
    [
        ("arxiv_api_2026_error_incorrect_id_format_http400.xml", "incorrect id format for abc"),
        ("arxiv_api_2026_error_start_must_be_an_integer_http400.xml", "start must be an integer"),
        (
            "arxiv_api_2025-06_legacy_error_incorrect_id_format_PARTLY_RECONSTRUCTED.xml",
            "incorrect id format for https",
        ),
        ("arxiv_api_docs_usermanual_2007_error_malformed_id.xml", "incorrect id format for 1234.12345"),
    ],
)
def test_error_entry_is_reported_not_parsed_as_a_paper(name, message):
    result = page(name)
    assert result.papers == [] and result.error.startswith(message)


@pytest.mark.parametrize(
    "name", ["arxiv_api_2026_idlist_0000.0000_empty_result.xml", "arxiv_api_2026_search_zero_results.xml"]
)
def test_genuinely_empty(name):
    result = page(name)
    assert result.total == 0 and result.papers == [] and result.error is None


@pytest.mark.parametrize("cut", [0, 100, 3000, -20])
def test_truncated_body_raises_feed_error(cut):
    body = (REALDATA / "arxiv_api_2026_search_all-testing_start0_max10.xml").read_bytes()[:cut]
    with pytest.raises(ArxivFeedError, match="truncated or malformed|empty body"):
        parse_atom(body)


def test_not_xml_and_not_atom_raise_feed_error():
    with pytest.raises(ArxivFeedError):
        parse_atom((REALDATA / "arxiv_web_2026_rate_exceeded_body.txt").read_bytes())
    with pytest.raises(ArxivFeedError, match="expected an Atom"):
        parse_atom((REALDATA / "arxiv_rss_2026-08-13_cs.CL_new_cross_replace_replace-cross.xml").read_bytes())


def test_parse_atom_accepts_chunks():
    body = (REALDATA / "arxiv_api_2026_search_all-testing_start0_max100.xml").read_bytes()
    chunks = [body[i : i + 777] for i in range(0, len(body), 777)]
    assert parse_atom(chunks).papers == parse_atom(body).papers


def test_rss_announce_types_and_fields():
    items = parse_rss((REALDATA / "arxiv_rss_2026-08-13_cs.CL_new_cross_replace_replace-cross.xml").read_bytes())
    assert Counter(i.announce_type for i in items) == {"new": 56, "cross": 36, "replace": 32, "replace-cross": 15}
    first = items[0].paper
    assert (first.arxiv_id, first.version, first.announced) == ("2608.11232", 1, "2026-08-13")
    assert first.authors == ("Ruoxi Zhao", "Maziar Raissi")
    assert first.abstract.startswith("Evaluating LLM coding agents") and "Announce Type" not in first.abstract
    assert any(i.paper.doi for i in items) and any(i.paper.journal_ref for i in items)
    assert all(i.paper.categories for i in items)


def test_entry_without_id_is_skipped():
    body = (REALDATA / "arxiv_api_2026_idlist_1207.7214.xml").read_bytes()
    body = body.replace(b"<id>http://arxiv.org/abs/1207.7214v2</id>", b"")
    assert parse_atom(body).papers == []
