"""What each step takes, built from the whole `Config` in one place (the run side: decide/ and store/
never see the `Config`): the decision's `Rules`, the repair store's collections and field names."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pymongo.database import Database

from reconcile.config import Config, MatchingConfig, MongoConfig, OrdersConfig, ReportConfig, StripeConfig, Threshold
from reconcile.decide.classify import Rules
from reconcile.store.repair import RepairStore
from reconcile.stripe.payments import Linking
from reconcile.timeutil import to_unix


def rules_for(config: Config, now: datetime, dismissed: frozenset[tuple[str, str]] = frozenset()) -> Rules:
    """The decision's rules (classify's `Rules`) from the config's orders and matching sections;
    `dismissed`: probable-match pairs people dismissed (store.items.dismissed_pairs)."""
    return rules_of(config.orders, config.matching, now, dismissed)


def rules_of(
    o: OrdersConfig, matching: MatchingConfig, now: datetime, dismissed: frozenset[tuple[str, str]] = frozenset()
) -> Rules:
    """The decision's rules from the orders and matching sections (as `rules_for`)."""
    return Rules(
        pending_status=o.pending_status,
        paid_statuses=(o.paid_status, *o.other_paid_statuses),
        failed_status=o.failed_status,
        grace_seconds=int(o.grace_period.total_seconds()),
        now=to_unix(now),
        amount_tolerance=o.amount_tolerance,
        repair_within_tolerance=o.repair_within_tolerance,
        link_by=matching.link_by,
        probable_matches=matching.probable_matches,
        probable_drift_seconds=int(matching.probable_match_drift.total_seconds()),
        dismissed_pairs=dismissed,
    )


def repair_store(db: Database, config: Config) -> RepairStore:
    """Where repairs and their audit records go, and the order fields they read and set."""
    return repairs_in(db, config.mongodb, config.orders)


def repairs_in(db: Database, m: MongoConfig, fields: OrdersConfig) -> RepairStore:
    """The repair store from the mongodb and orders sections (as `repair_store`)."""
    return RepairStore(
        orders=db[m.orders_collection],
        audit=db[m.audit_collection],
        fields=fields,
        batch_size=m.repair_batch_size,
    )


def linking(config: Config) -> Linking:
    """What the Stripe side needs of the shop's settings: how orders name payments, how far past a window to look."""
    return Linking(
        metadata_key=config.stripe.order_id_metadata_key,
        link_by=config.matching.link_by,
        edge_slack=config.window.edge_slack,
        orders_store_intent_ids=bool(config.orders.payment_intent_id_field),
        orders_store_session_ids=bool(config.orders.checkout_session_id_field),
    )


@dataclass(frozen=True)
class WindowSettings:
    """What one window run (run/window.py) uses of the config."""

    mongodb: MongoConfig  # collection names, the scan timeout
    orders: OrdersConfig  # order fields and statuses
    matching: MatchingConfig  # link kinds, probable matches
    linking: Linking  # what the Stripe side needs to link payments to orders
    stripe: StripeConfig  # the retry settings (when no policy is passed), the order id metadata key, dashboard_url
    test_mode: bool  # the Stripe key is a sandbox key (its retry policy)
    report: ReportConfig  # trend_days, order_url
    severity: tuple[Threshold, ...]  # items.severity


def window_settings(config: Config) -> WindowSettings:
    return WindowSettings(
        mongodb=config.mongodb,
        orders=config.orders,
        matching=config.matching,
        linking=linking(config),
        stripe=config.stripe,
        test_mode=config.test_mode_key(),
        report=config.report,
        severity=config.items.severity,
    )
