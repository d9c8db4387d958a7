"""The demo shop `reconcile demo` keeps in ./reconcile-demo/, so the commands after it work on it.

The folder holds the Stripe stand-in's objects (stripe.json), the embedded MongoDB's files (mongo/)
and the config naming them (reconcile.toml, also written to the current directory when none is
there). A command run with that config has both servers started on loopback for its length: the
stand-in on the port the config's `stripe.api_base` names, MongoDB on a free port whose URI goes in
the config's `mongodb.uri_env` variable. The Stripe key is the demo's fake test key; no secret is written.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from reconcile.errors import ConfigError, MongoUnavailable

DEMO_KEY = "sk_test_reconcile_demo"  # a fake test key: the stand-in's, nothing real
KEY_ENV = "RECONCILE_DEMO_STRIPE_KEY"  # the demo config's stripe.api_key_env: how a command knows it
URI_ENV = "RECONCILE_DEMO_MONGODB_URI"
FOLDER = "reconcile-demo"
CONFIG = "reconcile.toml"
STRIPE_FILE = "stripe.json"
MONGO_DIR = "mongo"

HEADER = """\
# Written by `reconcile demo`: its shop, kept in {folder}/ (the Stripe stand-in's data and the
# embedded MongoDB's files). Every reconcile command run with this config starts both on loopback
# for its length: the stand-in on the port of stripe.api_base, MongoDB on a free port. The Stripe
# key is the demo's fake test key, set by the command itself: no secret is kept here.
# `reconcile demo` again starts a fresh shop; delete this file and {folder}/ when done.
"""


@dataclass(frozen=True)
class DemoFolder:
    """Where the demo shop is kept."""

    root: Path

    @property
    def stripe_file(self) -> Path:
        return self.root / STRIPE_FILE

    @property
    def mongo_dir(self) -> Path:
        return self.root / MONGO_DIR

    @property
    def config(self) -> Path:
        return self.root / CONFIG

    def holds_a_shop(self) -> bool:
        return self.stripe_file.exists() or self.mongo_dir.exists()

    def start_afresh(self) -> None:
        """An empty folder for a new shop: an earlier demo's data and config removed (nothing else in it)."""
        shutil.rmtree(self.mongo_dir, ignore_errors=True)
        for path in (self.stripe_file, self.config):
            path.unlink(missing_ok=True)
        self.mongo_dir.mkdir(parents=True)


def folder_of(config_path: Path) -> DemoFolder:
    """The folder of the shop a demo config names: the config's own folder, or reconcile-demo/ beside it."""
    here = DemoFolder(config_path.parent)
    folder = here if here.stripe_file.exists() else DemoFolder(config_path.parent / FOLDER)
    if not folder.stripe_file.exists() or not folder.mongo_dir.is_dir():
        raise ConfigError(
            f"{config_path} is the demo's config, but its shop is not in {folder.root}: "
            "run `reconcile demo` again for a new one"
        )
    return folder


def config_text(raw: Mapping[str, Mapping[str, Any]], folder: str) -> str:
    """The demo's config as TOML (its values are strings and lists of strings), after a header saying what it is."""
    lines = [HEADER.format(folder=folder).rstrip("\n")]
    for section, values in raw.items():
        lines.append(f"\n[{section}]")
        lines.extend(f"{key} = {json.dumps(value)}" for key, value in values.items())
    return "\n".join(lines) + "\n"


def write_configs(folder: DemoFolder, raw: Mapping[str, Mapping[str, Any]], here: Path) -> str:
    """The config in the folder, and in `here` unless a config that is not the demo's is there; what was written."""
    name = os.path.relpath(folder.root, here)
    folder.config.write_text(config_text(raw, name), encoding="utf-8")
    beside = here / CONFIG
    if beside.exists() and not is_demo_config(beside):
        return (
            f"kept: the demo shop in {name}/; {CONFIG} here is not the demo's and is left alone: "
            f"add `--config {name}/{CONFIG}` to the commands that follow"
        )
    beside.write_text(config_text(raw, name), encoding="utf-8")
    return f"kept: the demo shop in {name}/ and its config in {CONFIG}: try `reconcile items`"


def is_demo_config(path: Path) -> bool:
    """A config `reconcile demo` wrote: it names the demo's own Stripe key variable."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return False
    stripe = raw.get("stripe")
    return isinstance(stripe, dict) and stripe.get("api_key_env") == KEY_ENV


def serve_kept_shop(config_path: Path) -> contextlib.AbstractContextManager[None]:
    """With a config `reconcile demo` wrote, its kept shop's servers for the length of a command; else nothing."""
    return serving(config_path) if is_demo_config(config_path) else contextlib.nullcontext()


@contextlib.contextmanager
def serving(config_path: Path) -> Iterator[None]:
    """The kept shop's servers, for the length of a command run with its config (KEY_ENV and URI_ENV set)."""
    from reconcile.demo.embedded_mongo import EmbeddedMongo
    from reconcile.demo.standin import StandinStore, serve

    folder = folder_of(config_path)
    api_base = str(tomllib.loads(config_path.read_text(encoding="utf-8"))["stripe"].get("api_base") or "")
    port = urlsplit(api_base).port
    if not port:
        raise ConfigError(f"{config_path}: stripe.api_base names no port for the demo's Stripe stand-in")
    try:
        store = StandinStore.load(folder.stripe_file, DEMO_KEY)
    except (OSError, ValueError, KeyError) as exc:
        raise ConfigError(
            f"the demo's Stripe data {folder.stripe_file} cannot be read ({exc}): run `reconcile demo` again"
        ) from None
    saved = {name: os.environ.get(name) for name in (KEY_ENV, URI_ENV)}
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(serve(store, port=port))
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            raise ConfigError(
                f"the demo's Stripe stand-in cannot listen on {api_base}: the port is in use; "
                "`reconcile demo` again picks a free one"
            ) from None
        try:
            mongo = stack.enter_context(EmbeddedMongo(db_path=str(folder.mongo_dir.resolve())))
        except RuntimeError as exc:
            raise MongoUnavailable(f"the demo's embedded MongoDB on {folder.mongo_dir} did not start: {exc}") from None
        os.environ[KEY_ENV], os.environ[URI_ENV] = DEMO_KEY, mongo.uri
        try:
            yield
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
