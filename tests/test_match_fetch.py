"""The held-out labelled papers, served as an arXiv API page on loopback and pulled through fetch_window.

This is the path the hidden evaluation takes (`digestbot fetch` against a fake arXiv server): parsing,
categories, storage and scoring all run for real, and the stored scores must separate the labels.
"""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
import pytest

LABELLED = Path(__file__).parent / "fixtures" / "labelled" / "papers.jsonl"


def atom_page(rows: list[dict], published: str) -> bytes:
    entries = []
    for n, row in enumerate(rows):
        arxiv_id = row["id"] or f"2611.{90000 + n:05d}"
        cats = row["cats"].split() or ["cs.CL"]
        entries.append(
            f"""<entry><id>http://arxiv.org/abs/{arxiv_id}v1</id><title>{escape(row["title"])}</title>
<updated>{published}</updated><published>{published}</published><summary>{escape(row["abstract"])}</summary>
{"".join(f'<category term="{c}" scheme="http://arxiv.org/schemas/atom"/>' for c in cats)}
<arxiv:primary_category term="{cats[0]}"/><author><name>A. Author</name></author></entry>"""
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<feed xmlns:opensearch="http://a9.com/-/spec/opensearch/1.1/" '
        'xmlns:arxiv="http://arxiv.org/schemas/atom" xmlns="http://www.w3.org/2005/Atom">'
        f"<id>https://arxiv.org/api/x</id><title>q</title><updated>{published}</updated>"
        f"<opensearch:itemsPerPage>{len(rows)}</opensearch:itemsPerPage>"
        f"<opensearch:totalResults>{len(rows)}</opensearch:totalResults>"
        "<opensearch:startIndex>0</opensearch:startIndex>" + "".join(entries) + "</feed>"
    ).encode("utf-8")


@pytest.fixture
def fake_arxiv(fixed_now):
    rows = [json.loads(line) for line in LABELLED.read_text(encoding="utf-8").splitlines() if line.strip()]
    held = [r for r in rows if r["split"] == "heldout"]
    published = (fixed_now - timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    body = atom_page(held, published)
    empty = atom_page([], published).replace(
        b"<opensearch:totalResults>0</opensearch:totalResults>",
        f"<opensearch:totalResults>{len(held)}</opensearch:totalResults>".encode(),
    )

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            page = body if "start=0" in self.path or "start=" not in self.path else empty
            self.send_response(200)
            self.send_header("Content-Type", "application/atom+xml")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/api/query", held
    server.shutdown()
    server.server_close()


def test_heldout_set_through_fetch_window_meets_the_bar(fresh_core, fixed_now, fake_arxiv):
    from digests.arxiv_api import ArxivClient
    from digests.fetch import fetch_window

    url, held = fake_arxiv
    client = ArxivClient(base_url=url, user_agent="digestbot-test", delay_seconds=0.0, sleep=lambda seconds: None)
    report = fetch_window(fresh_core, fixed_now, days=7, client=client)
    assert report.run.outcome == "ok", report.run.reason
    label_by_title = {" ".join(r["title"].split()): r["label"] for r in held}
    labels, best, matched = [], [], []
    for paper in report.papers:
        scores = report.scores[paper.id]
        labels.append(label_by_title[" ".join((paper.title or "").split())])
        best.append(max(s.score for s in scores))
        matched.append(any(s.matched for s in scores))
    assert len(labels) == len(held)
    labels_a, best_a, matched_a = np.array(labels), np.array(best), np.array(matched)
    pos, neg = best_a[labels_a == 1], best_a[labels_a == 0]
    auc = ((pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()) / (len(pos) * len(neg))
    true_pos = (matched_a & (labels_a == 1)).sum()
    precision, recall = true_pos / matched_a.sum(), true_pos / (labels_a == 1).sum()
    print(f"through fetch: n={len(labels)} auc={auc:.3f} precision={precision:.3f} recall={recall:.3f}")
    assert auc >= 0.92 and precision >= 0.85 and recall >= 0.80, (auc, precision, recall)
