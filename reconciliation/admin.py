"""Reconciliation runs in the admin: read-only, like the books they report on."""

from django.contrib import admin
from django.utils.html import format_html_join

from .models import ReconciliationRun


def _subject(discrepancy: dict) -> str:
    """What a discrepancy is about: an order (its id, side, symbol) or a symbol's holding."""
    if discrepancy["side"] is None:
        return f"holding {discrepancy['symbol']}"
    order = discrepancy.get("client_order_id") or discrepancy.get("order_id") or ""
    return f"{order} {discrepancy['side']} {discrepancy['symbol']}"


@admin.register(ReconciliationRun)
class ReconciliationRunAdmin(admin.ModelAdmin):
    list_display = (
        "started_at",
        "trigger",
        "started_by",
        "outcome",
        "orders_checked",
        "synced_count",
        "discrepancy_count",
        "external_count",
    )
    list_filter = ("outcome", "trigger")
    search_fields = ("started_by", "error")
    date_hierarchy = "started_at"
    ordering = ("-started_at", "-id")
    exclude = ("discrepancies", "external_orders", "unmanaged_holdings")
    readonly_fields = ("discrepancy_list", "external_order_list", "unmanaged_holding_list")

    # The list shows counts only: its runs' lists (thousands of discrepancies) stay unread.
    show_full_result_count = False

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def get_queryset(self, request):
        runs = super().get_queryset(request)
        match = request.resolver_match
        if match is not None and match.url_name.endswith("_changelist"):
            return runs.defer(*ReconciliationRun.LISTS)
        return runs

    @admin.display(description="Discrepancies")
    def discrepancy_list(self, run):
        return format_html_join(
            "\n",
            "<p><strong>{}</strong> {}: {}</p>",
            ((d["kind"], _subject(d), d["detail"]) for d in run.discrepancies),
        ) or "—"  # fmt: skip

    @admin.display(description="External orders")
    def external_order_list(self, run):
        return (
            format_html_join(
                "\n",
                "<p>{} {} {} {} ({})</p>",
                (
                    (o["client_order_id"], o["side"], o["qty"], o["symbol"], o["status"])
                    for o in run.external_orders
                ),
            )
            or "—"
        )

    @admin.display(description="Unmanaged holdings (information, not discrepancies)")
    def unmanaged_holding_list(self, run):
        return (
            format_html_join(
                "\n",
                "<p>{} {}: the broker holds {}, our bots {}</p>",
                (
                    (h["qty"], h["symbol"], h["broker_qty"], h["ours"])
                    for h in run.unmanaged_holdings
                ),
            )
            or "—"
        )
