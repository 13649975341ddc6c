"""JSON API for positions: what each bot holds, and what the broker holds that no bot owns."""

from decimal import Decimal

from django.http import JsonResponse
from django.shortcuts import get_object_or_404

from tradebots.api import api_methods, json_error

from . import emergency
from .broker import BrokerError, get_broker
from .models import Position
from .positions import OpenPositionRow, find_unmanaged, tracked_quantities


def _money(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _managed_json(row: OpenPositionRow) -> dict:
    position = row.position
    return {
        "id": position.pk,
        "managed": True,
        "bot_id": str(position.bot_id) if position.bot_id else None,
        "bot_name": position.bot.name if position.bot else None,
        "symbol": position.symbol,
        "qty": str(position.qty),
        "avg_entry_price": str(position.avg_entry_price),
        "current_price": _money(row.price),
        "unrealized_pl": _money(row.unrealized_pnl),
        "entry_reason": position.entry_reason,
        "opened_at": position.opened_at.isoformat(),
    }


@api_methods("GET")
def positions(request):
    try:
        broker_positions = get_broker().list_positions()
    except BrokerError as error:
        return json_error(f"Broker unreachable: {error}", 503)
    prices = {held.symbol: held.current_price for held in broker_positions}
    rows = [
        OpenPositionRow(position, prices.get(position.symbol))
        for position in Position.objects.filter(is_open=True).select_related("bot")
    ]
    managed = [_managed_json(row) for row in rows]
    unmanaged = [
        {
            "id": None,
            "managed": False,
            "bot_id": None,
            "bot_name": None,
            "symbol": held.symbol,
            "qty": str(held.qty),
            "avg_entry_price": str(held.avg_entry_price),
            "current_price": _money(held.current_price),
            "unrealized_pl": _money(held.unrealized_pl),
            "entry_reason": None,
            "opened_at": None,
        }
        for held in find_unmanaged(broker_positions, tracked_quantities())
    ]
    return JsonResponse({"positions": managed + unmanaged})


@api_methods("POST")
def close_position(request, pk):
    """Sell the whole position at market; ?pause_bot=false leaves its bot running."""
    position = get_object_or_404(Position, pk=pk)
    pause_raw = request.GET.get("pause_bot", "true").lower()
    if pause_raw not in ("true", "false"):
        return json_error("pause_bot must be true or false", 400)
    try:
        result = emergency.close_position(
            position, request.user.get_username(), pause_bot=pause_raw == "true"
        )
    except emergency.CloseRefused as refused:
        return json_error(refused.message, refused.status)
    trade = result.trade
    return JsonResponse(
        {
            "message": result.message,
            "confirmed": result.confirmed,
            "already_in_flight": result.already_in_flight,
            "trade": {
                "id": trade.pk,
                "client_order_id": trade.client_order_id,
                "order_id": trade.order_id,
                "symbol": trade.symbol,
                "side": trade.side,
                "qty": str(trade.qty),
                "filled_qty": str(trade.filled_qty),
                "price": _money(trade.price),
                "status": trade.status,
                "reason": trade.reason,
            },
            "bot": (
                {"id": str(result.bot.pk), "name": result.bot.name, "status": result.bot.status}
                if result.bot
                else None
            ),
        },
        # 202: accepted for processing, outcome not known yet (the task keeps resolving it).
        status=200 if result.confirmed else 202,
    )
