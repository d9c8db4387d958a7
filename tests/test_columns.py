"""Compact column storage (reconcile/decide/columns.py): exact values, whatever a page holds."""

from __future__ import annotations

import numpy as np

from reconcile.decide.columns import compact, concat, frame, pack, rows


def test_integer_and_boolean_fields_are_packed_and_others_stay_lists():
    page = compact(
        pack(
            [
                {"id": "ch_1", "amount": 2500, "captured": True, "rate": None},
                {"id": "ch_2", "amount": 0, "captured": False, "rate": None},
            ]
        )
    )
    assert page["amount"].dtype == np.int64 and page["captured"].dtype == bool
    assert page["id"] == ["ch_1", "ch_2"] and page["rate"] == [None, None]


def test_a_value_no_int64_holds_keeps_its_field_exact():
    big, past = 2**63 - 1, 2**63
    page = compact(pack([{"amount": big}, {"amount": past}]))
    assert page["amount"] == [big, past]  # a list: numpy would refuse or wrap past int64
    mixed = compact(pack([{"amount": 1}, {"amount": None}, {"amount": True}]))
    assert mixed["amount"] == [1, None, True]  # a None or a bool among ints: the list as it was


def test_pages_concatenate_to_arrays_only_when_every_page_agrees():
    arrays = concat([compact(pack([{"n": 1}, {"n": 2}])), compact(pack([{"n": 3}]))])
    assert arrays["n"].dtype == np.int64 and arrays["n"].tolist() == [1, 2, 3]
    mixed = concat([compact(pack([{"n": 1}])), compact(pack([{"n": 2**63}])), compact(pack([{"m": "x"}]))])
    assert mixed["n"] == [1, 2**63, None] and mixed["m"] == [None, None, "x"]
    assert all(type(v) is int for v in mixed["n"][:2])  # Python ints, never numpy scalars


def test_rows_and_frames_give_python_values_back():
    cols = concat([compact(pack([{"id": "a", "amount": 7, "ok": True}]))])
    assert rows(cols) == [{"id": "a", "amount": 7, "ok": True}]
    assert type(rows(cols)[0]["amount"]) is int
    framed = frame(cols, ["id", "amount", "ok", "missing"])
    assert framed["amount"].dtype == np.int64 and framed["missing"].isna().all()
