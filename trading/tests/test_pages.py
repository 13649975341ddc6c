"""The trades and positions pages, the trade detail dialog, the admin, and the live pushes."""

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.testing import WebsocketCommunicator
from django.urls import reverse
from django.utils import timezone

from bots.tests.factories import BotFactory
from tradebots.asgi import application
from tradebots.broker import BrokerUnavailable
from tradebots.broker.paper import market
from tradebots.broker.paper.broker import PaperBroker
from tradebots.money import format_money
from tradebots.tests.live_pages import declarations
from trading import live_updates
from trading.models import Position, Trade
from trading.positions import OpenPositionRow
from trading.tests.factories import PositionFactory, TradeFactory

TRADES = reverse("trading:trades")
POSITIONS = reverse("trading:positions")
HTMX = {"HX-Request": "true"}


def _row(html: str, element_id: str) -> str:
    match = re.search(rf'<tr id="{element_id}"[^>]*>.*?</tr>', html, re.S)
    assert match, f"no row {element_id}"
    return match.group(0)


def _trade_ids(html: str) -> list[int]:
    return [int(pk) for pk in re.findall(r'<tr id="trade-(\d+)"', html)]


# Access


@pytest.mark.django_db
@pytest.mark.parametrize("url", [TRADES, POSITIONS, "/trading/trades/1/"])
def test_anonymous_users_are_sent_to_log_in(client, url):
    response = client.get(url)

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


@pytest.mark.django_db
def test_the_navigation_links_both_pages(user_client):
    html = user_client.get(POSITIONS).content.decode()

    assert f'<a href="{TRADES}">Trades</a>' in html
    assert f'<a href="{POSITIONS}" aria-current="page">Positions</a>' in html


# Trades


@pytest.mark.django_db
def test_trades_table_shows_each_trade_with_its_reason(user_client):
    bot = BotFactory(name="Apple RSI")
    trade = TradeFactory(
        bot=bot, side="sell", qty=Decimal("12"), price=Decimal("1234.5"), reason="Manual close"
    )
    no_reason = TradeFactory(bot=bot, reason=None, status=Trade.Status.PENDING)

    html = user_client.get(TRADES).content.decode()

    row = _row(html, f"trade-{trade.pk}")
    assert f'href="{reverse("bots:detail", args=[bot.pk])}">Apple RSI</a>' in row
    assert ">AAPL<" in row and "Sell" in row and ">12<" in row
    assert "$1,234.50" in row
    assert 'class="badge badge-trade-filled" data-testid="trade-status">Filled<' in row
    assert "Manual close" in row
    pending = _row(html, f"trade-{no_reason.pk}")
    assert 'data-label="Reason" class="reason">—<' in pending
    assert 'data-label="Price" class="num">—<' in pending
    assert "<th>Reason</th>" in html
    # The page tells its socket which rows it shows, and that new trades go on top.
    assert declarations(html)["trades"] == {
        "rows": [str(no_reason.pk), str(trade.pk)],
        "newest": True,
    }
    assert 'id="trade-dialog"' in html


@pytest.mark.django_db
def test_a_deleted_bots_trade_names_the_bot_by_its_id(user_client):
    bot = BotFactory()
    trade = TradeFactory(bot=bot)
    short_id = bot.short_id
    bot.delete()
    orphan = TradeFactory(bot=None, client_order_id=None)

    html = user_client.get(TRADES).content.decode()

    assert f"deleted bot {short_id}" in _row(html, f"trade-{trade.pk}")
    assert 'data-label="Bot"><span class="muted">—</span>' in _row(html, f"trade-{orphan.pk}")


@pytest.mark.django_db
def test_trades_are_newest_first(user_client):
    old = TradeFactory()
    new = TradeFactory()
    Trade.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=1))

    html = user_client.get(TRADES).content.decode()

    assert _trade_ids(html) == [new.pk, old.pk]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"side": "sell"}, {"first-sell", "second-sell"}),
        ({"status": "rejected"}, {"second-rejected"}),
        ({"bot": "first"}, {"first-sell", "first-buy"}),
        ({"bot": "first", "side": "buy"}, {"first-buy"}),
        ({"bot": "second", "status": "filled", "side": "sell"}, {"second-sell"}),
    ],
)
def test_each_filter_narrows_the_table(user_client, params, expected):
    bots = {"first": BotFactory(name="First"), "second": BotFactory(name="Second")}
    trades = {
        "first-sell": TradeFactory(bot=bots["first"], side="sell"),
        "first-buy": TradeFactory(bot=bots["first"], side="buy"),
        "second-sell": TradeFactory(bot=bots["second"], side="sell"),
        "second-rejected": TradeFactory(bot=bots["second"], side="buy", status="rejected"),
    }
    query = {key: bots[value].pk if key == "bot" else value for key, value in params.items()}

    html = user_client.get(TRADES, query).content.decode()

    assert set(_trade_ids(html)) == {trades[name].pk for name in expected}
    # A filtered table takes changes to its rows, but no pushed new rows.
    assert declarations(html)["trades"] == {
        "rows": [str(pk) for pk in _trade_ids(html)],
        "newest": False,
    }


@pytest.mark.django_db
def test_a_filter_that_matches_nothing_says_so(user_client):
    TradeFactory(side="buy")

    html = user_client.get(TRADES, {"side": "sell"}).content.decode()

    assert _trade_ids(html) == []
    assert "No trades match these filters." in html


@pytest.mark.django_db
def test_the_filter_form_searches_bots_by_name_and_keeps_the_choice(user_client):
    bot = BotFactory(name="Picked")

    html = user_client.get(TRADES, {"bot": bot.pk, "status": "filled"}).content.decode()

    # A search box with suggestions, not a <select> of every bot; a bot's own link keeps its id.
    assert '<select name="bot"' not in html
    assert re.search(
        r'<input type="text" name="bot_name" value="Picked"[^>]*list="bot-names"', html
    )
    assert f'<input type="hidden" name="bot" value="{bot.pk}"' in html
    assert (
        'hx-get="/trading/trades/bots/" hx-trigger="focus once, input changed delay:250ms"' in html
    )
    assert '<datalist id="bot-names"></datalist>' in html
    assert '<option value="filled" selected>Filled</option>' in html
    assert '<option value="sell">Sell</option>' in html
    assert 'hx-get="/trading/trades/" hx-target="#trades-table"' in html


@pytest.mark.django_db
def test_the_bot_search_box_filters_by_a_part_of_the_name(user_client):
    apple, apple_two, tesla = (
        BotFactory(name=name) for name in ("Apple RSI", "apple macd", "Tesla")
    )
    trades = {bot.name: TradeFactory(bot=bot) for bot in (apple, apple_two, tesla)}

    html = user_client.get(TRADES, {"bot_name": "APPLE"}).content.decode()

    assert set(_trade_ids(html)) == {trades["Apple RSI"].pk, trades["apple macd"].pk}
    assert 'name="bot_name" value="APPLE"' in html
    assert declarations(html)["trades"]["newest"] is False


@pytest.mark.django_db
def test_editing_or_clearing_the_name_of_a_linked_bot_drops_its_id(user_client):
    linked, other = BotFactory(name="Linked"), BotFactory(name="Other")
    linked_trade, other_trade = TradeFactory(bot=linked), TradeFactory(bot=other)

    edited = user_client.get(TRADES, {"bot": linked.pk, "bot_name": "Oth"}).content.decode()
    cleared = user_client.get(TRADES, {"bot": linked.pk, "bot_name": ""}).content.decode()
    kept = user_client.get(TRADES, {"bot": linked.pk, "bot_name": "Linked"}).content.decode()

    assert _trade_ids(edited) == [other_trade.pk]
    assert set(_trade_ids(cleared)) == {linked_trade.pk, other_trade.pk}
    assert _trade_ids(kept) == [linked_trade.pk]


@pytest.mark.django_db
def test_the_bot_search_suggests_at_most_twenty_matching_names(
    user_client, django_assert_max_num_queries
):
    for n in range(25):
        BotFactory(name=f"Grid {n:02}")
    BotFactory(name="Other")

    # The session, the user, the user's permissions (2, for its role), the names.
    with django_assert_max_num_queries(5):
        html = user_client.get(reverse("trading:bot-names"), {"bot_name": "grid"}, headers=HTMX)

    names = re.findall(r'<option value="([^"]*)">', html.content.decode())
    assert names == [f"Grid {n:02}" for n in range(20)]


@pytest.mark.django_db
def test_an_htmx_filter_request_gets_only_the_table(user_client):
    TradeFactory(side="sell")

    response = user_client.get(
        TRADES, {"side": "sell"}, headers={**HTMX, "HX-Target": "trades-table"}
    )

    html = response.content.decode()
    assert "<html" not in html and 'id="trade-rows"' in html
    assert "HX-Request" in response["Vary"]


def _older_link(html: str) -> str:
    match = re.search(r'<a href="([^"]+)" hx-get="[^"]+" hx-target="#[\w-]+"[^>]*rel="next">', html)
    assert match, "no link to older rows"
    return match.group(1).replace("&amp;", "&")


@pytest.mark.django_db
def test_pages_hold_fifty_trades_and_page_links_keep_the_filters(user_client):
    bot = BotFactory()
    TradeFactory.create_batch(55, bot=bot, side="sell")
    TradeFactory.create_batch(3, bot=bot, side="buy")

    first = user_client.get(TRADES, {"side": "sell"}).content.decode()
    older = _older_link(first)
    second = user_client.get(older).content.decode()

    assert len(_trade_ids(first)) == 50
    assert older.startswith("/trading/trades/?side=sell&cursor=")
    assert len(_trade_ids(second)) == 5
    assert 'href="/trading/trades/?side=sell" hx-get' in second  # back to the newest
    assert 'rel="next"' not in second
    assert not set(_trade_ids(first)) & set(_trade_ids(second))
    # Page 2 declares its own rows only, and takes no new rows on top.
    assert declarations(second)["trades"] == {
        "rows": [str(pk) for pk in _trade_ids(second)],
        "newest": False,
    }


@pytest.mark.django_db
def test_an_older_page_stays_the_same_when_new_trades_arrive(user_client):
    TradeFactory.create_batch(60)
    first = user_client.get(TRADES).content.decode()
    older = _older_link(first)
    before = _trade_ids(user_client.get(older).content.decode())

    TradeFactory.create_batch(7)  # newer than everything: OFFSET pages would shift by 7

    assert _trade_ids(user_client.get(older).content.decode()) == before
    assert before == sorted(before, reverse=True) and max(before) < min(_trade_ids(first))


@pytest.mark.django_db
def test_a_deep_page_costs_the_queries_of_the_first(user_client, django_assert_max_num_queries):
    TradeFactory.create_batch(120)
    with django_assert_max_num_queries(10) as first:
        html = user_client.get(TRADES).content.decode()
    second = _older_link(html)
    with django_assert_max_num_queries(len(first.captured_queries)):
        third = _older_link(user_client.get(second).content.decode())
    with django_assert_max_num_queries(len(first.captured_queries)) as deep:
        user_client.get(third)

    assert not any("OFFSET" in query["sql"] for query in deep.captured_queries)


@pytest.mark.django_db
def test_trades_query_count_does_not_grow_with_the_number_of_trades(
    user_client, django_assert_max_num_queries
):
    TradeFactory.create_batch(2)
    with django_assert_max_num_queries(20) as few:
        user_client.get(TRADES)
    TradeFactory.create_batch(40)
    TradeFactory.create_batch(5, bot=None, client_order_id=None)

    with django_assert_max_num_queries(len(few.captured_queries)):
        html = user_client.get(TRADES).content.decode()

    assert len(_trade_ids(html)) == 47


@pytest.mark.django_db
@pytest.mark.parametrize(
    "params",
    [
        {"status": "bogus"},
        {"side": "sideways"},
        {"bot": "not-a-uuid"},
        {"bot": "6f1c1a4e-0000-4000-8000-000000000000"},
    ],
)
def test_a_bad_filter_value_is_ignored_with_a_notice(user_client, params):
    trade = TradeFactory()

    response = user_client.get(TRADES, params)

    html = response.content.decode()
    assert response.status_code == 200
    assert _trade_ids(html) == [trade.pk]
    assert "Ignored a filter value that is not valid" in html


@pytest.mark.django_db
@pytest.mark.parametrize("page", ["abc", "0", "-3", "1.5", ""])
def test_a_malformed_page_number_shows_the_first_page(user_client, page):
    trade = TradeFactory()

    response = user_client.get(TRADES, {"page": page})

    assert response.status_code == 200
    assert _trade_ids(response.content.decode()) == [trade.pk]


@pytest.mark.django_db
@pytest.mark.parametrize("cursor", ["abc", "WzFd", "W10", "!!"])
def test_a_cursor_not_handed_out_shows_the_first_page_with_a_notice(user_client, cursor):
    trade = TradeFactory()

    response = user_client.get(TRADES, {"cursor": cursor})

    html = response.content.decode()
    assert response.status_code == 200
    assert _trade_ids(html) == [trade.pk]
    assert "Ignored a filter value that is not valid (cursor)" in html


@pytest.mark.django_db
def test_no_trades_yet_says_so(user_client):
    html = user_client.get(TRADES).content.decode()

    assert "No trades yet." in html


# Trade detail


@pytest.mark.django_db
def test_clicking_a_row_loads_its_details_into_the_dialog(user_client):
    trade = TradeFactory(
        status=Trade.Status.REJECTED,
        qty=Decimal("7"),
        filled_qty=Decimal("0"),
        price=None,
        reason="MACD buy signal",
        order_id="broker-order-123",
        error_message="insufficient buying power",
        submitted_at=datetime(2025, 3, 4, 14, 30, 5, tzinfo=UTC),
        filled_at=None,
    )
    html = user_client.get(TRADES).content.decode()
    detail_url = reverse("trading:trade-detail", args=[trade.pk])
    assert f'hx-get="{detail_url}" hx-target="#trade-dialog"' in _row(html, f"trade-{trade.pk}")

    response = user_client.get(detail_url, headers=HTMX)

    detail = response.content.decode()
    assert "<html" not in detail
    assert trade.client_order_id in detail and "broker-order-123" in detail
    assert "MACD buy signal" in detail and "Rejected" in detail
    assert "<dt>Quantity</dt><dd>7</dd>" in detail
    assert "<dt>Filled quantity</dt><dd>0</dd>" in detail
    assert "<dt>Average fill price</dt><dd>—</dd>" in detail
    assert "2025-03-04 14:30:05" in detail
    assert "<dt>Filled</dt><dd>—</dd>" in detail
    assert "insufficient buying power" in detail
    assert '<form method="dialog">' in detail  # the close button; Escape closes it natively


@pytest.mark.django_db
def test_trade_detail_without_htmx_is_a_page(user_client):
    trade = TradeFactory(price=Decimal("99.5"))

    response = user_client.get(reverse("trading:trade-detail", args=[trade.pk]))

    html = response.content.decode()
    assert "<html" in html and f"Trade {trade.pk}" in html and "$99.50" in html
    assert '<form method="dialog">' not in html


@pytest.mark.django_db
def test_an_unknown_trade_is_a_404(user_client):
    assert user_client.get(reverse("trading:trade-detail", args=[999999])).status_code == 404


# Positions


@pytest.fixture
def latest_prices(monkeypatch):
    """Fix the paper exchange's latest prices and record each call."""
    calls = []

    def set_prices(prices: dict[str, str]):
        def get_latest_prices(self, symbols):
            calls.append(list(symbols))
            return {s: Decimal(prices[s]) for s in symbols if s in prices}

        monkeypatch.setattr(PaperBroker, "get_latest_prices", get_latest_prices)
        return calls

    return set_prices


@pytest.mark.django_db
def test_open_positions_show_the_paper_exchanges_price_and_unrealized_pnl(user_client, monkeypatch):
    instant = datetime(2025, 6, 2, 15, 0, tzinfo=UTC)
    monkeypatch.setattr("tradebots.broker.paper.broker.timezone.now", lambda: instant)
    price = market.latest_price("MSFT", instant)
    position = PositionFactory(
        bot=BotFactory(name="Soft", symbol="MSFT"),
        qty=Decimal("4"),
        avg_entry_price=price - Decimal("2.50"),
    )

    html = user_client.get(POSITIONS).content.decode()

    row = _row(html, f"position-{position.pk}")
    assert f">{format_money(price)}<" in row
    assert '<span class="pos">$10.00</span>' in row
    assert f'href="{reverse("bots:detail", args=[position.bot.pk])}">Soft</a>' in row


@pytest.mark.django_db
def test_open_position_row_has_entry_reason_stops_times_and_an_actions_cell(
    user_client, latest_prices
):
    latest_prices({"AAPL": "140.00"})
    position = PositionFactory(
        qty=Decimal("10"),
        avg_entry_price=Decimal("150.00"),
        entry_reason="Bollinger buy signal",
        stop_loss_price=Decimal("142.50"),
        take_profit_price=Decimal("165"),
        opened_at=datetime(2025, 1, 2, 15, 4, tzinfo=UTC),
    )

    html = user_client.get(POSITIONS).content.decode()

    row = _row(html, f"position-{position.pk}")
    assert ">$140.00<" in row
    assert '<span class="neg">-$100.00</span>' in row and "(-6.67%)" in row
    assert "$142.50 / $165.00" in row
    assert "Bollinger buy signal" in row
    assert "2025-01-02 15:04" in row
    assert '<td class="row-actions">' in row
    assert 'id="open-positions"' in html


@pytest.mark.django_db
def test_prices_are_asked_for_once_for_all_open_symbols(
    user_client, latest_prices, django_assert_max_num_queries
):
    calls = latest_prices({"AAPL": "151", "MSFT": "400", "SPY": "500"})
    for symbol in ("AAPL", "MSFT", "SPY", "AAPL"):
        PositionFactory(bot=BotFactory(symbol=symbol))
    PositionFactory.create_batch(3, closed=True)

    # 16: one of them sums what the bots' open buys may still add, for the unmanaged figure;
    # one sums all open positions per symbol, for the totals; two read the user's permissions
    # (its own and its groups'), once a request, for its role.
    with django_assert_max_num_queries(16):
        html = user_client.get(POSITIONS).content.decode()

    assert calls == [["AAPL", "MSFT", "SPY"]]
    assert html.count('class="position-row"') == 4
    assert html.count('class="position-row closed"') == 3


@pytest.mark.django_db
def test_no_open_positions_means_no_broker_call(user_client, latest_prices):
    calls = latest_prices({})

    html = user_client.get(POSITIONS).content.decode()

    assert calls == []
    assert "No open positions." in html and "No closed positions yet." in html


@pytest.mark.django_db
def test_closed_positions_show_realized_pnl_in_green_or_red(user_client, latest_prices):
    latest_prices({})
    win = PositionFactory(closed=True, realized_pnl=Decimal("250.5"), exit_price=Decimal("175"))
    loss = PositionFactory(closed=True, realized_pnl=Decimal("-80"))

    html = user_client.get(POSITIONS).content.decode()

    assert '<span class="pos">$250.50</span>' in _row(html, f"closed-position-{win.pk}")
    assert "$175.00" in _row(html, f"closed-position-{win.pk}")
    assert '<span class="neg">-$80.00</span>' in _row(html, f"closed-position-{loss.pk}")
    assert "$170.50" in html  # the realized total
    assert f'id="position-{win.pk}"' not in html


@pytest.mark.django_db
def test_when_the_broker_is_down_the_page_still_renders_with_a_notice(user_client, monkeypatch):
    def unavailable(self, symbols):
        raise BrokerUnavailable("connection refused")

    monkeypatch.setattr(PaperBroker, "get_latest_prices", unavailable)
    position = PositionFactory()

    response = user_client.get(POSITIONS)

    html = response.content.decode()
    assert response.status_code == 200
    assert 'data-testid="prices-unavailable"' in html and "could not be reached" in html
    row = _row(html, f"position-{position.pk}")
    assert "price unavailable" in row
    assert "$150.00" in row  # the entry price is still there


@pytest.mark.django_db
def test_a_deleted_bots_position_still_shows(user_client, latest_prices):
    latest_prices({"AAPL": "150"})
    position = PositionFactory(bot=None, symbol="AAPL")

    html = user_client.get(POSITIONS).content.decode()

    assert 'title="The bot was deleted">—<' in _row(html, f"position-{position.pk}")


@pytest.mark.django_db
def test_closed_positions_are_paged(user_client, latest_prices):
    latest_prices({})
    PositionFactory.create_batch(52, closed=True)

    first = user_client.get(POSITIONS).content.decode()
    second = user_client.get(
        POSITIONS, {"page": "2"}, headers={**HTMX, "HX-Target": "closed-positions-table"}
    ).content.decode()
    past_end = user_client.get(POSITIONS, {"page": "9"}).content.decode()

    assert first.count('class="position-row closed"') == 50
    assert "Page 1 of 2" in first
    assert second.count('class="position-row closed"') == 2 and "<html" not in second
    assert declarations(first)["closed-positions"]["newest"] is True
    assert declarations(second)["closed-positions"]["newest"] is False
    assert len(declarations(second)["closed-positions"]["rows"]) == 2
    assert "There is no page 9 of closed positions." in past_end


def _position_ids(html: str) -> list[int]:
    return [int(pk) for pk in re.findall(r'<tr id="position-(\d+)"', html)]


def _open_positions(count: int, symbols=("AAPL", "MSFT")) -> list[Position]:
    """``count`` open positions of as many bots, one a minute, newest last."""
    start = timezone.now() - timedelta(days=1)
    return [
        PositionFactory(
            bot=BotFactory(symbol=symbols[n % len(symbols)]),
            qty=Decimal("2"),
            avg_entry_price=Decimal("100"),
            opened_at=start + timedelta(minutes=n),
        )
        for n in range(count)
    ]


@pytest.mark.django_db
def test_open_positions_are_paged_newest_first_with_totals_over_all_of_them(
    user_client, latest_prices
):
    calls = latest_prices({"AAPL": "110", "MSFT": "95.5"})
    positions = _open_positions(53)
    newest_first = [position.pk for position in reversed(positions)]

    first = user_client.get(POSITIONS).content.decode()
    older = _older_link(first)
    second = user_client.get(
        older, headers={**HTMX, "HX-Target": "open-positions-table"}
    ).content.decode()

    assert _position_ids(first) == newest_first[:50]
    assert older.startswith("/trading/positions/?open=")
    assert _position_ids(second) == newest_first[50:] and "<html" not in second
    assert 'rel="first">← Newest</a>' in second and 'rel="next"' not in second
    # Totals over all 53 (27 AAPL +$20 each, 26 MSFT -$9 each), one price call for all symbols.
    assert calls[0] == ["AAPL", "MSFT"]
    assert re.search(r"Open positions</span> <strong>53</strong>", first)
    assert "$10,906.00" in first  # 27 × 2 × 110 + 26 × 2 × 95.5
    assert "$306.00" in first  # 27 × 20 − 26 × 9
    # Each page declares only its rows; only the first takes new positions on top.
    assert declarations(first)["open-positions"] == {
        "rows": [str(pk) for pk in newest_first[:50]],
        "newest": True,
    }
    assert declarations(second)["open-positions"] == {
        "rows": [str(pk) for pk in newest_first[50:]],
        "newest": False,
    }


@pytest.mark.django_db
def test_an_older_page_of_open_positions_keeps_its_rows_when_new_ones_open(
    user_client, latest_prices
):
    latest_prices({"AAPL": "110", "MSFT": "95.5"})
    _open_positions(55)
    older = _older_link(user_client.get(POSITIONS).content.decode())
    before = _position_ids(user_client.get(older).content.decode())

    PositionFactory.create_batch(4, opened_at=timezone.now())

    assert _position_ids(user_client.get(older).content.decode()) == before
    assert len(before) == 5


@pytest.mark.django_db
def test_the_positions_page_costs_the_same_queries_with_more_positions(
    user_client, latest_prices, django_assert_max_num_queries
):
    calls = latest_prices({"AAPL": "110", "MSFT": "95.5", "SPY": "500"})
    _open_positions(3)
    PositionFactory.create_batch(2, closed=True)
    with django_assert_max_num_queries(20) as few:
        user_client.get(POSITIONS)
    _open_positions(70, symbols=("AAPL", "MSFT", "SPY"))
    PositionFactory.create_batch(60, closed=True)
    calls.clear()

    with django_assert_max_num_queries(len(few.captured_queries)):
        html = user_client.get(POSITIONS).content.decode()
    with django_assert_max_num_queries(len(few.captured_queries)):
        user_client.get(_older_link(html), headers={**HTMX, "HX-Target": "open-positions-table"})

    assert len(calls) == 2  # one for the whole page and its totals, one for the older page
    assert html.count('class="position-row"') == 50
    assert html.count('class="position-row closed"') == 50


# Admin


@pytest.mark.django_db
def test_the_admin_shows_the_books_read_only(admin_client):
    trade = TradeFactory(reason="RSI buy signal")
    position = PositionFactory()

    trades = admin_client.get(reverse("admin:trading_trade_changelist"))
    positions = admin_client.get(reverse("admin:trading_position_changelist"), {"is_open": "1"})
    change = admin_client.get(reverse("admin:trading_trade_change", args=[trade.pk]))

    assert trades.status_code == 200 and trade.client_order_id in trades.content.decode()
    assert positions.status_code == 200
    assert change.status_code == 200 and 'name="_save"' not in change.content.decode()
    assert admin_client.get(reverse("admin:trading_trade_add")).status_code == 403
    assert admin_client.get(reverse("admin:trading_position_add")).status_code == 403
    delete_url = reverse("admin:trading_position_delete", args=[position.pk])
    assert admin_client.post(delete_url, {"post": "yes"}).status_code == 403
    assert Position.objects.filter(pk=position.pk).exists()


@pytest.mark.django_db
def test_the_admin_trade_list_runs_no_date_truncation_and_no_full_count(
    admin_client, django_assert_max_num_queries
):
    TradeFactory.create_batch(3)
    with django_assert_max_num_queries(20) as few:
        admin_client.get(reverse("admin:trading_trade_changelist"), {"side": "buy"})
    TradeFactory.create_batch(30)

    with django_assert_max_num_queries(len(few.captured_queries)) as many:
        response = admin_client.get(reverse("admin:trading_trade_changelist"), {"side": "buy"})

    sql = " ".join(query["sql"] for query in many.captured_queries)
    assert response.status_code == 200
    assert "DATE_TRUNC" not in sql.upper() and "django_datetime_trunc" not in sql
    # One count of the filtered rows for the pages; none of the whole table ("of N total").
    assert sql.count("COUNT(*)") == 1


# Live updates


@pytest.mark.django_db
def test_a_new_trade_is_pushed_to_the_top_of_the_trades_table():
    trade = TradeFactory(reason="RSI buy signal")

    row = live_updates.trade_row(trade, created=True)

    assert (row.table, row.pk, row.remove) == ("trades", str(trade.pk), "")
    assert row.insert.startswith(
        f'<tbody hx-swap-oob="afterbegin:#trade-rows"><tr id="trade-{trade.pk}"'
    )
    assert row.insert.rstrip().endswith("</tbody>")
    assert row.insert.count("hx-swap-oob") == 1
    assert row.replace.startswith(
        f'<tr id="trade-{trade.pk}" data-live-row="{trade.pk}" class="trade-row clickable" '
        'hx-swap-oob="true"'
    )
    assert "RSI buy signal" in row.insert and "RSI buy signal" in row.replace


@pytest.mark.django_db
def test_a_changed_trade_replaces_its_row_and_is_never_inserted():
    trade = TradeFactory(status=Trade.Status.PARTIALLY_FILLED)

    row = live_updates.trade_row(trade, created=False)

    assert row.insert == ""
    assert row.replace.startswith(
        f'<tr id="trade-{trade.pk}" data-live-row="{trade.pk}" class="trade-row clickable" '
        'hx-swap-oob="true"'
    )
    assert "Partially filled" in row.replace


@pytest.mark.django_db
def test_a_just_opened_position_goes_on_top_and_a_changed_one_only_replaces_its_row():
    position = PositionFactory()

    (row,) = live_updates.position_rows(OpenPositionRow(position), created=True)
    (changed,) = live_updates.position_rows(OpenPositionRow(position))

    assert changed.insert == "" and changed.replace == row.replace

    assert row.table == "open-positions"
    assert row.replace.startswith(
        f'<tr id="position-{position.pk}" data-live-row="{position.pk}" class="position-row" '
        'hx-swap-oob="true"'
    )
    assert row.insert.startswith(
        f'<tbody hx-swap-oob="afterbegin:#open-positions"><tr id="position-{position.pk}"'
    )
    assert ":has(" not in row.insert
    for html in (row.replace, row.insert):
        assert 'title="No price yet: the next valuation brings it">—<' in html


@pytest.mark.django_db
def test_a_position_being_sold_is_pushed_as_closing():
    position = PositionFactory()
    TradeFactory(position=position, side="sell", status=Trade.Status.ACCEPTED)

    row, summary = live_updates.render_positions({position.pk: {"created": False}})

    assert 'data-testid="closing">closing…<' in row.replace
    assert summary.group == "open-positions" and 'id="positions-summary"' in summary.html


@pytest.mark.django_db
def test_a_closed_position_leaves_the_open_table_and_joins_the_closed_one():
    position = PositionFactory(closed=True, realized_pnl=Decimal("-12.5"))

    removed, closed = live_updates.position_rows(OpenPositionRow(position))

    assert (removed.table, removed.pk) == ("open-positions", str(position.pk))
    assert removed.remove == f'<tr id="position-{position.pk}" hx-swap-oob="delete"></tr>'
    assert closed.table == "closed-positions"
    assert closed.insert.startswith(
        f'<tbody hx-swap-oob="afterbegin:#closed-positions"><tr id="closed-position-{position.pk}"'
    )
    assert '<span class="neg">-$12.50</span>' in closed.replace


@pytest.mark.django_db
def test_pushes_go_to_the_tables_that_show_them(monkeypatch):
    from tradebots import live

    sent = []
    monkeypatch.setattr(live, "_deliver", sent.extend)
    position = PositionFactory()

    live_updates.position_changed(position)
    live_updates.trade_changed(TradeFactory(), created=True)

    assert [(group, message["type"]) for group, message in sent] == [
        ("open-positions", "live.html"),  # the totals
        ("open-positions", "live.rows"),
        ("trades", "live.rows"),
    ]


def test_trade_changed_reaches_a_socket_whose_page_shows_the_newest_trades(
    transactional_db, socket_headers
):
    trade = TradeFactory(reason="Take-profit triggered (price ≥ $170.00)")

    async def scenario():
        communicator = WebsocketCommunicator(application, "/ws/updates/", headers=socket_headers)
        connected, _ = await communicator.connect()
        assert connected
        await communicator.send_json_to({"watch": "trades", "rows": "", "newest": "1"})
        await communicator.receive_from(timeout=10)  # #live-watching: it has joined
        await sync_to_async(live_updates.trade_changed)(trade, created=True)
        message = await communicator.receive_from(timeout=10)
        await communicator.disconnect()
        return message

    message = async_to_sync(scenario)()

    assert message.startswith('<tbody hx-swap-oob="afterbegin:#trade-rows">')
    assert f'<tr id="trade-{trade.pk}"' in message
    assert "Take-profit triggered (price ≥ $170.00)" in message


@pytest.mark.django_db
def test_the_valuation_pushes_every_open_row_with_its_price_and_the_totals(monkeypatch, settings):
    from django.core.cache import cache

    from tradebots import live
    from trading.positions import remember_prices, remembered_prices

    cache.clear()
    sent = []
    monkeypatch.setattr(live, "_deliver", sent.extend)
    monkeypatch.setattr(live, "watched_groups", lambda groups: set(groups))  # a page is open
    apple = PositionFactory(symbol="AAPL", qty=Decimal("2"), avg_entry_price=Decimal("100"))
    PositionFactory(symbol="MSFT", qty=Decimal("1"), avg_entry_price=Decimal("50"))
    PositionFactory(closed=True, realized_pnl=Decimal("7.5"))
    prices = {"AAPL": Decimal("110.00"), "MSFT": Decimal("40.00")}
    monkeypatch.setattr(PaperBroker, "get_latest_prices", lambda self, symbols: prices)

    assert live_updates.push_position_values() == 2

    by_type = {(group, message["type"]): message for group, message in sent}
    table = by_type[("open-positions", "live.rows")]
    apple_row = next(row for row in table["rows"] if row["pk"] == str(apple.pk))
    assert "$110.00" in apple_row["replace"] and "$20.00" in apple_row["replace"]  # P&L
    assert all(row["insert"] == "" for row in table["rows"])  # never inserted from here
    totals = by_type[("open-positions", "live.html")]["html"]
    assert totals.startswith('<section id="positions-summary"')
    assert "$260.00" in totals  # market value: 2 × 110 + 1 × 40
    assert "$10.00" in totals  # unrealized: +20 − 10
    assert "$7.50" in totals  # realized over closed positions
    assert remembered_prices() == prices

    # A page load remembers prices too; the next push still sends what moved since ITS last.
    sent.clear()
    prices["AAPL"] = Decimal("111.00")
    remember_prices(prices)  # as a Positions page load does
    assert live_updates.push_position_values() == 1  # AAPL's row; MSFT did not move
    monkeypatch.setattr(live, "watched_groups", lambda groups: set())  # no page open
    sent.clear()
    assert live_updates.push_position_values() == 0 and sent == []


@pytest.mark.django_db
def test_an_order_path_push_shows_the_last_known_price(monkeypatch):
    from django.core.cache import cache

    from trading.positions import remember_prices

    cache.clear()
    position = PositionFactory(symbol="AAPL", qty=Decimal("2"), avg_entry_price=Decimal("100"))
    remember_prices({"AAPL": Decimal("105.00")})

    row, _ = live_updates.render_positions({position.pk: {"created": False}})

    assert "$105.00" in row.replace and "$10.00" in row.replace


@pytest.mark.django_db
def test_no_prices_no_push(monkeypatch):
    from tradebots import live

    sent = []
    monkeypatch.setattr(live, "_deliver", sent.extend)
    PositionFactory()

    def unavailable(self, symbols):
        raise BrokerUnavailable("timed out")

    monkeypatch.setattr(PaperBroker, "get_latest_prices", unavailable)

    assert live_updates.push_position_values() == 0
    assert sent == []


@pytest.mark.django_db
def test_realized_pnl_over_time_is_cumulative_per_bot_or_account(monkeypatch):
    from trading import selectors

    first, second = BotFactory(), BotFactory()
    start = datetime(2026, 11, 2, 15, 0, tzinfo=UTC)
    for bot, minutes, pnl in [(first, 0, "10"), (second, 1, "-4"), (first, 2, "2.5")]:
        PositionFactory(
            bot=bot,
            closed=True,
            realized_pnl=Decimal(pnl),
            closed_at=start + timedelta(minutes=minutes),
        )
    PositionFactory(bot=first)  # open: not realized
    seconds = int(start.timestamp())

    assert selectors.realized_pnl_series() == [
        {"time": seconds, "value": "10.00"},
        {"time": seconds + 60, "value": "6.00"},
        {"time": seconds + 120, "value": "8.50"},
    ]
    assert [p["value"] for p in selectors.realized_pnl_series(first.pk)] == ["10.00", "12.50"]
    monkeypatch.setattr(selectors, "MAX_PNL_POINTS", 2)  # beyond it, one point a day
    assert selectors.realized_pnl_series() == [{"time": seconds - seconds % 86400, "value": "8.50"}]
