"""JSON API: who is asking, the account (the dashboard's figures) and the system's status."""

from datetime import datetime
from typing import Literal

from ninja import Field, Router, Schema

from tradebots import health
from tradebots.api import responses
from tradebots.money import Money
from tradebots.permissions import can_trade
from trading.engine import market_status

from .services import account_summary

router = Router(tags=["account"])


class MeOut(Schema):
    username: str
    is_staff: bool
    is_superuser: bool
    can_trade: bool = Field(description="Whether this user may change bots, sell and reconcile.")


class AccountOut(Schema):
    broker: Literal["paper_exchange", "alpaca_paper", "alpaca_live"]
    broker_label: str
    account_number: str | None
    equity: Money | None
    cash: Money | None
    buying_power: Money | None
    portfolio_value: Money | None
    allocated_capital: Money = Field(description="The sum of every bot's capital.")
    reserved_capital: Money = Field(description="What the bots may still spend.")
    deployed_capital: Money = Field(description="Open positions' cost plus open buy orders.")
    available_capital: Money | None = Field(description="Buying power minus reserved capital.")
    available_level: Literal["healthy", "low", "over"] | None
    total_realized_gains: Money
    error: str | None = Field(description="Why the broker's figures are null, when they are.")


class CheckOut(Schema):
    ok: bool
    detail: str


class MarketOut(Schema):
    is_open: bool
    next_open: datetime
    next_close: datetime
    checked_at: datetime


class StatusOut(Schema):
    database: CheckOut
    redis: CheckOut
    worker: CheckOut = Field(description="The Celery worker and beat, by their heartbeat.")
    market: MarketOut | None = Field(
        description="The market clock as the engine's last tick saw it; null before any tick."
    )


@router.get("/me", response=responses({200: MeOut}))
def me(request):
    """Who the request is authenticated as: lets a script check its token."""
    user = request.user
    return {
        "username": user.get_username(),
        "is_staff": user.is_staff,
        "is_superuser": user.is_superuser,
        "can_trade": can_trade(user),
    }


@router.get("/account", response=responses({200: AccountOut}))
def account(request):
    """The broker's figures and our books (the dashboard's). When the broker cannot be reached,
    still 200: our books, the broker's figures null and ``error`` saying why."""
    return account_summary()


@router.get("/status", response=responses({200: StatusOut}))
def status(request):
    """The dashboard's system panel: database, Redis, the worker, and the market clock."""
    return {**health.system_status(), "market": market_status()}
