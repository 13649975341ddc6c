from django.contrib import admin

from .models import PaperAccount, PaperOrder, PaperPosition


@admin.register(PaperAccount)
class PaperAccountAdmin(admin.ModelAdmin):
    list_display = ("account_number", "cash", "created_at")


@admin.register(PaperOrder)
class PaperOrderAdmin(admin.ModelAdmin):
    list_display = (
        "submitted_at", "client_order_id", "symbol", "side", "type", "qty", "filled_qty",
        "filled_avg_price", "status",
    )  # fmt: skip
    list_filter = ("status", "side", "type", "symbol")
    search_fields = ("client_order_id", "id", "symbol")
    date_hierarchy = "submitted_at"

    def has_change_permission(self, request, obj=None):
        # The exchange's records are evidence for reconciliation: browse, never edit.
        return False


@admin.register(PaperPosition)
class PaperPositionAdmin(admin.ModelAdmin):
    list_display = ("symbol", "qty", "avg_entry_price", "updated_at")
    search_fields = ("symbol",)

    def has_change_permission(self, request, obj=None):
        return False
