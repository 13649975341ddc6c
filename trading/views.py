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
from django.urls import reverse_lazy
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from bots.models import Bot
from tradebots import live
from tradebots.broker import BrokerError, describe_failure, get_broker
from tradebots.money import plain_decimal
from tradebots.pagination import InvalidCursor, Keyset
from tradebots.permissions import trade_required

from . import emergency
from .models import Position, Trade
from .positions import (
    OpenPositionRow,
    SymbolHoldings,
    realized_total,
    remember_prices,
    unmanaged_positions,
)

logger = logging.getLogger(__name__)

TRADES_PER_PAGE = 50
CLOSED_POSITIONS_PER_PAGE = 50
OPEN_POSITIONS_PER_PAGE = 50
TRADES_TABLE_ID = "trades-table"
OPEN_POSITIONS_ID = "open-positions-table"
CLOSED_POSITIONS_ID = "closed-positions-table"
OPEN_KEYSET = Keyset(("-opened_at", "-id"))
TRADES_KEYSET = Keyset(("-created_at", "-id"))


class TradeFilterForm(forms.Form):
    """The trades page's GET filters. A value that does not parse is ignored, not an error page.

    The bot is chosen by name (``bot_name``: the bots whose name contains it), a search box
    rather than a list of every bot; ``bot`` (an id) is what a bot's page links with, kept in
    the form while its name stays in the box."""

    bot = forms.ModelChoiceField(
        queryset=Bot.objects.all(), required=False, widget=forms.HiddenInput
    )
    bot_name = forms.CharField(
        required=False,
        max_length=100,
        label="Bot",
        # Suggestions as you type (htmx): at most 20 names containing it, into the datalist.
        widget=forms.TextInput(
            attrs={
                "list": "bot-names",
                "placeholder": "All bots",
                "autocomplete": "off",
                "hx-get": reverse_lazy("trading:bot-names"),
                "hx-trigger": "focus once, input changed delay:250ms",
                "hx-target": "#bot-names",
                "hx-swap": "innerHTML",
                "hx-push-url": "false",
            }
        ),
    )
    side = forms.ChoiceField(choices=[("", "All sides"), *Trade.Side.choices], required=False)
    status = forms.ChoiceField(
        choices=[("", "All statuses"), *Trade.Status.choices], required=False
    )

    def clean(self):
        cleaned = super().clean()
        bot, name = cleaned.get("bot"), cleaned.get("bot_name", "").strip()
        if bot is not None and "bot_name" in self.data and name != bot.name:
            cleaned["bot"] = None  # the name was edited or cleared: it, not the bot, filters
        cleaned["bot_name"] = "" if cleaned.get("bot") is not None else name
        return cleaned

    def trade_filters(self) -> dict:
        lookups = {"bot_name": "bot__name__icontains"}
        return {
            lookups.get(name, name): value for name, value in self.cleaned_data.items() if value
        }

    def query_params(self) -> dict:
        return {
            name: (value.pk if isinstance(value, Bot) else value)
            for name, value in self.cleaned_data.items()
            if value
        }


BOT_NAME_SUGGESTIONS = 20


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


def _fragment(request, template: str, context):
    response = render(request, template, context)
    patch_vary_headers(response, ["HX-Request", "HX-Target"])
    return response


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
    ignored = [name for name in form.errors if request.GET.get(name)]
    filters = form.trade_filters()

    trades = Trade.objects.select_related("bot").filter(**filters)
    cursor = request.GET.get("cursor") or None
    try:
        page, older = TRADES_KEYSET.page(trades, cursor, TRADES_PER_PAGE)
    except InvalidCursor:
        page, older = TRADES_KEYSET.page(trades, None, TRADES_PER_PAGE)
        ignored.append("cursor")
        cursor = None
    params = form.query_params()
    chosen_bot = form.cleaned_data.get("bot")
    context = {
        "filter_form": TradeFilterForm(
            initial={
                **params,
                "bot_name": chosen_bot.name if chosen_bot else params.get("bot_name"),
            }
        ),
        "filtered": bool(filters),
        "ignored_filters": ignored,
        "trades": page,
        "first_page": cursor is None,
        "older_cursor": older,
        # Page links carry the filters; "&" is appended in the template before cursor=.
        "filter_query": urlencode(params),
        # New trades pushed over the WebSocket only belong on the unfiltered first page.
        "live_insert": not filters and cursor is None,
    }
    return _render(
        request,
        "trading/trades.html",
        "trading/trades.html#trades-table",
        TRADES_TABLE_ID,
        context,
    )


@require_GET
def bot_name_options(request):
    """The bot search box's suggestions: the first names containing what was typed."""
    typed = request.GET.get("bot_name", "").strip()[:100]
    bots = Bot.objects.order_by("name")
    if typed:
        bots = bots.filter(name__icontains=typed)
    names = bots.values_list("name", flat=True).distinct()[:BOT_NAME_SUGGESTIONS]
    return render(request, "trading/trades.html#bot-name-options", {"bot_names": names})


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


def _open_positions_page(cursor: str | None, prices: dict | None) -> dict:
    """One page of open positions, newest first (a keyset page: no OFFSET), valued at
    ``prices`` (None: one broker call for the page's symbols). An invalid cursor is the first
    page."""
    positions = Position.objects.filter(is_open=True).select_related("bot")
    try:
        page, older = OPEN_KEYSET.page(positions, cursor, OPEN_POSITIONS_PER_PAGE)
    except InvalidCursor:
        cursor = None
        page, older = OPEN_KEYSET.page(positions, None, OPEN_POSITIONS_PER_PAGE)
    prices_ok = True
    if prices is None:
        prices, prices_ok = _latest_prices(sorted({position.symbol for position in page}))
    closing = set(
        Trade.objects.filter(
            position__in=page, side=Trade.Side.SELL, status__in=Trade.OPEN_STATUSES
        ).values_list("position_id", flat=True)
    )
    first = not cursor
    return {
        "open_rows": [
            OpenPositionRow(position, prices.get(position.symbol), position.pk in closing)
            for position in page
        ],
        "open_positions": page,
        "open_first_page": first,
        "open_older": older,
        "open_prices_ok": prices_ok,
        "unmanaged": [],
        "unmanaged_ok": True,
    }


def _unmanaged() -> dict:
    try:
        return {"unmanaged": unmanaged_positions(), "unmanaged_ok": True}
    except BrokerError:
        logger.warning("Broker positions unavailable", exc_info=True)
        return {"unmanaged": [], "unmanaged_ok": False}


def _open_table(cursor: str | None, prices: dict | None) -> dict:
    context = _open_positions_page(cursor, prices)
    if context["open_first_page"]:
        context.update(_unmanaged())
    # The rows the page shows, for its live updates: ours, and on the first page the unmanaged.
    context["open_declared"] = [*context["open_positions"], *context["unmanaged"]]
    return context


@require_GET
def position_list(request):
    """Open positions a page at a time (``open=<cursor>``: older ones) with totals over all of
    them, unmanaged holdings on the first page, closed positions a page at a time (``page``)."""
    cursor = request.GET.get("open") or None
    if _wants_fragment(request, OPEN_POSITIONS_ID):
        context = _open_table(cursor, None)
        return _fragment(request, "trading/positions.html#open-positions-table", context)
    closed = Position.objects.filter(is_open=False).select_related("bot")
    closed_choice = _choose_page(
        closed.order_by("-closed_at", "-id"), request.GET.get("page"), CLOSED_POSITIONS_PER_PAGE
    )
    context = {
        "closed_choice": closed_choice,
        "closed_positions": closed_choice.objects,
        "live_insert": closed_choice.requested == 1,
    }
    if _wants_fragment(request, CLOSED_POSITIONS_ID):
        return _fragment(request, "trading/positions.html#closed-positions-table", context)
    # The totals are over every open position: one query sums them per symbol, and one broker
    # call prices every symbol held, the page's rows included.
    holdings = SymbolHoldings.read()
    prices, prices_ok = _latest_prices(sorted(holdings))
    if prices:
        remember_prices(prices)  # pushes from the order path show these until the next ones
    context.update(_open_table(cursor, prices))
    context.update(
        prices_ok=prices_ok, totals=holdings.totals(prices), realized_pnl=realized_total()
    )
    return _fragment(request, "trading/positions.html", context)


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
