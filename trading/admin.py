"""Trades and positions in the admin: read-only. The books are evidence of what the bots did and
what the broker answered; they change only through the order path, never by hand."""

from django.contrib import admin

from .models import Position, Trade


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Trade)
class TradeAdmin(ReadOnlyAdmin):
    list_display = (
        "created_at",
        "bot",
        "symbol",
        "side",
        "qty",
        "filled_qty",
        "price",
        "status",
        "reason",
        "client_order_id",
    )
    list_filter = ("bot", "status", "side")
    search_fields = ("client_order_id", "order_id", "symbol")
    # No date_hierarchy: its links are a DATE_TRUNC over every trade on each page view. The
    # list is newest first; the trades page and GET /api/trades?since= narrow by time.
    list_select_related = ("bot",)
    ordering = ("-created_at", "-id")
    # "N of M selected" would count the whole table again on every filtered view; 50 rows a
    # page render in half the time of the default 100.
    show_full_result_count = False
    list_per_page = 50


@admin.register(Position)
class PositionAdmin(ReadOnlyAdmin):
    list_display = (
        "opened_at",
        "bot",
        "symbol",
        "qty",
        "avg_entry_price",
        "stop_loss_price",
        "take_profit_price",
        "is_open",
        "exit_price",
        "realized_pnl",
        "closed_at",
    )
    list_filter = ("bot", "is_open", "symbol")
    search_fields = ("symbol", "entry_reason")
    date_hierarchy = "opened_at"
    list_select_related = ("bot",)
    ordering = ("-opened_at", "-id")
    show_full_result_count = False
    list_per_page = 50
