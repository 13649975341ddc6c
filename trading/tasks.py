from celery import shared_task

from . import engine, orders
from .models import Trade


@shared_task
def engine_tick() -> dict:
    """Beat's tick: each batch of symbols becomes a task, so more workers share the load."""
    report = engine.run_tick(dispatch=_enqueue)
    return {"market_open": report.market_open, "batches": len(report.batches)}


def _enqueue(batch: engine.Batch) -> None:
    evaluate_batch.delay(batch.timeframe, list(batch.symbols))


@shared_task
def evaluate_batch(timeframe: str, symbols: list[str]) -> list[str]:
    outcomes = engine.evaluate_batch(engine.Batch(timeframe, tuple(symbols)))
    return [outcome.describe() for outcome in outcomes]


@shared_task
def sync_open_orders() -> dict:
    return orders.sync_open_orders()


@shared_task
def verify_trade(trade_id: int) -> str:
    """Fill verification for an order whose sender did not wait (the emergency sell)."""
    trade = orders.verify_fill(Trade.objects.get(pk=trade_id))
    return trade.status
