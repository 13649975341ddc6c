"""The books as pages: the trades list (filters, pages, a detail dialog) and the positions page
(open positions valued at the broker's latest prices, closed positions with realized P&L)."""

import logging
from dataclasses import dataclass
from decimal import Decimal
from urllib.parse import urlencode

from django import forms
from django.contrib import messages
from django.core.paginator import Page, Paginator
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from bots.models import Bot
from tradebots import live
from tradebots.broker import BrokerError, describe_failure, get_broker
from tradebots.money import plain_decimal
from tradebots.permissions import trade_required

from . import emergency
from .models import Position, Trade
from .positions import open_book, open_symbols, remember_prices, unmanaged_positions

logger = logging.getLogger(__name__)

TRADES_PER_PAGE = 50
CLOSED_POSITIONS_PER_PAGE = 50
TRADES_TABLE_ID = "trades-table"
CLOSED_POSITIONS_ID = "closed-positions-table"


class TradeFilterForm(forms.Form):
    """The trades page's GET filters. A value that does not parse is ignored, not an error page."""

    bot = forms.ModelChoiceField(
        queryset=Bot.objects.order_by("name"), required=False, empty_label="All bots"
    )
    side = forms.ChoiceField(choices=[("", "All sides"), *Trade.Side.choices], required=False)
    status = forms.ChoiceField(
        choices=[("", "All statuses"), *Trade.Status.choices], required=False
    )


@dataclass
class PageChoice:
    """A page of a Paginator, or the fact that the asked-for page does not exist."""

    page: Page | None
    requested: int
    paginator: Paginator

    @property
    def missing(self) -> bool:
        return self.page is None

    @property
    def objects(self):
        return self.page.object_list if self.page else []


def _choose_page(queryset, number_text: str | None, per_page: int) -> PageChoice:
    paginator = Paginator(queryset, per_page)
    try:
        number = max(int(number_text or 1), 1)
    except ValueError:
        number = 1
    if number > paginator.num_pages:
        return PageChoice(None, number, paginator)
    return PageChoice(paginator.page(number), number, paginator)


def _wants_fragment(request, target_id: str) -> bool:
    """An htmx request aimed at one part of the page gets just that part; a plain GET, a
    boosted link or a history restore gets the whole page."""
    htmx = request.htmx
    return (
        bool(htmx)
        and not htmx.boosted
        and not htmx.history_restore_request
        and (htmx.target == target_id)
    )


def _render(request, full_template: str, fragment_template: str, target_id: str, context):
    fragment = _wants_fragment(request, target_id)
    response = render(request, fragment_template if fragment else full_template, context)
    # One URL answers with a page or a fragment: caches must keep them apart.
    patch_vary_headers(response, ["HX-Request", "HX-Target"])
    return response


@require_GET
def trade_list(request):
    form = TradeFilterForm(request.GET)
    form.is_valid()  # a field that fails is left out of cleaned_data: that filter is ignored
    filters = {name: value for name, value in form.cleaned_data.items() if value}
    ignored = [name for name in form.errors if request.GET.get(name)]

    trades = Trade.objects.select_related("bot").order_by("-created_at", "-id")
    for name, value in filters.items():
        trades = trades.filter(**{name: value})
    choice = _choose_page(trades, request.GET.get("page"), TRADES_PER_PAGE)

    filter_params = {
        name: (value.pk if isinstance(value, Bot) else value) for name, value in filters.items()
    }
    context = {
        "filter_form": TradeFilterForm(initial=filter_params),
        "filtered": bool(filters),
        "ignored_filters": ignored,
        "choice": choice,
        "trades": choice.objects,
        # Page links carry the filters; "&" is appended in the template before page=.
        "filter_query": urlencode(filter_params),
        # New trades pushed over the WebSocket only belong on the unfiltered first page.
        "live_insert": not filters and choice.requested == 1,
    }
    return _render(
        request,
        "trading/trades.html",
        "trading/trades.html#trades-table",
        TRADES_TABLE_ID,
        context,
    )


@require_GET
def trade_detail(request, pk):
    trade = get_object_or_404(Trade.objects.select_related("bot", "position"), pk=pk)
    if request.htmx and not request.htmx.boosted:
        response = render(
            request, "trading/partials/trade_detail.html", {"trade": trade, "in_dialog": True}
        )
    else:
        response = render(request, "trading/trade_detail.html", {"trade": trade})
    patch_vary_headers(response, ["HX-Request"])
    return response


def _latest_prices(symbols: list[str]) -> tuple[dict[str, Decimal], bool]:
    """One broker call for every open symbol; (prices, whether the broker answered)."""
    if not symbols:
        return {}, True
    try:
        return get_broker().get_latest_prices(symbols), True
    except BrokerError:
        logger.warning("Latest prices unavailable for %s", ", ".join(symbols), exc_info=True)
        return {}, False


@require_GET
def position_list(request):
    prices, prices_ok = _latest_prices(open_symbols())
    if prices:
        remember_prices(prices)
    book = open_book(prices)

    closed = Position.objects.filter(is_open=False).select_related("bot")
    closed_choice = _choose_page(
        closed.order_by("-closed_at", "-id"), request.GET.get("page"), CLOSED_POSITIONS_PER_PAGE
    )
    try:
        unmanaged, unmanaged_ok = unmanaged_positions(), True
    except BrokerError:
        logger.warning("Broker positions unavailable", exc_info=True)
        unmanaged, unmanaged_ok = [], False
    context = {
        "book": book,
        # The rows the page shows, for its live updates: ours and the unmanaged ones.
        "open_positions": [row.position for row in book.rows] + unmanaged,
        "unmanaged": unmanaged,
        "unmanaged_ok": unmanaged_ok,
        "prices_ok": prices_ok,
        "closed_choice": closed_choice,
        "closed_positions": closed_choice.objects,
        "live_insert": closed_choice.requested == 1,
    }
    return _render(
        request,
        "trading/positions.html",
        "trading/positions.html#closed-positions-table",
        CLOSED_POSITIONS_ID,
        context,
    )


# --- getting out -------------------------------------------------------------------------------


def _toast_or_redirect(request, message: str, level: str):
    if request.htmx:
        return HttpResponse(live.render_toast(message, level))
    getattr(messages, level if level in ("error", "warning") else "success")(request, message)
    return redirect("trading:positions")


@require_POST
@trade_required
def close_position(request, pk):
    position = get_object_or_404(Position, pk=pk)
    pause_bot = request.POST.get("pause_bot", "true").lower() != "false"
    try:
        result = emergency.close_position(position, request.user.get_username(), pause_bot)
    except emergency.CloseRefused as refused:
        return _toast_or_redirect(request, refused.message, "error")
    return _toast_or_redirect(request, result.message, "success" if result.confirmed else "warning")


@require_POST
@trade_required
def close_unmanaged(request, symbol):
    try:
        trade = emergency.close_unmanaged(symbol, request.user.get_username())
    except emergency.CloseRefused as refused:
        return _toast_or_redirect(request, refused.message, "error")
    except BrokerError as error:
        return _toast_or_redirect(request, describe_failure(error), "error")
    verb = "Sold" if trade.side == Trade.Side.SELL else "Bought back"
    return _toast_or_redirect(
        request, f"{verb} {plain_decimal(trade.qty)} unmanaged {symbol} shares.", "success"
    )


@require_http_methods(["GET", "POST"])
@trade_required
def emergency_stop(request):
    if request.method == "GET":  # the confirmation, with the counts as they are now
        context = {"emergency": emergency.emergency_counts()}
        return render(request, "trading/positions.html#kill-switch-confirmation", context)
    report = emergency.emergency_stop(request.user.get_username())
    text = f"Sold {len(report.closed)} position(s), paused {len(report.paused)} bot(s)."
    if report.failed:
        return _toast_or_redirect(request, f"{text} Failed: {'; '.join(report.failed)}", "error")
    return _toast_or_redirect(request, text, "success")
