"""A reconciliation run as JSON: the one shape the API and ``manage.py reconcile --json`` print.

Runs store their discrepancies, external orders and unmanaged holdings as JSON (see
services.py); older runs may lack keys added since, hence the defaults.
"""

from datetime import datetime
from typing import Literal

from ninja import Field, Schema

from tradebots.money import Money

from .models import ReconciliationRun
from .services import Kind

Outcome = Literal[tuple(ReconciliationRun.Outcome.values)]
Trigger = Literal[tuple(ReconciliationRun.Trigger.values)]


class WindowOut(Schema):
    start: datetime | None = Field(description="Exclusive; null: all of history was compared.")
    end: datetime | None
    limit: int | None
    since: datetime | None
    limit_reached: bool = Field(description="Older orders exist that were not fetched.")


class DiscrepancyBotOut(Schema):
    id: str | None = Field(description="Null when the bot was deleted or is unknown.")
    name: str | None
    prefix: str | None = Field(description="The bot's part of the client_order_id.")


class HoldingBotOut(Schema):
    id: str | None
    name: str | None
    qty: Money


class DiscrepancyOut(Schema):
    kind: Literal[tuple(str(kind) for kind in Kind)]
    label: str
    bot: DiscrepancyBotOut
    bots: list[HoldingBotOut] = Field(
        default_factory=list, description="position_mismatch: every bot holding the symbol."
    )
    trade_id: int | None = None
    order_id: str | None = None
    client_order_id: str | None = None
    symbol: str
    side: str | None = None
    ours: str | None = Field(None, description="Our side of what differs.")
    broker: str | None = Field(None, description="The broker's side of what differs.")
    our_qty: Money | None = None
    broker_qty: Money | None = None
    in_flight_sell_qty: Money | None = None
    detail: str
    submitted_at: datetime | None = None


class ExternalOrderOut(Schema):
    order_id: str | None
    client_order_id: str | None
    symbol: str
    side: str
    type: str
    qty: Money | None
    filled_qty: Money | None
    filled_avg_price: Money | None
    status: str
    submitted_at: datetime | None


class UnmanagedHoldingOut(Schema):
    symbol: str
    qty: Money = Field(description="What the broker holds beyond our open positions.")
    broker_qty: Money
    ours: Money
    market_value: Money | None


class RunSummaryOut(Schema):
    id: int
    outcome: Outcome
    summary: str = Field(description='"X orders synced, Y discrepancies found", or the failure.')
    error: str | None
    trigger: Trigger
    started_by: str
    last_checked: datetime = Field(description="When the run started.")
    finished_at: datetime
    duration_ms: int
    window: WindowOut
    orders_checked: int
    synced_count: int
    discrepancy_count: int
    external_count: int
    unlinked_trades: int = Field(description="Trades with neither order id: not compared.")
    in_flight: int = Field(description="Open trades the order sync is settling: not judged.")
    holdings_checked: int = Field(description="Symbols whose holdings were compared.")

    @staticmethod
    def resolve_error(run: ReconciliationRun) -> str | None:
        return run.error or None

    @staticmethod
    def resolve_last_checked(run: ReconciliationRun) -> datetime:
        return run.started_at

    @staticmethod
    def resolve_window(run: ReconciliationRun) -> dict:
        return {
            "start": run.window_start,
            "end": run.window_end,
            "limit": run.limit,
            "since": run.since,
            "limit_reached": run.limit_reached,
        }


class RunOut(RunSummaryOut):
    discrepancies: list[DiscrepancyOut]
    external_orders: list[ExternalOrderOut]
    unmanaged_holdings: list[UnmanagedHoldingOut] = Field(
        description="What the broker holds beyond our books: information, not discrepancies."
    )


def report(run: ReconciliationRun) -> dict:
    """The run as a JSON-ready dict (``reconcile --json``; the API renders RunOut itself)."""
    return RunOut.model_validate(run).model_dump(mode="json")
