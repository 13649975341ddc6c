"""Backtests in the admin: read-only records of what ran (a run is changed by running another)."""

from django.contrib import admin

from .models import Backtest, BacktestTrade, BarCoverage, HistoricalBar, Optimisation


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        # A deleted bar would leave its span marked complete, never fetched again.
        return False


@admin.register(BacktestTrade)
class BacktestTradeAdmin(ReadOnlyAdmin):
    list_display = ("backtest", "number", "entry_at", "entry_price", "exit_at", "exit_price",
                    "qty", "pnl", "exit_reason")  # fmt: skip
    list_select_related = ("backtest",)
    search_fields = ("backtest__name",)
    raw_id_fields = ("backtest",)
    show_full_result_count = False


@admin.register(Backtest)
class BacktestAdmin(ReadOnlyAdmin):
    list_display = ("name", "symbol", "timeframe", "start", "end", "status", "bar_count",
                    "created_at")  # fmt: skip
    list_filter = ("status", "timeframe")
    search_fields = ("name", "symbol")
    show_full_result_count = False
    raw_id_fields = ("bot", "optimisation", "created_by")
    exclude = ("equity",)


@admin.register(HistoricalBar)
class HistoricalBarAdmin(ReadOnlyAdmin):
    list_display = ("symbol", "timeframe", "timestamp", "open", "high", "low", "close", "volume")
    list_filter = ("timeframe",)
    search_fields = ("symbol",)
    show_full_result_count = False


@admin.register(BarCoverage)
class BarCoverageAdmin(ReadOnlyAdmin):
    list_display = ("symbol", "timeframe", "start", "end", "source")
    list_filter = ("timeframe", "source")
    search_fields = ("symbol",)


@admin.register(Optimisation)
class OptimisationAdmin(ReadOnlyAdmin):
    list_display = ("name", "metric", "combinations", "completed", "status", "created_at")
    list_filter = ("status",)
    raw_id_fields = ("bot", "created_by")
