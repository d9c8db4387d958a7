"""Connecting to MongoDB, and turning driver errors into the job's own."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Mapping
from typing import Any

import pymongo
import pymongo.errors
from pymongo.database import Database

from reconcile.config import MongoConfig
from reconcile.errors import ConfigError, MongoUnavailable
from reconcile.runtime.redact import mongo_facts, network_cause

# A MongoDB document as the driver returns it; store/ reads the fields it needs out of it.
Document = Mapping[str, Any]

_MESSAGE_HOST = re.compile(r"^([^\s:,]+:\d+): ")


@contextlib.contextmanager
def mongo_errors(action: str) -> Iterator[None]:
    """Driver errors -> ConfigError / MongoUnavailable, with no URI (it may hold a password)."""
    try:
        yield
    except (pymongo.errors.ConfigurationError, pymongo.errors.InvalidURI) as exc:
        raise ConfigError(f"MongoDB configuration problem while {action}: {type(exc).__name__}") from None
    except pymongo.errors.OperationFailure as exc:
        if exc.code in (13, 18):  # Unauthorized, AuthenticationFailed
            raise ConfigError(
                f"MongoDB refused the credentials or a permission while {action} (code {exc.code})"
            ) from None
        # The code name, never the server's message: it can quote documents (a duplicate key's values).
        raise MongoUnavailable(f"MongoDB failed while {action}: {mongo_facts(exc)}") from None
    except pymongo.errors.ConnectionFailure as exc:  # AutoReconnect, NetworkTimeout: "host:port: cause (...)"
        host = _MESSAGE_HOST.match(str(exc))
        where = f"{host.group(1)}: " if host else ""
        raise MongoUnavailable(
            f"MongoDB unavailable while {action}: {where}{network_cause(str(exc))} ({type(exc).__name__})"
        ) from None
    except pymongo.errors.PyMongoError as exc:
        raise MongoUnavailable(f"MongoDB unavailable while {action}: {type(exc).__name__}") from None


def _server_causes(client: pymongo.MongoClient, message: str) -> str:
    """`host:port: cause` for each server the client tried (the URI's hosts; never its credentials)."""
    try:
        described = client.topology_description.server_descriptions()
    except Exception:  # a description is a nicety: the line below still says what happened
        described = {}
    parts = [
        f"{host}:{port}: {network_cause(str(server.error)) if server.error else 'no answer'}"
        for (host, port), server in described.items()
    ]
    return ", ".join(parts) or network_cause(message)


def _client(uri: str, config: MongoConfig, socket_timeout_ms: int, **options: Any) -> pymongo.MongoClient:
    timeout_ms = int(config.server_selection_timeout.total_seconds() * 1000)
    with mongo_errors("connecting"):
        return pymongo.MongoClient(
            uri,
            serverSelectionTimeoutMS=timeout_ms,
            connectTimeoutMS=timeout_ms,
            socketTimeoutMS=socket_timeout_ms,
            tz_aware=True,
            **options,
        )


def connect(uri: str, config: MongoConfig) -> Database:
    """A database handle, checked with a ping so an unreachable server fails fast (exit 3)."""
    timeout_ms = int(config.server_selection_timeout.total_seconds() * 1000)
    client = _client(uri, config, max(timeout_ms * 6, 60_000), appname="reconcile")
    with mongo_errors("connecting"):
        try:
            client.admin.command("ping")
        except pymongo.errors.ServerSelectionTimeoutError as exc:
            servers = _server_causes(client, str(exc))
            client.close()
            raise MongoUnavailable(
                f"MongoDB unavailable while connecting: {servers}; no server answered within {timeout_ms / 1000:g}s "
                "(mongodb.server_selection_timeout); nothing was changed"
            ) from None
    return client[config.database]


def connect_for_scans(uri: str, config: MongoConfig) -> Database:
    """A second handle for the window's order queries, which a server may answer only after reading
    much of the collection (orders whose created_at is a string, where it cannot use the index for
    them; nx-27017 also builds any result whole before its first batch): its socket timeout is
    `mongodb.scan_timeout`, and a timed-out read is not retried (it would scan again).
    Server selection keeps the usual bound, so a server that is down still fails fast.
    Connects on first use."""
    socket_timeout_ms = int(config.scan_timeout.total_seconds() * 1000)
    return _client(uri, config, socket_timeout_ms, retryReads=False, appname="reconcile-scan")[config.database]
