"""The stand-in's HTTP side: Stripe's GET API over loopback, plus faults and rate limits.

``serve(store)`` starts a ``ThreadingHTTPServer`` (HTTP/1.1 keep-alive, one thread per
connection) in a background thread and returns a ``StandinServer``; use it as a context
manager or call ``close()``. Requests are answered like Stripe's API for the list and
retrieve endpoints of ``store.RESOURCES``: Bearer (or Basic) auth, Stripe's list parameters
and error bodies, ``Request-Id``/``Stripe-Version`` headers.

Test hooks: ``latency`` (sleep per request, concurrent requests overlap), token-bucket
``rate_limit`` per endpoint and per account (429 like Stripe), and ``inject()`` of faults
(429s, 5xx, dropped or hanging connections, 401/403) for the next N matching requests.
"""

from __future__ import annotations

import base64
import binascii
import json
import random
import re
import socket
import string
import struct
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from reconcile.demo.standin.store import (
    RESOURCES_BY_PATH,
    ApiError,
    Resource,
    StandinStore,
    invalid_request,
    parse_expand,
)

__all__ = ["FAULTS", "StandinServer", "serve", "mask_key"]

# The one API version the stand-in answers as: the one stripe-python 16 pins (stripe._api_version).
# Objects are shaped as that version shapes them (partial capture and cancellation create no
# Refund, charges include `refunds` only when expanded, ...). A request naming another version is
# refused with Stripe's error for an unknown version, so a client never reads a shape it did not ask for.
API_VERSION = "2026-10-28.endive"
FAULTS = frozenset(
    {
        "429",
        "429_retry_after",
        "500",
        "503",
        "should_retry_429",
        "should_not_retry_500",
        "drop",
        "hang",
        "401",
        "403",
        # Broken list pages (answered 200): the client must notice the list is not whole.
        "empty_has_more",  # no objects, has_more true
        "ignore_cursor",  # the page as if starting_after / ending_before were not given (a repeated page)
        "ignore_created",  # the page as if no created range were given (objects outside it)
        "duplicate_first",  # the page with its first object listed twice
        "truncated",  # the normal answer cut to half its length, as a complete response (a middlebox cut it)
        "raw",  # opts `status` and `body` (bytes): any answer, e.g. a proxy's error page
    }
)
_PAGE_FAULTS = frozenset({"ignore_cursor", "ignore_created", "duplicate_first", "truncated"})
_INT = re.compile(r"[+-]?\d+")
_KEY = re.compile(r"^((?:sk|rk|pk)_(?:test|live)_)(.*)$", re.S)
_CREATED_OPS = ("gte", "gt", "lte", "lt")
_RATE_LIMIT_MESSAGE = (
    "Request rate limit exceeded. You can learn more about rate limits here https://docs.stripe.com/rate-limits."
)
_NO_KEY_MESSAGE = (
    "You did not provide an API key. You need to provide your API key in the Authorization header, "
    "using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY'). See https://stripe.com/docs/api#authentication "
    "for details, or we can help at https://support.stripe.com/."
)
_REQ_ID_CHARS = string.ascii_letters + string.digits


def mask_key(key: str) -> str:
    """A key as Stripe echoes it in errors: its prefix, stars, and at most the last 4 characters.

    Short keys show no tail at all, so the full key is never revealed.
    """
    match = _KEY.match(key)
    prefix, secret = (match.group(1), match.group(2)) if match else ("", key)
    tail = secret[-4:] if len(secret) >= 12 else ""
    return prefix + "*" * max(4, len(secret) - len(tail)) + tail


def _error_body(error: Mapping[str, Any]) -> bytes:
    return json.dumps({"error": error}, separators=(",", ":")).encode()


def _rate_limit_error() -> dict[str, Any]:
    return {
        "type": "invalid_request_error",
        "code": "rate_limit",
        "doc_url": "https://stripe.com/docs/error-codes/rate-limit",
        "message": _RATE_LIMIT_MESSAGE,
    }


def _api_error(message: str) -> dict[str, Any]:
    return {"type": "api_error", "message": message}


# --------------------------------------------------------------------------- limits and faults


class _Bucket:
    """A token bucket holding at most one second's worth of requests."""

    def __init__(self, rate: float, now: float) -> None:
        self.rate = float(rate)
        self.capacity = max(1.0, self.rate)
        self.tokens = self.capacity
        self.stamp = now

    def refill(self, now: float) -> None:
        if now > self.stamp:
            self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now


@dataclass
class _Injection:
    prefix: str
    fault: str
    remaining: int | None  # None: until clear_faults()
    when: Callable[[dict[str, str]], bool] | None
    opts: dict[str, Any]


# --------------------------------------------------------------------------- HTTP plumbing


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # close() must not wait for hanging or keep-alive handlers
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], app: StandinServer) -> None:
        self.app = app
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients vanishing mid-response (timeouts, our own "drop" fault, close()) are normal here.
        import sys

        exc = sys.exc_info()[1]
        if isinstance(exc, (OSError, ValueError)):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "stripe-standin"
    disable_nagle_algorithm = True  # headers and body go out as two writes; don't let Nagle stall them
    timeout = 120  # idle keep-alive connections are closed after this
    server: _HTTPServer

    def setup(self) -> None:
        super().setup()
        self.server.app._track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass
        finally:
            self.server.app._track(self.connection, False)

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """Quiet: a benchmark sends thousands of requests."""

    def do_GET(self) -> None:
        self.server.app._handle(self, "GET")

    def do_POST(self) -> None:
        self.server.app._handle(self, "POST")

    def do_DELETE(self) -> None:
        self.server.app._handle(self, "DELETE")

    def do_PUT(self) -> None:
        self.server.app._handle(self, "PUT")

    def do_PATCH(self) -> None:
        self.server.app._handle(self, "PATCH")


# --------------------------------------------------------------------------- the server


class StandinServer:
    """A running stand-in; ``url`` is its base address. Close it with ``close()`` or ``with``."""

    def __init__(
        self,
        store: StandinStore,
        host: str = "127.0.0.1",
        port: int = 0,
        latency: float = 0.0,
        rate_limit: Mapping[str, float | None] | float | None = None,
        *,
        log_requests: bool = True,
        clock: Callable[[], float] = time.monotonic,
        latency_spread: float = 0.0,
    ) -> None:
        self.store = store
        self._clock = clock  # the rate limiter's time (a test may drive it)
        self.request_log: list[tuple[str, str, dict[str, str]]] = []
        self.log_requests = log_requests
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._closed = False
        self._requests = 0
        self._rate_limited = 0
        self._faults_served = 0
        self._latency = float(latency)
        # Each request's delay is `latency` times a log-normal factor of mean 1 and this sigma (0: fixed),
        # as a real server's round trips spread with a long tail.
        self._latency_spread = max(0.0, float(latency_spread))
        self._injections: list[_Injection] = []
        self._per_endpoint: float | None = None
        self._account: float | None = None
        self._buckets: dict[str, _Bucket] = {}
        self._account_bucket: _Bucket | None = None
        self._connections: set[socket.socket] = set()
        self._rng = random.Random()
        if isinstance(rate_limit, Mapping):
            self.set_rate_limit(**rate_limit)
        elif rate_limit is not None:
            self.set_rate_limit(per_endpoint=rate_limit)
        self._httpd = _HTTPServer((host, port), self)
        bound_host, bound_port = self._httpd.server_address[:2]
        self.host = str(bound_host)
        self.port = int(bound_port)
        self.url = f"http://{self.host}:{self.port}"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name=f"standin:{self.port}", daemon=True
        )
        self._thread.start()

    # ----------------------------------------------------------------- counters

    @property
    def requests(self) -> int:
        """Requests received (every answer counts, faults and errors included)."""
        with self._lock:
            return self._requests

    @property
    def rate_limited(self) -> int:
        """Requests refused by the rate limiter (injected 429s are counted in ``faults_served``)."""
        with self._lock:
            return self._rate_limited

    @property
    def faults_served(self) -> int:
        with self._lock:
            return self._faults_served

    @property
    def latency(self) -> float:
        return self._latency

    # ----------------------------------------------------------------- controls

    def set_latency(self, seconds: float) -> None:
        """Delay added to every following request."""
        self._latency = max(0.0, float(seconds))

    def set_rate_limit(self, per_endpoint: float | None = None, account: float | None = None) -> None:
        """Requests/second allowed per endpoint path and per account; None turns that limit off."""
        for value in (per_endpoint, account):
            if value is not None and value <= 0:
                raise ValueError("rate limits must be positive (or None for no limit)")
        with self._lock:
            self._per_endpoint = per_endpoint
            self._account = account
            self._buckets = {}
            self._account_bucket = _Bucket(account, self._clock()) if account is not None else None

    def inject(
        self,
        path_prefix: str = "/",
        fault: str = "500",
        times: int | None = 1,
        *,
        when: Callable[[dict[str, str]], bool] | None = None,
        **opts: Any,
    ) -> None:
        """Answer the next ``times`` requests under ``path_prefix`` (and passing ``when(query)``) with ``fault``.

        Options: ``retry_after`` (seconds, "429_retry_after", default 1); ``seconds`` ("hang":
        answer normally after that long, default: only end when the server closes; or ``release``, a
        ``threading.Event``: answer normally once it is set); ``stage``
        ("drop": "body" sends headers and part of the body, "before" closes before any byte).
        List pages that cannot be part of a whole list, answered 200: "empty_has_more",
        "ignore_cursor", "ignore_created", "duplicate_first", and "truncated" (the normal answer cut
        in half, Content-Length and all); "raw" answers ``status`` (default 200) with ``body`` bytes.
        ``times=None`` keeps the fault until ``clear_faults()``. Earlier injections match first.
        """
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; known: {sorted(FAULTS)}")
        if times is not None and times < 1:
            raise ValueError("times must be >= 1 or None")
        with self._lock:
            self._injections.append(_Injection(path_prefix, fault, times, when, dict(opts)))

    def clear_faults(self) -> None:
        with self._lock:
            self._injections.clear()

    def close(self) -> None:
        """Stop serving; hanging requests and idle keep-alive connections are cut at once."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._closing.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._thread.join(timeout=1.0)

    def __enter__(self) -> StandinServer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<StandinServer {self.url} requests={self.requests}>"

    # ----------------------------------------------------------------- request handling

    def _track(self, conn: socket.socket, alive: bool) -> None:
        with self._lock:
            if alive:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    def _delay(self) -> float:
        """This request's latency: fixed, or spread log-normally around the same mean."""
        sigma = self._latency_spread
        if not sigma:
            return self._latency
        return self._latency * self._rng.lognormvariate(-sigma * sigma / 2, sigma)

    def _handle(self, h: _Handler, method: str) -> None:
        split = urlsplit(h.path)
        path = split.path.rstrip("/") or "/"
        pairs = parse_qsl(split.query, keep_blank_values=True)
        query = dict(pairs)
        if method != "GET":
            # The SDK sends form bodies; read them so the keep-alive connection stays in step.
            length = int(h.headers.get("Content-Length") or 0)
            if length:
                h.rfile.read(length)
        with self._lock:
            self._requests += 1
            if self.log_requests:
                self.request_log.append((method, path, query))
        asked = h.headers.get("Stripe-Version")
        version = API_VERSION

        if self._latency > 0 and self._closing.wait(self._delay()):
            h.close_connection = True
            return

        injection = self._take_fault(path, query)
        page_fault = None
        if injection is not None:
            if injection.fault in _PAGE_FAULTS:
                page_fault = injection.fault
                pairs = _page_fault_params(page_fault, pairs)
            elif self._serve_fault(h, injection, version):
                return

        route = self._route(path)
        limit_key = route[0].path if route else path
        try:
            self._authorize(h, path, route[0] if route else None)
            if asked is not None and asked != API_VERSION:
                raise invalid_request(f"Invalid Stripe API version: {asked}")
            if not self._admit(limit_key):
                with self._lock:
                    self._rate_limited += 1
                raise ApiError(429, _rate_limit_error())
            if method != "GET":
                if route is None:
                    raise self._unrecognized(method, path)
                raise invalid_request(
                    f"The Stripe stand-in is read-only: {method} {path} is not supported.", status=400
                )
            if route is None:
                raise self._unrecognized(method, path)
            resource, object_id = route
            if object_id is None:
                body = self._list(resource, pairs)
                if page_fault == "duplicate_first":
                    body = _duplicate_first(body)
            else:
                body = self._retrieve(resource, object_id, pairs)
            if page_fault == "truncated":
                body = body[: len(body) // 2]
            self._respond(h, 200, body, version)
        except ApiError as exc:
            self._respond(h, exc.status, _error_body(exc.error), version)
        except Exception:  # a stand-in bug: answer like Stripe's 500 and say why on stderr
            traceback.print_exc()
            self._respond(h, 500, _error_body(_api_error("An unknown error occurred")), version)

    @staticmethod
    def _route(path: str) -> tuple[Resource, str | None] | None:
        resource = RESOURCES_BY_PATH.get(path)
        if resource is not None:
            return resource, None
        parent, _, tail = path.rpartition("/")
        resource = RESOURCES_BY_PATH.get(parent)
        if resource is not None and tail:
            return resource, unquote(tail)
        return None

    @staticmethod
    def _unrecognized(method: str, path: str) -> ApiError:
        return invalid_request(
            f"Unrecognized request URL ({method}: {path}). Please see https://stripe.com/docs or we can help at "
            "https://support.stripe.com/.",
            status=404,
        )

    def _authorize(self, h: _Handler, path: str, resource: Resource | None) -> None:
        key = _presented_key(h.headers.get("Authorization"))
        if key is None:
            raise ApiError(401, {"type": "invalid_request_error", "message": _NO_KEY_MESSAGE})
        store = self.store
        if key == store.api_key:
            return
        denied = store.restricted_keys.get(key)
        if denied is None:
            raise ApiError(
                401, {"type": "invalid_request_error", "message": f"Invalid API Key provided: {mask_key(key)}"}
            )
        for prefix in denied:
            prefix = prefix.rstrip("/")
            if path == prefix or path.startswith(prefix + "/"):
                raise ApiError(403, self._permission_error(key, resource))

    def _permission_error(self, key: str, resource: Resource | None) -> dict[str, Any]:
        permission = resource.permission if resource else "rak_read"
        return {
            "type": "invalid_request_error",
            "message": (
                f"The provided key '{mask_key(key)}' does not have the required permissions for this endpoint "
                f"on account '{self.store.account_id}'. Having the '{permission}' permission would allow this "
                "request to continue."
            ),
        }

    def _admit(self, endpoint: str) -> bool:
        """Take a token from the endpoint's and the account's bucket (both, or neither)."""
        with self._lock:
            if self._per_endpoint is None and self._account_bucket is None:
                return True
            now = self._clock()
            buckets = []
            if self._per_endpoint is not None:
                bucket = self._buckets.get(endpoint)
                if bucket is None:
                    bucket = self._buckets[endpoint] = _Bucket(self._per_endpoint, now)
                buckets.append(bucket)
            if self._account_bucket is not None:
                buckets.append(self._account_bucket)
            for bucket in buckets:
                bucket.refill(now)
            if any(bucket.tokens < 1 for bucket in buckets):
                return False
            for bucket in buckets:
                bucket.tokens -= 1
            return True

    def _take_fault(self, path: str, query: dict[str, str]) -> _Injection | None:
        with self._lock:
            for injection in self._injections:
                if not path.startswith(injection.prefix):
                    continue
                if injection.when is not None and not injection.when(query):
                    continue
                if injection.remaining is not None:
                    injection.remaining -= 1
                    if injection.remaining <= 0:
                        self._injections.remove(injection)
                self._faults_served += 1
                return injection
        return None

    def _serve_fault(self, h: _Handler, injection: _Injection, version: str) -> bool:
        """Answer with the fault; False means carry on normally (a "hang" that timed out)."""
        fault, opts = injection.fault, injection.opts
        if fault == "429":
            self._respond(h, 429, _error_body(_rate_limit_error()), version)
        elif fault == "429_retry_after":
            retry_after = opts.get("retry_after", 1)
            self._respond(h, 429, _error_body(_rate_limit_error()), version, {"Retry-After": str(retry_after)})
        elif fault == "should_retry_429":
            self._respond(h, 429, _error_body(_rate_limit_error()), version, {"Stripe-Should-Retry": "true"})
        elif fault == "500":
            self._respond(h, 500, _error_body(_api_error("An unknown error occurred")), version)
        elif fault == "should_not_retry_500":
            body = _error_body(_api_error("An unknown error occurred"))
            self._respond(h, 500, body, version, {"Stripe-Should-Retry": "false"})
        elif fault == "503":
            body = _error_body(_api_error("Stripe is temporarily unavailable. Please try again later."))
            self._respond(h, 503, body, version)
        elif fault == "401":
            key = _presented_key(h.headers.get("Authorization")) or ""
            error = {"type": "invalid_request_error", "message": f"Invalid API Key provided: {mask_key(key)}"}
            self._respond(h, 401, _error_body(error), version)
        elif fault == "403":
            key = _presented_key(h.headers.get("Authorization")) or ""
            route = self._route(urlsplit(h.path).path.rstrip("/"))
            self._respond(h, 403, _error_body(self._permission_error(key, route[0] if route else None)), version)
        elif fault == "raw":
            self._respond(h, int(opts.get("status", 200)), bytes(opts.get("body", b"")), version)
        elif fault == "empty_has_more":
            path = urlsplit(h.path).path.rstrip("/")
            body = json.dumps({"object": "list", "data": [], "has_more": True, "url": path}).encode()
            self._respond(h, 200, body, version)
        elif fault == "drop":
            self._drop(h, version, opts.get("stage", "body"))
        elif fault == "hang":
            release = opts.get("release")  # a threading.Event: answer normally once the test sets it
            if release is not None:
                while not release.wait(0.05):
                    if self._closing.is_set():
                        h.close_connection = True
                        return True
                return False
            seconds = opts.get("seconds")
            if self._closing.wait(seconds) or seconds is None:
                h.close_connection = True
                return True
            return False
        return True

    def _drop(self, h: _Handler, version: str, stage: str) -> None:
        """Reset the connection: mid-body (headers promise more than is sent) or before any byte."""
        h.close_connection = True
        conn = h.connection
        try:
            if stage != "before":
                body = b'{"object":"list","data":[{"id":"ch_dropped","object":"charge","amount":'
                h.send_response(200)
                h.send_header("Content-Type", "application/json")
                h.send_header("Content-Length", str(len(body) * 40))
                h.send_header("Request-Id", self._request_id())
                h.send_header("Stripe-Version", version)
                h.end_headers()
                h.wfile.write(body)
            # SO_LINGER 0: close() sends RST, as a connection reset in the middle of a response.
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()
        except OSError:
            pass

    def _request_id(self) -> str:
        return "req_" + "".join(self._rng.choices(_REQ_ID_CHARS, k=14))

    def _respond(
        self, h: _Handler, status: int, body: bytes, version: str, headers: Mapping[str, str] | None = None
    ) -> None:
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(body)))
        h.send_header("Request-Id", self._request_id())
        h.send_header("Stripe-Version", version)
        h.send_header("Cache-Control", "no-cache, no-store")
        for name, value in (headers or {}).items():
            h.send_header(name, value)
        h.end_headers()
        h.wfile.write(body)

    # ----------------------------------------------------------------- endpoints

    def _list(self, resource: Resource, pairs: list[tuple[str, str]]) -> bytes:
        limit = 10
        created_min: int | None = None
        created_max: int | None = None
        starting_after: str | None = None
        ending_before: str | None = None
        filters: dict[str, str] = {}
        ranges: dict[str, tuple[int | None, int | None]] = {}
        expand: list[str] = []
        for name, value in pairs:
            if _is_expand(name):
                expand.append(value)
                continue
            if value == "":
                continue  # Stripe treats an empty value as "not given"
            if name == "limit":
                limit = _integer(name, value)
                if limit < 1:
                    raise invalid_request("This value must be greater than or equal to 1.", param="limit")
                if limit > 100:
                    raise invalid_request(
                        f"This value must be less than or equal to 100 (it currently is '{limit}').", param="limit"
                    )
            elif name == "starting_after":
                starting_after = value
            elif name == "ending_before":
                ending_before = value
            elif name == "created":
                exact = _integer(name, value)
                created_min = _tighter(created_min, exact, max)
                created_max = _tighter(created_max, exact, min)
            elif name.startswith("created[") and name.endswith("]") and name[8:-1] in _CREATED_OPS:
                op, bound = name[8:-1], _integer(name, value)
                if op in ("gte", "gt"):
                    created_min = _tighter(created_min, bound + (op == "gt"), max)
                else:
                    created_max = _tighter(created_max, bound - (op == "lt"), min)
            elif name in resource.ranges:  # e.g. a payout's arrival_date: exact, like `created`
                exact = _integer(name, value)
                low, high = ranges.get(name, (None, None))
                ranges[name] = (_tighter(low, exact, max), _tighter(high, exact, min))
            elif "[" in name and name.endswith("]") and name.split("[", 1)[0] in resource.ranges:
                field, op = name[:-1].split("[", 1)
                if op not in _CREATED_OPS:
                    raise invalid_request(f"Received unknown parameter: {name}", param=name)
                bound = _integer(name, value)
                low, high = ranges.get(field, (None, None))
                if op in ("gte", "gt"):
                    low = _tighter(low, bound + (op == "gt"), max)
                else:
                    high = _tighter(high, bound - (op == "lt"), min)
                ranges[field] = (low, high)
            elif name in resource.filters:
                filters[name] = value
            else:
                raise invalid_request(f"Received unknown parameter: {name}", param=name)
        if starting_after is not None and ending_before is not None:
            raise invalid_request(
                "You may only specify one of these parameters: ending_before, starting_after.", param="ending_before"
            )
        return self.store.list_page(
            resource.object,
            limit=limit,
            created_min=created_min,
            created_max=created_max,
            starting_after=starting_after,
            ending_before=ending_before,
            filters=filters,
            expand=parse_expand(resource, expand, is_list=True),
            ranges=ranges,
        )

    def _retrieve(self, resource: Resource, object_id: str, pairs: list[tuple[str, str]]) -> bytes:
        expand: list[str] = []
        for name, value in pairs:
            if _is_expand(name):
                expand.append(value)
            elif value != "":
                raise invalid_request(f"Received unknown parameter: {name}", param=name)
        tree = parse_expand(resource, expand, is_list=False)
        return self.store.retrieve_json(resource.object, object_id, tree)


def _page_fault_params(fault: str, pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The list parameters a broken page is answered with: without its cursor, or without its range."""
    if fault == "ignore_cursor":
        return [(k, v) for k, v in pairs if k not in ("starting_after", "ending_before")]
    if fault == "ignore_created":
        return [(k, v) for k, v in pairs if k != "created" and not k.startswith("created[")]
    return pairs


def _duplicate_first(body: bytes) -> bytes:
    page = json.loads(body)
    if page.get("data"):
        page["data"].insert(1, page["data"][0])
    return json.dumps(page, separators=(",", ":")).encode()


def _presented_key(header: str | None) -> str | None:
    """The API key from ``Authorization: Bearer KEY`` or ``Basic base64(KEY:)``."""
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer":
        return value or None
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        return decoded.partition(":")[0] or None
    return None


def _is_expand(name: str) -> bool:
    return name == "expand" or (name.startswith("expand[") and name.endswith("]"))


def _integer(name: str, value: str) -> int:
    if not _INT.fullmatch(value):
        raise invalid_request(f"Invalid integer: {value}", param=name)
    return int(value)


def _tighter(current: int | None, bound: int, pick: Callable[[int, int], int]) -> int:
    return bound if current is None else pick(current, bound)


def serve(
    store: StandinStore,
    host: str = "127.0.0.1",
    port: int = 0,
    latency: float = 0.0,
    rate_limit: Mapping[str, float | None] | float | None = None,
    *,
    log_requests: bool = True,
    clock: Callable[[], float] = time.monotonic,
    latency_spread: float = 0.0,
) -> StandinServer:
    """Start serving ``store`` in a background thread (port 0: a free port); returns the running server.

    ``rate_limit``: ``{"per_endpoint": 25, "account": 100}`` (requests/second; either may be
    None), or a bare number for the per-endpoint limit, or None for no limits. ``clock``: the
    rate limiter's time in seconds (a test can drive it, e.g. with the client's fake clock).
    ``latency_spread``: each request's latency is spread log-normally (this sigma) around ``latency``.
    """
    return StandinServer(
        store,
        host,
        port,
        latency,
        rate_limit,
        log_requests=log_requests,
        clock=clock,
        latency_spread=latency_spread,
    )
