"""Fixtures: real servers on loopback (Stripe stand-in over HTTP, nx-27017 wire-protocol MongoDB)."""

from __future__ import annotations

import itertools
import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pymongo
import pytest
from click.testing import CliRunner

from reconcile.cli import main
from reconcile.demo.embedded_mongo import EmbeddedMongo
from reconcile.demo.shop import ShopSeeder
from reconcile.demo.standin import StandinStore, serve
from reconcile.timeutil import utcnow

# skipguard: with CI=true, a skip not allowed by name fails the run. pytester: runs pytest inside a test.
pytest_plugins = ["skipguard", "pytester"]

API_KEY = "sk_test_reconcile_tests_0123456789"


def _teach_mongomock_current_pymongo() -> None:
    """pymongo >= 4.11 passes `sort=` to bulk updates; mongomock 4.3 predates it. Accept sort=None."""
    import mongomock.collection

    builder = mongomock.collection.BulkOperationBuilder
    original = builder.add_update
    if getattr(original, "_accepts_sort", False):
        return

    def add_update(self, *args, sort=None, **kwargs):
        if sort is not None:
            raise NotImplementedError("mongomock: sort in bulk updates")
        return original(self, *args, **kwargs)

    add_update._accepts_sort = True
    builder.add_update = add_update


_teach_mongomock_current_pymongo()
_db_names = itertools.count()


@pytest.fixture(scope="session")
def mongo_server():
    with EmbeddedMongo() as server:
        yield server


@pytest.fixture
def mongo_uri(mongo_server) -> str:
    return mongo_server.uri


@pytest.fixture
def db_name() -> str:
    return f"shop{next(_db_names)}"


@pytest.fixture
def db(mongo_server, db_name):
    """A fresh database on the wire-protocol server, for each test."""
    client = pymongo.MongoClient(mongo_server.uri, tz_aware=True)
    yield client[db_name]
    client.drop_database(db_name)
    client.close()


@pytest.fixture
def store() -> StandinStore:
    return StandinStore(api_key=API_KEY)


@pytest.fixture
def stripe_server(store):
    with serve(store) as server:
        yield server


@pytest.fixture
def now():
    return utcnow()


def at(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S")


@pytest.fixture
def t0() -> datetime:
    """A whole hour ten days ago: runs "later" than it are still in the real past."""
    return (utcnow() - timedelta(days=10)).replace(minute=0, second=0, microsecond=0)


@pytest.fixture
def seed(store, db, t0) -> ShopSeeder:
    return ShopSeeder(store, db["orders"], t0)


@pytest.fixture
def shop(store, db, now) -> ShopSeeder:
    """Seeds orders (in MongoDB) and charges (in the stand-in) side by side."""
    return ShopSeeder(store, db["orders"], now)


def write_config(path: Path, api_base: str, db_name: str, **sections: dict[str, Any]) -> Path:
    raw: dict[str, dict[str, Any]] = {
        "stripe": {"api_key_env": "STRIPE_API_KEY", "api_base": api_base},
        "mongodb": {
            "uri_env": "MONGODB_URI",
            "database": db_name,
            "orders_collection": "orders",
            "server_selection_timeout": "3s",
        },
        "orders": {"email_field": "email"},
        "window": {"lookback": "24h"},
        "report": {"dir": str(path.parent / "reports")},
    }
    for name, values in sections.items():
        raw.setdefault(name, {}).update(values)
    lines = []
    for name, values in raw.items():
        lines.append(f"[{name}]")
        lines.extend(f"{k} = {json.dumps(v)}" for k, v in values.items())
    path.write_text("\n".join(lines) + "\n")
    return path


class Cli:
    """Runs the real `reconcile` command in-process with the environment a cron job would have."""

    def __init__(self, tmp_path: Path, api_base: str, db_name: str, mongo_uri: str, monkeypatch):
        self.tmp_path, self.api_base, self.db_name = tmp_path, api_base, db_name
        monkeypatch.setenv("STRIPE_API_KEY", API_KEY)
        monkeypatch.setenv("MONGODB_URI", mongo_uri)
        self.config = write_config(tmp_path / "reconcile.toml", api_base, db_name)
        self.summary_path = tmp_path / "summary.json"

    def configure(self, **sections: dict[str, Any]) -> None:
        write_config(self.config, self.api_base, self.db_name, **sections)

    def __call__(self, *args: str) -> Any:
        result = CliRunner().invoke(
            main,
            ["--config", str(self.config), "--summary-json", str(self.summary_path), *args],
            catch_exceptions=False,
        )
        result.summary = json.loads(self.summary_path.read_text()) if self.summary_path.exists() else None
        if self.summary_path.exists():
            self.summary_path.unlink()
        return result


@pytest.fixture
def cli(tmp_path, stripe_server, db_name, mongo_uri, monkeypatch, db) -> Cli:
    return Cli(tmp_path, stripe_server.url, db_name, mongo_uri, monkeypatch)


class SmtpSink:
    """A real SMTP server (aiosmtpd) on loopback that keeps every message it receives."""

    def __init__(self, port: int | None = None, **controller_options: Any):
        import email
        import email.policy

        from aiosmtpd.controller import Controller

        from reconcile.demo.embedded_mongo import free_port

        self._parse = lambda data: email.message_from_bytes(data, policy=email.policy.default)
        self.port = port or free_port()
        self.envelopes: list[Any] = []
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port, **controller_options)

    async def handle_DATA(self, server, session, envelope):  # aiosmtpd handler hook
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"

    @property
    def messages(self) -> list[Any]:
        return [self._parse(e.original_content or e.content) for e in self.envelopes]

    def __enter__(self) -> SmtpSink:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()


@pytest.fixture
def smtp_sink():
    with SmtpSink() as sink:
        yield sink


@pytest.fixture
def proxy(mongo_server):
    """A proxy between the job and the shared nx-27017 that can cut or hold the connection at a chosen command."""
    from mongoproxy import MongoProxy

    with MongoProxy(mongo_server.port) as running:
        yield running


@pytest.fixture
def file_mongo(tmp_path):
    """An nx-27017 of the test's own, file-backed, so it can be killed and restarted with its data.

    A directory as --db: one SQLite file per database (a single file would share collections
    between databases).
    """
    data = tmp_path / "mongo-data"
    data.mkdir()
    server = EmbeddedMongo(db_path=str(data))
    with server:
        yield server
