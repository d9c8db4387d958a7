"""The report in a real browser: headless Chromium (the system's, Debian's `chromium`) driven by Playwright.

The demo's report, a backfill of ~2,500 charges (the demo mix seeded many times), a report after people decided
hundreds of items, and one with every section filled, at two phones' widths and a desktop's: the page never scrolls
sideways (a wide table scrolls inside its own box), the work queue is the first table, every Stripe link is there
and visible, codes do not wrap, and the page without any <style> lays out the same. Screenshots go to the test's
tmp dir. Where Chromium or Playwright is missing, the tests that need the browser are skipped with the reason
(in CI that fails the run: tests/conftest.py); the size and CSV test needs no browser and always runs.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from report_pages import BACKFILL_COPIES, shop_report

WIDTHS = (360, 420, 1280)
PHONES = (360, 420)
REPORTS = ["demo", "backfill", "decided", "full"]
DECIDED_COPIES, DECIDED = 24, 380  # ~400 items, 380 of them taken by people (190 acknowledged, 190 accepted)
STRIPE_LINK = 'a[href^="https://dashboard.stripe.com/"]'


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import Error, sync_playwright
    except ImportError:
        pytest.skip("Playwright for Python is not installed (pip install -e '.[test]')")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("no Chromium on PATH (Debian: apt-get install chromium); the browser tests need it")
    with sync_playwright() as p:
        try:
            launched = p.chromium.launch(executable_path=chromium)
        except Error as error:
            pytest.skip(f"Chromium at {chromium} does not start: {str(error).splitlines()[0]}")
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def reports(tmp_path_factory) -> dict[str, Path]:
    """The demo's report, a ~2,500-charge backfill's, each with report.order_url set, a report after people
    acknowledged and accepted hundreds of items, with a year-long trend, and one with every section filled
    (decided items, earlier runs' changes, refunds and disputes, resolved items, the trend). Made without a browser:
    the size and CSV checks below run wherever the tests run."""
    base = tmp_path_factory.mktemp("reports")
    return {
        "demo": shop_report(base / "demo"),
        "backfill": shop_report(base / "backfill", copies=BACKFILL_COPIES),
        "decided": shop_report(base / "decided", copies=DECIDED_COPIES, decided=DECIDED, trend_days=366),
        "full": shop_report(base / "full", decided=6, every_section=True),
    }


def open_page(browser, html: Path, width: int, text: str | None = None) -> Any:
    page = browser.new_page(viewport={"width": width, "height": 900})
    if text is None:
        page.goto(html.as_uri())
    else:
        page.set_content(text, wait_until="load")
    return page


def layout(page) -> dict[str, Any]:
    """What the checks compare: the page's widths, the first table, and every Stripe link's box."""
    return page.evaluate(
        """(selector) => ({
            scrollWidth: document.documentElement.scrollWidth,
            clientWidth: document.documentElement.clientWidth,
            innerWidth: window.innerWidth,
            // Tables reaching past the page's right edge that no box of theirs scrolls (overflow-x auto or scroll).
            unboxed: [...document.querySelectorAll('table')].filter(t => {
                if (t.getBoundingClientRect().right <= window.innerWidth + 0.5) return false;
                for (let e = t.parentElement; e; e = e.parentElement) {
                    if (['auto', 'scroll'].includes(getComputedStyle(e).overflowX)) return false;
                }
                return true;
            }).length,
            // Lists of rows (the work queue, the automatic outcomes...: tbody valign=top) whose box scrolls sideways.
            listsScrolling: [...document.querySelectorAll('tbody[valign="top"]')].map(b => b.closest('table'))
                .filter(t => t.parentElement.scrollWidth > t.parentElement.clientWidth + 1).length,
            lists: document.querySelectorAll('tbody[valign="top"]').length,
            firstTable: document.querySelector('table') && document.querySelector('table').id,
            queue: (() => { const q = document.getElementById('queue'); if (!q) return null;
                             const r = q.getBoundingClientRect(); return [r.x, r.y, r.width, r.height]; })(),
            links: [...document.querySelectorAll(selector)].map(a => {
                const r = a.getBoundingClientRect();
                return {href: a.getAttribute('href'), x: r.x, y: r.y, w: r.width, h: r.height,
                        lineHeight: parseFloat(getComputedStyle(a).lineHeight) || 18};
            }),
        })""",
        STRIPE_LINK,
    )


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("name", REPORTS)
def test_the_report_reads_as_a_work_list_at_phone_and_desktop_width(browser, reports, name, width, tmp_path):
    html = reports[name]
    page = open_page(browser, html, width)
    try:
        page.screenshot(path=str(tmp_path / f"report-{name}-{width}.png"), full_page=True)
        seen = layout(page)
        assert seen["scrollWidth"] <= seen["clientWidth"] == width  # no horizontal scroll of the page
        assert seen["scrollWidth"] <= seen["innerWidth"] and seen["unboxed"] == 0  # a wide table scrolls in its box
        # Every list reads without scrolling sideways: a long id (a Checkout Session's has 66 characters, an
        # order's label and id together pass a phone's column) breaks where it must; only money tables scroll.
        assert seen["lists"] >= 2 and seen["listsScrolling"] == 0
        assert seen["firstTable"] == "queue"  # the work queue is the first table
        assert page.locator("#headline").inner_text().split("\n")[0].endswith("at stake")
        links = seen["links"]
        assert links, "no Stripe link in the report"
        for link in links:
            where = page.locator(f'a[href="{link["href"]}"]').first
            assert where.is_visible(), link
            assert link["x"] >= 0 and link["x"] + link["w"] <= width + 0.5, link  # on the page, not cut off
            assert link["h"] < 2 * link["lineHeight"], link  # an id never wraps mid-way
        # No wide table spills past its own box at desktop width; on a phone it may scroll inside it.
        if width > 1000:
            spill = page.evaluate(
                "[...document.querySelectorAll('table')].filter(t => t.getBoundingClientRect().right >"
                " t.parentElement.getBoundingClientRect().right + 0.5).length"
            )
            assert spill == 0
    finally:
        page.close()


@pytest.mark.parametrize("name", REPORTS)
def test_every_stripe_object_of_the_queue_is_linked(browser, reports, name):
    """Each charge and dispute a queue row names is a link: a duplicate links both charges, a dispute its
    dispute and its charge; with report.order_url, the order too."""
    page = open_page(browser, reports[name], 420)
    try:
        rows = page.locator("#queue tr").all()[1:]
        assert rows
        for row in rows:
            text = row.inner_text()
            hrefs = [a.get_attribute("href") or "" for a in row.locator("a").all()]
            named = set(re.findall(r"\b(?:ch|dp)_[A-Za-z0-9]{8,}", text))
            linked = {h.rsplit("/", 1)[1] for h in hrefs if h.startswith("https://dashboard.stripe.com/")}
            assert named <= linked, text
            if "Orders charged more than once" in text:
                assert len([h for h in hrefs if "/payments/ch_" in h]) == 2
            if "Dispute open" in text:
                assert any("/disputes/dp_" in h for h in hrefs) and any("/payments/ch_" in h for h in hrefs)
            if "order " in text and "Charges with no order" not in text:
                assert any(h.startswith("https://admin.shop.example/orders/") for h in hrefs), text
    finally:
        page.close()


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("name", ["demo", "full"])
def test_without_style_blocks_the_layout_is_the_same(browser, reports, name, width, tmp_path):
    """Mail clients strip <style> (and <link> stylesheets): the report carries every style inline."""
    text = reports[name].read_text(encoding="utf-8")
    stripped = re.sub(r"<style\b.*?</style>|<link\b[^>]*>", "", text, flags=re.S | re.I)
    with_styles = open_page(browser, reports[name], width)
    without = open_page(browser, reports[name], width, stripped)
    try:
        without.screenshot(path=str(tmp_path / f"report-{name}-{width}-no-style.png"), full_page=True)
        a, b = layout(with_styles), layout(without)
        assert b["scrollWidth"] <= b["clientWidth"] and b["scrollWidth"] <= b["innerWidth"] and b["unboxed"] == 0
        assert (b["firstTable"], b["queue"]) == (a["firstTable"], a["queue"])
        assert [(link["href"], link["x"], link["y"]) for link in b["links"]] == [
            (link["href"], link["x"], link["y"]) for link in a["links"]
        ]
        banner = without.locator("#headline").evaluate("e => getComputedStyle(e).backgroundColor")
        assert banner != "rgba(0, 0, 0, 0)"  # the headline keeps its colour
    finally:
        with_styles.close()
        without.close()


@pytest.mark.parametrize("name", REPORTS)
def test_each_report_stays_under_gmails_clip(reports, name):
    assert reports[name].stat().st_size < 100_000  # Gmail clips a message at about 102 KB


def test_a_report_with_every_section_filled(reports):
    """The report the phone-width checks above read with every section drawn."""
    html = reports["full"].read_text(encoding="utf-8")
    sections = ('id="queue"', 'id="severity"', 'id="being-handled"', 'id="closed-by-people"', 'id="movements"')
    for section in (*sections, 'id="payouts"'):
        assert section in html, section
    assert "Nobody has acknowledged an item" not in html and "No item was accepted or resolved" not in html
    assert "Nothing was resolved by this run" not in html and "No refunds or disputes were created" not in html
    assert "Changes made by earlier runs that no report listed" in html and "Trend, last" in html
    assert "more in the attached CSV" not in html and "more (the summary JSON" not in html  # nothing cut
    # The bank leg: the statement read, a payout's deposit on it, both of its items in the queue.
    assert "Bank statements: full-statement.csv" in html and "on the bank " in html
    assert "Payout not on the bank statement" in html and "Stripe deposit no payout explains" in html


def test_people_s_decisions_and_a_year_of_trend_stay_within_the_size(reports):
    """Hundreds of items being handled or closed and a 366-day trend: the lists are capped (the rest are in the
    CSV, which has every one) and the trend is drawn per month, so the page stays under Gmail's clip."""
    html = reports["decided"].read_text(encoding="utf-8")
    assert len(html.encode("utf-8")) < 100_000
    handled = html.split('id="being-handled"')[1].split('id="closed-by-people"')[0]
    closed = html.split('id="closed-by-people"')[1].split("<h2 style=")[0]
    # As many as fit (the smallest money is cut first, across every list): each list counts the rest.
    for part, shown in ((handled, handled.count("acknowledged by alice")), (closed, closed.count("by bob on"))):
        assert 0 < shown < DECIDED // 2 and f"and {DECIDED // 2 - shown} more in the attached CSV" in part
    assert "Trend, last 366 days, by month" in html and html.count("Month (UTC)") == 1
    csv_text = reports["decided"].with_suffix(".csv").read_text(encoding="utf-8")
    keys = (reports["decided"].parent / "decided-keys.txt").read_text().split()
    assert len(keys) == DECIDED
    for key in keys:  # outcome:order:charge, or dispute:dp_... / refund:re_...
        named = [part for part in key.split(":")[1:] if part != "-"]
        assert any(part in csv_text for part in named), key
