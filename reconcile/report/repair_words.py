"""Repairs and undos in words: what an order changed by another writer, or about to be put back, is now."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from reconcile.decide.undo import OrderNow


def order_now(order: OrderNow | None) -> str:
    """An order as it is now (status, charge id, the last change's marker), in words."""
    if order is None:
        return "the order no longer exists"
    bits = [f"status {order.status!r}", f"charge {order.charge_id or 'none'}"]
    if order.marker.get("run_id"):
        bits.append(f"last changed by {order.marker.get('action') or 'a change'} {order.marker['run_id']}")
    return ", ".join(bits)


def lost_race(now: Mapping[str, OrderNow | None]) -> Callable[[str], str]:
    """The detail of an order changed by another writer during the run, by order key (`now`: the orders
    as they are now, None for one that no longer exists: RepairResult.lost_now)."""

    def detail(key: str) -> str:
        said = f" (now {order_now(now[key])})" if key in now else ""
        return f"changed by another writer during this run{said}; left alone"

    return detail
