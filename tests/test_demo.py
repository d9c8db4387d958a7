"""`reconcile demo`, the README's first command: the whole invocation on a seeded shop."""

from __future__ import annotations

from click.testing import CliRunner

from reconcile.cli import main
from reconcile.demo.shop import KEY_ENV, URI_ENV


def test_demo_matches_the_seeded_mix_and_reports_refunds_disputes_and_items(tmp_path, monkeypatch):
    monkeypatch.setenv(KEY_ENV, "")  # the demo sets these; monkeypatch puts them back afterwards
    monkeypatch.setenv(URI_ENV, "")
    result = CliRunner().invoke(main, ["demo", "--report-dir", str(tmp_path)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "demo: every outcome matches the seeded mix" in result.output
    (html,) = tmp_path.glob("reconcile-*.html")
    text = html.read_text()
    assert text.index('id="headline"') < text.index('id="queue"') < text.index("What this run found")
    assert "Refunds and disputes created in this window" in text and "Dispute open" in text
    assert "Next: refund the second charge" in text and "Trend, last 14 days" in text
