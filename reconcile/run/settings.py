"""What each step takes, built from the whole `Config` in one place (the run side: decide/ and store/
never see the `Config`): the decision's `Rules`, the repair store's collections and field names."""

from __future__ import annotations

from datetime import datetime

from pymongo.database import Database

from reconcile.config import Config
from reconcile.decide.classify import Rules
from reconcile.store.repair import RepairStore
from reconcile.timeutil import to_unix


def rules_for(config: Config, now: datetime, dismissed: frozenset[tuple[str, str]] = frozenset()) -> Rules:
    """The decision's rules (classify's `Rules`) from the config's orders and matching sections;
    `dismissed`: probable-match pairs people dismissed (store.items.dismissed_pairs)."""
    o = config.orders
    return Rules(
        pending_status=o.pending_status,
        paid_statuses=(o.paid_status, *o.other_paid_statuses),
        failed_status=o.failed_status,
        grace_seconds=int(o.grace_period.total_seconds()),
        now=to_unix(now),
        amount_tolerance=o.amount_tolerance,
        repair_within_tolerance=o.repair_within_tolerance,
        link_by=config.matching.link_by,
        probable_matches=config.matching.probable_matches,
        probable_drift_seconds=int(config.matching.probable_match_drift.total_seconds()),
        dismissed_pairs=dismissed,
    )


def repair_store(db: Database, config: Config) -> RepairStore:
    """Where repairs and their audit records go, and the order fields they read and set."""
    m = config.mongodb
    return RepairStore(
        orders=db[m.orders_collection],
        audit=db[m.audit_collection],
        fields=config.orders,
        batch_size=m.repair_batch_size,
    )
