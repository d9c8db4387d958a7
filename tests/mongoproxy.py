"""A TCP proxy in front of a MongoDB server that fails on cue: the network between the job and its database.

It reads the client's wire-protocol messages (OP_MSG, and OP_QUERY for the handshake) just
enough to know each command's name and collection, and can, at the n-th matching command:
- "drop": cut every connection and refuse new ones (MongoDB lost, until `restore()`);
- "hold": keep the command back until `release()` (a process frozen mid-write, to kill or signal);
- a callable: run it first (e.g. SIGKILL the real server), then forward the command;
- a dict: answer the command with that reply document instead of forwarding it (a server error,
  e.g. `{"ok": 0, "errmsg": ..., "code": 2, "codeName": "BadValue"}`).
Bytes are otherwise forwarded untouched, both ways, over real sockets.
"""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import bson

OP_QUERY, OP_MSG = 2004, 2013


@dataclass
class Rule:
    command: str
    collection: str | None
    nth: int
    action: str | Callable[[], None] | dict
    seen: int = 0
    hit: threading.Event = field(default_factory=threading.Event)  # set when the n-th match arrives
    released: threading.Event = field(default_factory=threading.Event)


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    chunks = []
    while n:
        chunk = sock.recv(n)
        if not chunk:
            raise ConnectionError("closed")
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def command_of(message: bytes) -> tuple[str | None, str | None]:
    """(command name, collection) of one client message; (None, None) if not readable."""
    op_code = struct.unpack_from("<i", message, 12)[0]
    try:
        if op_code == OP_MSG:
            pos = 20  # header (16) + flagBits (4)
            while pos < len(message):
                kind = message[pos]
                size = struct.unpack_from("<i", message, pos + 1)[0]
                if kind == 0:
                    doc = bson.decode(message[pos + 1 : pos + 1 + size])
                    break
                pos += 1 + size
            else:
                return None, None
        elif op_code == OP_QUERY:
            pos = message.index(b"\x00", 20) + 1 + 8  # flags, cstring collection, skip, return
            size = struct.unpack_from("<i", message, pos)[0]
            doc = bson.decode(message[pos : pos + size])
        else:
            return None, None
    except Exception:
        return None, None
    name = next(iter(doc), None)
    value = doc.get(name) if name else None
    return name, value if isinstance(value, str) else None


class MongoProxy:
    """Listens on a free loopback port and forwards to `upstream_port`; see the module docstring."""

    def __init__(self, upstream_port: int, host: str = "127.0.0.1"):
        self.upstream = (host, upstream_port)
        self.commands: list[tuple[str | None, str | None]] = []
        self._rules: list[Rule] = []
        self._lock = threading.Lock()
        self._down = False
        self._closed = False
        self._conns: set[socket.socket] = set()
        self._listener = socket.create_server((host, 0))
        self.port = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._accept, daemon=True, name=f"mongoproxy:{self.port}")
        self._thread.start()

    @property
    def uri(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/?directConnection=true"

    def on(
        self,
        command: str,
        collection: str | None = None,
        nth: int = 1,
        action: str | Callable[[], None] | dict = "drop",
    ) -> Rule:
        """At the n-th `command` (on `collection`, if given): do `action` ("drop", "hold", a callable, or a
        reply document to answer with)."""
        rule = Rule(command, collection, nth, action)
        with self._lock:
            self._rules.append(rule)
        return rule

    def count(self, command: str, collection: str | None = None) -> int:
        with self._lock:
            return sum(1 for c, coll in self.commands if c == command and (collection is None or coll == collection))

    def go_down(self) -> None:
        """MongoDB lost: every connection cut (reset), new ones closed at once."""
        with self._lock:
            self._down = True
            conns = list(self._conns)
        for conn in conns:
            _reset(conn)

    def restore(self) -> None:
        with self._lock:
            self._down = False
            self._rules.clear()

    def release(self) -> None:
        with self._lock:
            rules = list(self._rules)
        for rule in rules:
            rule.released.set()

    def close(self) -> None:
        self._closed = True
        self.release()
        self.go_down()
        self._listener.close()

    def __enter__(self) -> MongoProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ plumbing

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                down = self._down
            if down:
                _reset(client)
                continue
            try:
                upstream = socket.create_connection(self.upstream, timeout=5)
                upstream.settimeout(None)
            except OSError:
                _reset(client)
                continue
            with self._lock:
                self._conns |= {client, upstream}
            threading.Thread(target=self._client_to_server, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._server_to_client, args=(upstream, client), daemon=True).start()

    def _client_to_server(self, client: socket.socket, upstream: socket.socket) -> None:
        try:
            while True:
                header = _recv_exact(client, 16)
                length = struct.unpack_from("<i", header)[0]
                message = header + _recv_exact(client, length - 16)
                name, collection = command_of(message)
                rule = self._match(name, collection)
                if rule is not None and isinstance(rule.action, dict):
                    rule.hit.set()
                    client.sendall(_reply(message, rule.action))  # one request in flight per connection
                    continue
                if rule is not None and not self._apply(rule):
                    return
                upstream.sendall(message)
        except OSError:
            pass
        finally:
            self._forget(client, upstream)

    def _server_to_client(self, upstream: socket.socket, client: socket.socket) -> None:
        try:
            while True:
                data = upstream.recv(65536)
                if not data:
                    break
                client.sendall(data)
        except OSError:
            pass
        finally:
            self._forget(client, upstream)

    def _match(self, name: str | None, collection: str | None) -> Rule | None:
        with self._lock:
            self.commands.append((name, collection))
            for rule in self._rules:
                if rule.command == name and (rule.collection is None or rule.collection == collection):
                    rule.seen += 1
                    if rule.seen == rule.nth:
                        return rule
        return None

    def _apply(self, rule: Rule) -> bool:
        """Carry out a rule's action; False means the command must not be forwarded."""
        rule.hit.set()
        if rule.action == "drop":
            self.go_down()
            return False
        if rule.action == "hold":
            rule.released.wait()
            return not self._closed
        rule.action()  # e.g. kill the real server, then forward into whatever is left
        return True

    def _forget(self, *socks: socket.socket) -> None:
        with self._lock:
            for sock in socks:
                self._conns.discard(sock)
        for sock in socks:
            _reset(sock)


def _reply(request: bytes, document: dict) -> bytes:
    """An OP_MSG answer to `request` carrying `document` (header, flagBits, one kind-0 section)."""
    request_id = struct.unpack_from("<i", request, 4)[0]
    body = struct.pack("<I", 0) + b"\x00" + bson.encode(document)
    return struct.pack("<iiii", 16 + len(body), 0x5EED, request_id, OP_MSG) + body


def _reset(sock: socket.socket) -> None:
    """Close with RST, as a connection lost mid-conversation."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    try:
        sock.shutdown(socket.SHUT_RDWR)  # wakes a thread blocked in recv() on it
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass
