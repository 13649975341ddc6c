"""Backtests as use cases: ask for one (validated, queued), run it (bars fetched where missing,
the simulation, the figures, stored), and turn a result into a bot. Pages, the API, the command
and the Celery task call these."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone
from pydantic import ValidationError

from bots import services as bot_services
from bots.models import Bot
from bots.schema import BotSettings, StrategyConfig, validation_errors
from tradebots import live
from tradebots.broker import BrokerError, get_broker

from . import bars as bar_data
from . import metrics
from .models import Backtest, BacktestTrade
from .schema import BacktestSettings
from .simulation import Bars, NotEnoughBars, Params, Result, simulate

logger = logging.getLogger(__name__)

FETCH_SHARE = 60  # percent of the progress bar given to fetching bars
PROGRESS_TEMPLATE = "backtests/detail.html#progress"
EQUITY_POINTS = 2000
# At most this often (seconds) a progress change is pushed to the page.
PROGRESS_PUSH_SECONDS = 0.5


class BacktestRefused(Exception):
    """Asked for something that cannot run: ``fields`` maps inputs to messages."""

    def __init__(self, message: str, fields: dict[str, str] | None = None):
        super().__init__(message)
        self.message = message
        self.fields = fields or {}


def backtest_group(backtest_id) -> str:
    return f"backtest.{backtest_id}"


# --- asking -------------------------------------------------------------------------------


def settings_of_bot(bot: Bot) -> dict:
    """A bot's settings as a backtest request's input (without the range)."""
    return {**bot.settings_input(), "name": f"{bot.name} backtest"}


def check_request(requested: BacktestSettings) -> BacktestSettings:
    """What the schema cannot know: the symbol exists at the broker, and whether it trades in
    fractions (as the engine, which buys fractions only where the asset allows them)."""
    try:
        bot_services.check_symbol(requested.symbol)
        if requested.allow_fractional and not get_broker().get_asset(requested.symbol).fractionable:
            return requested.model_copy(update={"allow_fractional": False})
    except bot_services.BotError as error:
        raise BacktestRefused(error.message, error.fields) from error
    except BrokerError as error:
        raise BacktestRefused(f"Cannot check the symbol: {error}.") from error
    return requested


def new_backtest(
    requested: BacktestSettings, user=None, bot: Bot | None = None, optimisation=None
) -> Backtest:
    return Backtest.objects.create(
        name=requested.name,
        bot=bot,
        optimisation=optimisation,
        created_by=user if user is not None and user.is_authenticated else None,
        symbol=requested.symbol,
        timeframe=requested.timeframe,
        strategy=requested.strategy.model_dump(mode="json"),
        capital=requested.capital,
        stop_loss_pct=requested.stop_loss_pct,
        take_profit_pct=requested.take_profit_pct,
        allow_fractional=requested.allow_fractional,
        slippage_bps=settings.PAPER_SLIPPAGE_BPS,
        commission_bps=requested.commission_bps,
        start=requested.start,
        end=min(requested.end, timezone.now()),
    )


def request_backtest(
    requested: BacktestSettings, user=None, bot: Bot | None = None, enqueue: bool = True
) -> Backtest:
    """Store the request and queue its run (after the transaction commits). The symbol is
    checked at the broker first: an unknown one runs nothing."""
    requested = check_request(requested)
    backtest = new_backtest(requested, user, bot)
    if enqueue:
        from .tasks import run_backtest  # the task module imports this one

        transaction.on_commit(lambda: run_backtest.delay(str(backtest.pk)))
    return backtest


def params_of(backtest: Backtest) -> Params:
    return Params(
        strategy=StrategyConfig.model_validate(backtest.strategy),
        capital=backtest.capital,
        stop_loss_pct=backtest.stop_loss_pct,
        take_profit_pct=backtest.take_profit_pct,
        allow_fractional=backtest.allow_fractional,
        slippage_bps=backtest.slippage_bps,
        commission_bps=backtest.commission_bps,
    )


# --- running ------------------------------------------------------------------------------


class _Progress:
    """Writes the backtest's progress and pushes it to its page, at most every half second."""

    def __init__(self, backtest: Backtest):
        self.backtest = backtest
        self.pushed_at = 0.0

    def __call__(self, status: str, percent: int, message: str = "", force: bool = False):
        backtest = self.backtest
        backtest.status, backtest.progress, backtest.message = status, percent, message[:300]
        Backtest.objects.filter(pk=backtest.pk).update(
            status=status, progress=percent, message=backtest.message
        )
        now = time.monotonic()
        if force or now - self.pushed_at >= PROGRESS_PUSH_SECONDS:
            self.pushed_at = now
            push_progress(backtest)


def push_progress(backtest: Backtest) -> None:
    live.send_html(
        backtest_group(backtest.pk),
        render_to_string(PROGRESS_TEMPLATE, {"backtest": backtest, "oob": True, "swapped": True}),
    )


def run_backtest(backtest_id) -> Backtest:
    """Fetch the missing bars, run, store the figures. A refusal on the way (unknown data, too
    few bars) ends the backtest as failed with the reason; it never raises for those."""
    backtest = Backtest.objects.get(pk=backtest_id)
    # Claimed: a redelivered task, or the sweep, sees it taken.
    if not Backtest.objects.filter(pk=backtest.pk, status=Backtest.Status.QUEUED).update(
        status=Backtest.Status.FETCHING, started_at=timezone.now()
    ):
        return backtest
    progress = _Progress(backtest)
    try:
        progress(Backtest.Status.FETCHING, 0, "Fetching bars", force=True)
        bar_data.ensure_bars(
            backtest.symbol, backtest.timeframe, backtest.start, backtest.end,
            progress=lambda done: progress(
                Backtest.Status.FETCHING, int(done * FETCH_SHARE), "Fetching bars"
            ),
        )  # fmt: skip
        progress(Backtest.Status.RUNNING, FETCH_SHARE, "Replaying the strategy", force=True)
        bars = bar_data.load_bars(backtest.symbol, backtest.timeframe, backtest.start, backtest.end)
        result = simulate(params_of(backtest), bars)
        store_result(backtest, bars, result)
        push_progress(backtest)
    except (bar_data.BarDataError, NotEnoughBars) as refusal:
        progress(Backtest.Status.FAILED, backtest.progress, str(refusal), force=True)
        Backtest.objects.filter(pk=backtest.pk).update(finished_at=timezone.now())
        return backtest
    except Exception as error:
        logger.exception("Backtest %s failed", backtest.pk)
        progress(Backtest.Status.FAILED, backtest.progress, f"Failed: {error}", force=True)
        Backtest.objects.filter(pk=backtest.pk).update(finished_at=timezone.now())
        raise
    return backtest


@dataclass(frozen=True)
class Figures:
    """What a run's page, the API and the command show besides its trades."""

    metrics: dict
    equity: list  # [[epoch seconds, equity], ...] thinned
    drawdown: list  # [[epoch seconds, percent under the peak], ...] thinned, its lows kept


def figures(bars: Bars, result: Result, capital: Decimal) -> Figures:
    computed = metrics.compute(result, bars, capital)
    computed["exit_reasons"] = metrics.exit_reasons(result.trades)
    computed["monthly_returns"] = metrics.monthly_returns(result.equity, bars.time, capital)
    return Figures(
        metrics=computed,
        equity=metrics.thin(bars.time, result.equity, EQUITY_POINTS),
        # From the whole curve, not the thinned one: thinning keeps lows, not the peaks a
        # drawdown is measured from.
        drawdown=metrics.thin(bars.time, metrics.drawdown_series(result.equity), EQUITY_POINTS),
    )


def _at(bars: Bars, index: int) -> datetime:
    return datetime.fromtimestamp(int(bars.time[index]), tz=UTC)


def store_result(backtest: Backtest, bars: Bars, result: Result) -> None:
    """The trades and the figures of a run, in one transaction."""
    with transaction.atomic():
        backtest.trades.all().delete()
        BacktestTrade.objects.bulk_create(
            (
                BacktestTrade(
                    backtest=backtest,
                    number=number,
                    qty=trade.qty,
                    entry_at=_at(bars, trade.entry_filled),
                    entry_price=trade.entry_price,
                    entry_reason=trade.entry_reason,
                    exit_at=_at(bars, trade.exit_filled),
                    exit_price=trade.exit_price,
                    exit_reason=trade.exit_reason,
                    pnl=trade.pnl,
                    return_pct=trade.return_pct.quantize(Decimal("0.0001")),
                )
                for number, trade in enumerate(result.trades, start=1)
            ),
            batch_size=2000,
        )
        if not store_figures(backtest, bars, result):
            transaction.set_rollback(True)  # ended by the sweep meanwhile: no trades either


def store_figures(backtest: Backtest, bars: Bars, result: Result) -> bool:
    """The figures and curve of a run, and the run done (a grid's runs keep only these). Only a
    run still running is done: one the sweep ended meanwhile stays ended (False)."""
    shown = figures(bars, result, backtest.capital)
    fields = {
        "bar_count": len(bars),
        "first_bar_at": _at(bars, 0),
        "last_bar_at": _at(bars, len(bars) - 1),
        "metrics": shown.metrics,
        "equity": shown.equity,
        "drawdown": shown.drawdown,
        "finished_at": timezone.now(),
        "status": Backtest.Status.DONE,
        "progress": 100,
        "message": "",
    }
    if not Backtest.objects.filter(pk=backtest.pk, status=Backtest.Status.RUNNING).update(**fields):
        return False
    for name, value in fields.items():
        setattr(backtest, name, value)
    return True


# --- from a result to a bot -----------------------------------------------------------------


def result_settings(backtest: Backtest) -> dict:
    """The bot fields a result's configuration stands for."""
    return {
        "symbol": backtest.symbol,
        "timeframe": backtest.timeframe,
        "capital": backtest.capital,
        "strategy": backtest.strategy,
        "stop_loss_pct": backtest.stop_loss_pct,
        "take_profit_pct": backtest.take_profit_pct,
        "allow_fractional": backtest.allow_fractional,
    }


def create_bot_from(backtest: Backtest, name: str, actor: str) -> Bot:
    """A new (stopped) bot with the result's configuration, through the normal capital check."""
    data = _bot_fields(backtest, name)
    return bot_services.create_bot(data, actor)


def apply_to_bot(backtest: Backtest, bot: Bot, actor: str) -> Bot:
    """The result's configuration on an existing bot, through the normal checks: a symbol or
    timeframe change is refused while the bot is exposed, a raise of capital is checked."""
    data = _bot_fields(backtest, bot.name)
    data.pop("name")
    return bot_services.update_bot(bot, data, actor)


def _bot_fields(backtest: Backtest, name: str) -> dict:
    try:
        settings = BotSettings.model_validate({**_input(backtest), "name": name})
    except ValidationError as error:
        problems = validation_errors(error)
        raise BacktestRefused(
            " ".join(message for messages in problems.values() for message in messages)
        ) from None
    return settings.bot_fields()


def _input(backtest: Backtest) -> dict:
    fields = result_settings(backtest)
    return {key: value for key, value in fields.items() if value is not None}
