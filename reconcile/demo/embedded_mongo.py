"""A local MongoDB wire-protocol server (nx-27017, SQLite-backed) for the demo and the tests."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pymongo

from reconcile.errors import ConfigError


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class EmbeddedMongo:
    """Starts `nx-27017 --db memory` (or a file) on a free loopback port; `.uri` to connect, `.stop()` to end it.

    `.kill()` crashes it (SIGKILL) and `.restart()` brings it back on the same port: tests of a
    database lost mid-run give it a directory as `db_path` (one SQLite file per database; a
    single file would share collections between databases) so committed writes survive.
    """

    def __init__(self, port: int | None = None, db_path: str = "memory", startup_timeout: float = 20.0):
        self.port = port or free_port()
        self.db_path = db_path
        self.startup_timeout = startup_timeout
        self._workdir = Path(tempfile.mkdtemp(prefix="reconcile-mongo-"))
        self._process: subprocess.Popen | None = None

    @property
    def uri(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/?directConnection=true"

    def start(self) -> EmbeddedMongo:
        self._workdir.mkdir(parents=True, exist_ok=True)
        executable = shutil.which("nx-27017") or str(Path(sys.executable).with_name("nx-27017"))
        if not Path(executable).exists():
            raise ConfigError("the embedded MongoDB server is not installed: pip install 'nx-27017' (or '.[demo]')")
        self._process = subprocess.Popen(
            [
                executable,
                "--db",
                self.db_path,
                "--host",
                "127.0.0.1",
                "-p",
                str(self.port),
                "--log-file",
                str(self._workdir / "server.log"),
                "--pid-file",
                str(self._workdir / "server.pid"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=self._workdir,
        )
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"nx-27017 exited at start (code {self._process.returncode})")
            try:
                client: pymongo.MongoClient[dict[str, Any]]
                with pymongo.MongoClient(self.uri, serverSelectionTimeoutMS=250) as client:
                    client.admin.command("ping")
                return self
            except pymongo.errors.PyMongoError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"nx-27017 did not answer on port {self.port} within {self.startup_timeout:.0f}s")

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self._process and self._process.poll() is None:
            self._process.kill()
            self._process.wait(timeout=10)

    def restart(self) -> EmbeddedMongo:
        """Start again on the same port: with a file `db_path` the data survives, as after a real crash."""
        self.kill()
        return self.start()

    def stop(self) -> None:
        if self._process and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()
        shutil.rmtree(self._workdir, ignore_errors=True)

    def __enter__(self) -> EmbeddedMongo:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
