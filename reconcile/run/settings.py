"""What each step takes, built from the whole `Config` in one place (the run side: decide/ and store/
never see the `Config`): the decision's `Rules`, the repair store's collections and field names, and
the few values each step of a window run uses (`WindowSettings`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial

from pymongo.database import Database

from reconcile.config import Config, OrdersConfig, Threshold
from reconcile.decide.bank import BankRules
from reconcile.decide.classify import Rules
from reconcile.decide.payouts import PayoutRules
from reconcile.store.repair import RepairStore
from reconcile.stripe.payments import Linking
from reconcile.stripe.pull import RetryPolicy
from reconcile.timeutil import to_unix


def rules_for(config: Config, now: datetime, dismissed: frozenset[tuple[str, str]] = frozenset()) -> Rules:
    """The decision's rules (classify's `Rules`) from the config's orders and matching sections;
    `dismissed`: probable-match pairs people dismissed (store.items.dismissed_pairs)."""
    o, matching = config.orders, config.matching
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
        settle_seconds=tuple(o.settle_seconds().items()),
    )


def rules_at(rules: Rules, now: datetime, dismissed: frozenset[tuple[str, str]]) -> Rules:
    """`rules` (as `WindowSettings.rules` holds them) for a run at `now` with the pairs people dismissed."""
    return dataclasses.replace(rules, now=to_unix(now), dismissed_pairs=dismissed)


def repair_store(db: Database, config: Config) -> RepairStore:
    """Where repairs and their audit records go, and the order fields they read and set."""
    return RepairStore(
        orders=db[config.mongodb.orders_collection],
        audit=db[config.mongodb.audit_collection],
        fields=config.orders,
        batch_size=config.mongodb.repair_batch_size,
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
class Collections:
    """Where a window run reads and writes: the collections by name, the scans' timeout, the repair batch."""

    orders: str
    audit: str
    runs: str
    items: str
    decisions: str
    scan_timeout: float  # seconds: how long the window's order queries may take (for the error message)
    repair_batch_size: int
    state: str = "reconcile_state"  # the watermark, the lease, the watch list of slow payments


@dataclass(frozen=True)
class ReportLinks:
    """What the report links to and how far back its trend goes."""

    dashboard_url: str
    order_url: str | None
    trend_days: int


@dataclass(frozen=True)
class PayoutSettings:
    """What the payouts of a window run take (run/payouts.py): the rules and where the watched payouts are kept."""

    rules: PayoutRules
    collection: str
    bank: BankRules = field(default_factory=BankRules)  # matching the payouts to bank statements ([bank])


def payout_settings(config: Config) -> PayoutSettings | None:
    """None when `payouts.enabled` is false."""
    p = config.payouts
    if not p.enabled:
        return None
    rules = PayoutRules(int(p.overdue_after.total_seconds()), int(p.watch_paid_for.total_seconds()))
    return PayoutSettings(rules, p.collection, BankRules.from_config(config.bank))


@dataclass(frozen=True)
class WindowSettings:
    """What one window run (run/window.py) uses of the config, a few values per step."""

    collections: Collections
    orders: OrdersConfig  # the order fields and statuses the store's loads and repairs read and set
    linking: Linking  # what the Stripe side needs to link payments to orders
    rules: Rules  # the decision's rules; `now` and the dismissed pairs are set per run (`rules_at`)
    retry: Callable[[], RetryPolicy]  # the retry policy of a run given none
    report: ReportLinks
    severity: tuple[Threshold, ...]  # items.severity
    payouts: PayoutSettings | None = None  # None: payouts are not read

    def repair_store(self, db: Database) -> RepairStore:
        c = self.collections
        return RepairStore(orders=db[c.orders], audit=db[c.audit], fields=self.orders, batch_size=c.repair_batch_size)


def window_settings(config: Config) -> WindowSettings:
    m = config.mongodb
    return WindowSettings(
        collections=Collections(
            orders=m.orders_collection,
            audit=m.audit_collection,
            runs=m.runs_collection,
            items=m.items_collection,
            decisions=m.decisions_collection,
            scan_timeout=m.scan_timeout.total_seconds(),
            repair_batch_size=m.repair_batch_size,
            state=m.state_collection,
        ),
        orders=config.orders,
        linking=linking(config),
        rules=rules_for(config, datetime.fromtimestamp(0, UTC)),
        retry=partial(RetryPolicy.from_config, config.stripe, config.test_mode_key()),
        report=ReportLinks(config.stripe.dashboard_url, config.report.order_url, config.report.trend_days),
        severity=config.items.severity,
        payouts=payout_settings(config),
    )
