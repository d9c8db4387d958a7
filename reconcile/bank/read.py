"""Which statement files a run reads, each format told from the file's content, and reading them."""

from __future__ import annotations

import glob
import re
from collections.abc import Iterable
from pathlib import Path

from reconcile.bank.bai import looks_like_bai2, read_bai2
from reconcile.bank.camt import looks_like_camt053, read_camt053
from reconcile.bank.common import decode, problem
from reconcile.bank.csvfile import find_header, read_csv
from reconcile.bank.ofx import read_ofx
from reconcile.bank.swift import looks_like_mt940, read_mt940
from reconcile.config import BankConfig
from reconcile.decide.bank import Statement

# A statement larger than this is not one (a wrong glob matching a database dump, say).
MAX_BYTES = 200 * 1024 * 1024


def statement_paths(bank: BankConfig, cli_files: Iterable[str | Path] = ()) -> list[Path]:
    """The files a run reads: those given on the command line (each must exist), then those bank.statements
    matches (none matching is no error: the payouts are then not provable yet). Each file once, in order."""
    paths: list[Path] = []
    for name in cli_files:
        path = Path(name).expanduser()
        if not path.is_file():
            raise problem(str(name), None, "no such file")
        paths.append(path)
    if bank.statements:
        pattern = str(Path(bank.statements).expanduser())
        paths += [Path(p) for p in sorted(glob.glob(pattern, recursive=True)) if Path(p).is_file()]
    seen: set[Path] = set()
    unique = []
    for path in paths:
        key = path.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(path)
    return unique


def detect_format(text: str, bank: BankConfig) -> str | None:
    """The statement format the content says (decide/bank.FORMATS), or None when it is none the job reads."""
    head = text.lstrip("\ufeff \t\r\n")[:4000]
    if head.startswith("OFXHEADER") or re.search(r"<\?OFX\b|<OFX>", head[:1000], re.IGNORECASE):
        return "ofx"
    if looks_like_camt053(head):
        return "camt.053"
    if head.startswith("<"):
        return None
    if looks_like_bai2(head):
        return "bai2"
    if looks_like_mt940(text):
        return "mt940"
    if find_header(text, bank):
        return "csv"
    return None


def read_statement(path: str | Path, bank: BankConfig) -> list[Statement]:
    """One file's statements (an OFX, camt.053, MT940 or BAI2 file may hold several accounts or days)."""
    file = str(path)
    try:
        with open(path, "rb") as handle:  # read only: a statement is never changed
            data = handle.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise problem(file, None, "no such file") from None
    except OSError as exc:
        raise problem(file, None, f"cannot be read: {exc.strerror}") from None
    if len(data) > MAX_BYTES:
        raise problem(file, None, f"larger than {MAX_BYTES // 1024 // 1024} MB: not a statement")
    if b"\x00" in data[:4096]:
        raise problem(file, None, "a binary file, not a statement (export OFX, MT940, camt.053, BAI2 or CSV)")
    text = decode(data)
    kind = detect_format(text, bank)
    if kind == "ofx":
        return read_ofx(file, data, text)
    if kind == "camt.053":
        return read_camt053(file, data)
    if kind == "bai2":
        return read_bai2(file, text)
    if kind == "mt940":
        return read_mt940(file, text)
    if kind == "csv":
        return [read_csv(file, text, bank)]
    columns = ", ".join(
        repr(c) for c in (bank.date_column, bank.amount_column if not bank.credit_column else bank.credit_column)
    )
    raise problem(
        file,
        None,
        "not a statement format the job reads: OFX, MT940, camt.053, BAI2, or CSV with a header naming "
        f"the [bank] columns ({columns})",
    )


def read_statements(paths: Iterable[str | Path], bank: BankConfig) -> list[Statement]:
    """Every statement in the files, in file order; the first file that cannot be read stops with its error."""
    return [statement for path in paths for statement in read_statement(path, bank)]
