from django.db import models


class ReconciliationRun(models.Model):
    """One comparison of our Trades with the broker's orders and of our open positions with its
    holdings: when, who or what asked, the window it covered, its counts, every discrepancy found
    and the holdings no bot owns. A report; it never changes the books."""

    class Trigger(models.TextChoices):
        MANUAL = "manual", "Check Sync"
        API = "api", "API"
        COMMAND = "command", "Command"
        SCHEDULE = "schedule", "Schedule"

    class Outcome(models.TextChoices):
        IN_SYNC = "in_sync", "In sync"
        DISCREPANCIES = "discrepancies", "Discrepancies"
        FAILED = "failed", "Failed"

    started_at = models.DateTimeField(db_index=True)
    finished_at = models.DateTimeField()
    trigger = models.CharField(max_length=10, choices=Trigger.choices)
    started_by = models.CharField(max_length=150, blank=True)
    outcome = models.CharField(max_length=13, choices=Outcome.choices)
    error = models.TextField(blank=True)
    # What was asked for...
    limit = models.PositiveIntegerField(null=True, blank=True)
    since = models.DateTimeField(null=True, blank=True)
    # ...and the window the broker's orders covered: trades in it were judged (start exclusive).
    window_start = models.DateTimeField(null=True, blank=True)
    window_end = models.DateTimeField(null=True, blank=True)
    limit_reached = models.BooleanField(default=False)
    orders_checked = models.PositiveIntegerField(default=0)
    synced_count = models.PositiveIntegerField(default=0)
    discrepancy_count = models.PositiveIntegerField(default=0)
    external_count = models.PositiveIntegerField(default=0)
    unlinked_trades = models.PositiveIntegerField(default=0)
    in_flight = models.PositiveIntegerField(default=0)
    discrepancies = models.JSONField(default=list, blank=True)
    external_orders = models.JSONField(default=list, blank=True)
    # Symbols whose holdings were compared (ours or the broker's), and those where the broker
    # holds more than our bots: listed for information, not discrepancies.
    holdings_checked = models.PositiveIntegerField(default=0)
    unmanaged_holdings = models.JSONField(default=list, blank=True)
    # len(unmanaged_holdings), stored like the other counts so that a summary (the dashboard's
    # last run, the runs page) never loads the lists.
    unmanaged_count = models.PositiveIntegerField(default=0)

    # The lists a summary leaves in the database: a run may hold thousands of discrepancies.
    LISTS = ("discrepancies", "external_orders", "unmanaged_holdings")

    class Meta:
        ordering = ("-started_at", "-id")
        indexes = [
            models.Index(fields=["trigger", "-started_at"], name="recon_run_trigger_started")
        ]

    def __str__(self):
        return f"{self.get_trigger_display()} run at {self.started_at:%Y-%m-%d %H:%M:%S}"

    @property
    def failed(self) -> bool:
        return self.outcome == self.Outcome.FAILED

    @property
    def summary(self) -> str:
        """ "X orders synced, Y discrepancies found", or why the run failed."""
        if self.failed:
            return f"Failed: {self.error}"
        orders = "order" if self.synced_count == 1 else "orders"
        found = "discrepancy" if self.discrepancy_count == 1 else "discrepancies"
        return f"{self.synced_count} {orders} synced, {self.discrepancy_count} {found} found"

    @property
    def duration_ms(self) -> int:
        return round((self.finished_at - self.started_at).total_seconds() * 1000)
