"""Bad input through the real command: config, order documents as real databases hold them, hostile Stripe data.

Each case must end in a clear outcome (exit 2 with one line, or a `data_problem` naming the
order, or a plain value used as a plain value), never a crash and never a wrong repair.

nx-27017 gaps: no Decimal128, and an ObjectId `_id` is the same key as a string `_id` with the
same hex (it cannot even hold both); those cases run with mongomock (exact MongoDB type
semantics) through job.run.
"""

from __future__ import annotations

import csv
import io
import json
import stat
from datetime import timedelta, timezone
from decimal import Decimal
from pathlib import Path

import mongomock
import pytest
from bson import Decimal128, ObjectId
from conftest import API_KEY

from reconcile.config import parse_config
from reconcile.decide import classify as c
from reconcile.report.render import write_private
from reconcile.run import window as job
from reconcile.run.settings import window_settings
from reconcile.stripe import pull as stripe_pull
from reconcile.timeutil import to_unix

TOKYO = timezone(timedelta(hours=9))


def snapshot(db) -> dict:
    """The shop's orders and the audit trail (run history, open items and the watermark are the job's own
    bookkeeping: a failed run is recorded there on purpose)."""
    return {name: sorted(map(repr, db[name].find())) for name in ("orders", "reconcile_audit")}


# --------------------------------------------------------------------------- config


def _write(cli, text: str) -> None:
    cli.config.write_text(text)


BASE = '[stripe]\napi_base = "{url}"\n[mongodb]\ndatabase = "{db}"\n'  # completed per test


@pytest.mark.parametrize(
    "case, prepare, args, expected",
    [
        (
            "missing file",
            lambda cli: cli.config.unlink(),
            [],
            "not found (pass --config PATH or set RECONCILE_CONFIG; see config.example.toml)",
        ),
        ("TOML syntax", lambda cli: _write(cli, "[stripe\napi_base = 1\n"), [], "is not valid TOML: "),
        (
            "misspelled key",
            lambda cli: _write(cli, BASE + '[orders]\npending_stauts = "created"\n'),
            [],
            "unknown key orders.pending_stauts (did you mean 'pending_status'?)",
        ),
        (
            "misspelled section",
            lambda cli: _write(cli, BASE + "[ordres]\n"),
            [],
            "unknown section [ordres] (did you mean 'orders'?)",
        ),
        (
            "missing key",
            lambda cli: _write(cli, '[mongodb]\norders_collection = "orders"\n'),
            [],
            "missing key mongodb.database",
        ),
        (
            "wrong type",
            lambda cli: _write(cli, BASE + "[orders]\ngrace_period = 15\n"),
            [],
            'orders.grace_period must be a duration string like "15m", got 15',
        ),
        (
            "wrong type, list",
            lambda cli: _write(cli, BASE + '[orders]\nother_paid_statuses = "shipped"\n'),
            [],
            "orders.other_paid_statuses must be a list of strings",
        ),
        (
            "negative grace",
            lambda cli: _write(cli, BASE + '[orders]\ngrace_period = "-5m"\n'),
            [],
            "orders.grace_period: '-5m' is negative: a duration must be zero or more",
        ),
        (
            "negative tolerance",
            lambda cli: _write(cli, BASE + "[orders]\namount_tolerance = -1\n"),
            [],
            "orders.amount_tolerance must not be negative",
        ),
        (
            "zero batch",
            lambda cli: _write(cli, BASE + "repair_batch_size = 0\n"),
            [],
            "mongodb.repair_batch_size must be at least 1",
        ),
        ("since after until", None, ["--since", "2h", "--until", "3h"], "is not before --until"),
        ("since in the future", None, ["--since", "2999-01-01T00:00"], "--since 2999-01-01T00:00:00Z is in the future"),
        (
            "key not set",
            lambda cli: cli.monkeypatch.delenv("STRIPE_API_KEY"),
            [],
            "environment variable STRIPE_API_KEY is not set: it must hold the Stripe API key",
        ),
    ],
)
def test_config_error_exits_2_with_one_line_and_touches_nothing(
    cli, stripe_server, shop, db, tmp_path, monkeypatch, case, prepare, args, expected
):
    shop.charge(shop.order(c.REPAIRED))
    before = snapshot(db)
    cli.monkeypatch = monkeypatch
    if prepare:
        prepare(cli)
        if cli.config.exists() and "{db}" in cli.config.read_text():
            cli.config.write_text(cli.config.read_text().format(db=db.name, url=stripe_server.url))
    result = cli(*args)
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith("reconcile: error: ") and expected in line, line
    assert stripe_server.request_log == [] and snapshot(db) == before
    assert result.summary is None and not (tmp_path / "reports").exists()


def test_unreadable_when_is_a_usage_error(cli, stripe_server, db):
    result = cli("--since", "last tuesday")
    assert result.exit_code == 2
    assert "Error: Invalid value for --since: 'last tuesday' is neither an ISO-8601 time" in result.stderr
    assert stripe_server.request_log == []


# --------------------------------------------------------------------------- order documents


PROBLEMS = {
    "amount missing": ({"amount": None}, "amount is missing"),
    "amount as string": ({"amount": "2500"}, "amount '2500' is a str, expected an integer in minor units"),
    "amount as float": ({"amount": 25.0}, "amount '25.0' is a float"),
    "amount negative": ({"amount": -2500}, "amount -2500 is negative"),
    "status missing": ({"status": None}, "status is missing"),
    "status a number": ({"status": 1}, "status has type int"),
    "currency missing": ({"currency": None}, "currency is missing"),
    "currency a name": ({"currency": "US Dollar"}, "currency 'US Dollar' is not a three-letter ISO code"),
    "created_at not a date": ({"created_at": "yesterday"}, "created_at 'yesterday' is not a date"),
    "created_at missing": ({"created_at": None}, "created_at is missing"),
    "created_at a number": ({"created_at": 1700000000}, "created_at has type int, expected a date"),
}


def test_unreadable_order_documents_are_data_problems_never_repairs(cli, store, db, shop):
    """Every document has a succeeded charge that matches it: reading it wrong would repair it."""
    ids = {}
    for name, (fields, _) in PROBLEMS.items():
        order_id = shop.order(None, object_id=False)
        unset = {k: "" for k, v in fields.items() if v is None}
        put = {k: v for k, v in fields.items() if v is not None}
        db["orders"].update_one(
            {"_id": order_id}, {**({"$unset": unset} if unset else {}), **({"$set": put} if put else {})}
        )
        shop.charge(order_id)
        ids[name] = order_id
    before = {d["_id"]: d for d in db["orders"].find()}
    result = cli()
    assert result.exit_code == 1, result.output
    found = {d["order_id"]: d for d in result.summary["discrepancies"]}
    for name, (_, detail) in PROBLEMS.items():
        item = found[ids[name]]
        assert item["outcome"] == c.DATA_PROBLEM and detail in item["detail"], (name, item)
    assert result.summary["repaired"] == [] and result.summary["marked_failed"] == []
    assert {d["_id"]: d for d in db["orders"].find()} == before  # not one byte changed
    html = Path(result.summary["report"]["html"]).read_text()
    assert all(order_id in html for order_id in ids.values())


def test_readable_variants_are_read_right(cli, store, db, shop, now):
    """Upper-case currency, ISO-string and naive dates, a huge document: ordinary orders, repaired."""
    upper = shop.order(c.REPAIRED, currency="USD")
    shop.charge(upper)
    iso = shop.order(c.REPAIRED, object_id=False)
    db["orders"].update_one(
        {"_id": iso}, {"$set": {"created_at": (now - timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")}}
    )
    shop.charge(iso)
    offset = shop.order(c.REPAIRED, object_id=False)
    db["orders"].update_one(
        {"_id": offset}, {"$set": {"created_at": (now - timedelta(hours=2)).astimezone(TOKYO).isoformat()}}
    )
    shop.charge(offset)
    naive = shop.order(c.REPAIRED)  # ShopSeeder stores naive UTC datetimes
    shop.charge(naive)
    huge = shop.order(c.REPAIRED, notes="x" * 4_000_000, items=[{"sku": f"sku-{i}", "qty": 1} for i in range(20_000)])
    shop.charge(huge)
    result = cli()
    assert result.exit_code == 0, result.output
    assert sorted(result.summary["repaired"]) == sorted(map(str, [upper, iso, offset, naive, huge]))
    assert db["orders"].find_one({"_id": huge})["notes"] == "x" * 4_000_000  # the rest of the document untouched
    assert db["orders"].find_one({"_id": upper})["currency"] == "USD"


def mongomock_run(store, stripe_server, now, tmp_path, docs):
    db = mongomock.MongoClient(tz_aware=True).shop
    db.orders.insert_many(docs)
    config = parse_config({"stripe": {"api_base": stripe_server.url}, "mongodb": {"database": "shop"}})
    client = stripe_pull.make_client(API_KEY, config.stripe)
    request = job.RunRequest(since=now - timedelta(days=1), until=now, now=now, report_dir=tmp_path)
    return db, job.run(window_settings(config), client, db, request)


def test_exact_id_types_and_decimal128_on_mongomock(store, stripe_server, now, tmp_path):
    created = (now - timedelta(hours=2)).replace(tzinfo=None)
    oid = ObjectId()
    docs = [
        {"_id": oid, "status": "created", "amount": 2500, "currency": "usd", "created_at": created},
        {"_id": str(oid), "status": "created", "amount": 2500, "currency": "usd", "created_at": created},
        {
            "_id": "dec",
            "status": "created",
            "amount": Decimal128(Decimal("25.00")),
            "currency": "usd",
            "created_at": created,
        },
    ]
    for ref in (str(oid), "dec"):
        store.create_charge(amount=2500, created=to_unix(now - timedelta(hours=2)), metadata={"order_id": ref})
    db, result = mongomock_run(store, stripe_server, now, tmp_path, docs)
    details = {
        d["order_id"]: d["detail"] for d in result.summary.to_json()["discrepancies"] if d["outcome"] == c.DATA_PROBLEM
    }
    assert "is a Decimal128, expected an integer in minor units" in details["dec"]
    assert "2 orders share the id" in details[str(oid)]
    assert result.summary.to_json()["repaired"] == [] and db.orders.count_documents({"status": "created"}) == 3


def test_string_dated_orders_are_found_by_the_window_on_mongomock(store, stripe_server, now, tmp_path):
    """In MongoDB a date range never matches a string: such orders are looked up as strings too."""
    two_hours = now - timedelta(hours=2)
    docs = [
        {
            "_id": "str-stuck",
            "status": "created",
            "amount": 900,
            "currency": "usd",
            "created_at": two_hours.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        },
        {
            "_id": "str-stale",
            "status": "created",
            "amount": 900,
            "currency": "usd",
            "created_at": two_hours.strftime("%Y-%m-%d %H:%M:%S"),
        },  # no charge at all
        {
            "_id": "str-old",
            "status": "created",
            "amount": 900,
            "currency": "usd",
            "created_at": (now - timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        },  # outside the window
    ]
    store.create_charge(amount=900, created=to_unix(two_hours), metadata={"order_id": "str-stuck"})
    db, result = mongomock_run(store, stripe_server, now, tmp_path, docs)
    assert result.summary.to_json()["repaired"] == ["str-stuck"]
    assert result.counts[c.STALE_PENDING] == 1 and result.counts[c.OK] == 0
    assert db.orders.find_one({"_id": "str-old"})["status"] == "created"


# --------------------------------------------------------------------------- Stripe data


@pytest.mark.parametrize("ref", ['{"$ne": null}', "$where", "this.status == 'created' || true", '{"$gt": ""}'])
def test_operator_shaped_order_id_is_only_a_plain_value(cli, store, db, shop, ref):
    for _ in range(3):
        shop.order(c.STALE_PENDING)  # pending orders a query operator would match
    shop.charge(None, metadata={"order_id": ref})
    before = snapshot(db)
    result = cli()
    assert result.exit_code == 1, result.output
    [orphan] = [d for d in result.summary["discrepancies"] if d["outcome"] == c.ORPHAN_CHARGE]
    assert orphan["order_id"] == ref and f"names order {ref}, which does not exist" in orphan["detail"]
    assert result.summary["counts"][c.STALE_PENDING] == 3 and result.summary["repaired"] == []
    assert snapshot(db) == before


def test_empty_and_padded_order_ids(cli, store, db, shop):
    padded = shop.order(c.REPAIRED, object_id=False)
    shop.charge(padded, metadata={"order_id": f"  {padded}\t"})
    shop.charge(None, metadata={"order_id": ""}, amount=333)
    shop.charge(None, metadata={"order_id": "   "}, amount=444)
    result = cli()
    assert result.summary["repaired"] == [padded]
    orphans = [d for d in result.summary["discrepancies"] if d["outcome"] == c.ORPHAN_CHARGE]
    assert len(orphans) == 2 and all(d["detail"] == "charge names no order" and d["order_id"] is None for d in orphans)


def test_html_is_escaped_and_csv_formulas_neutralised(cli, store, db, shop):
    oid = shop.order(c.AMOUNT_MISMATCH, status="accepted", amount=5000)
    shop.charge(oid, amount=4500, description='=HYPERLINK("http://evil.example","click")')
    shop.charge(
        None,
        amount=700,
        metadata={"order_id": "@SUM(1+1)"},
        description="<script>alert('x')</script>",
        billing_email="+1-555@example.com",
    )
    shop.charge(None, amount=800, metadata={"order_id": '<img src=x onerror="alert(1)">'}, description="-2+3")
    result = cli()
    html = Path(result.summary["report"]["html"]).read_text()
    assert "<script>alert" not in html and "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in html
    assert "<img src=x" not in html and "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;" in html
    rows = {
        r["charge_id"]: r
        for r in csv.DictReader(io.StringIO(Path(result.summary["report"]["csv"]).read_text(), newline=""))
    }
    cells = [cell for r in rows.values() for cell in r.values()]
    assert all(not cell.startswith(("=", "+", "-", "@")) for cell in cells), cells
    assert '\'=HYPERLINK("http://evil.example","click")' in cells
    assert "'@SUM(1+1)" in cells and "'-2+3" in cells and "'+1-555@example.com" in cells


# --------------------------------------------------------------------------- report files


def test_report_files_are_owner_only_in_an_owner_only_directory(cli, store, db, shop, tmp_path):
    shop.charge(shop.order(c.REPAIRED))
    target = tmp_path / "new" / "reports"
    result = cli("--report-dir", str(target))
    assert result.exit_code == 0
    assert stat.S_IMODE(target.stat().st_mode) == 0o700
    for path in list(target.iterdir()):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert {p.suffix for p in target.iterdir()} == {".html", ".csv"}  # no temporary files left


def test_failed_write_leaves_the_previous_file_whole(tmp_path):
    path = tmp_path / "summary.json"
    write_private(path, json.dumps({"run": 1}))
    with pytest.raises(UnicodeEncodeError):
        write_private(path, '{"run": 2, "bad": "\udcff"}')  # fails half-way through encoding
    assert json.loads(path.read_text()) == {"run": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
