"""Historical bars (cached per symbol, timeframe and bar), and stored backtests and grids."""

import uuid
from datetime import timedelta

from django.conf import settings
from django.db import models

from bots.schema import Timeframe

PRICE = {"max_digits": 20, "decimal_places": 4}
QUANTITY = {"max_digits": 20, "decimal_places": 9}


class RunStatus(models.TextChoices):
    """Where a backtest or a grid is: queued, fetching its bars, running, done or failed."""

    QUEUED = "queued", "Queued"
    FETCHING = "fetching", "Fetching bars"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class HistoricalBar(models.Model):
    """One bar of market data, as the broker (or an imported file) gave it. A bar is stored
    once per (symbol, timeframe, timestamp): re-runs and grids read it from here."""

    symbol = models.CharField(max_length=12)
    timeframe = models.CharField(max_length=6, choices=Timeframe.choices)
    timestamp = models.DateTimeField(help_text="When the bar opened (UTC)")
    open = models.DecimalField(**PRICE)
    high = models.DecimalField(**PRICE)
    low = models.DecimalField(**PRICE)
    close = models.DecimalField(**PRICE)
    volume = models.DecimalField(max_digits=24, decimal_places=4, default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["symbol", "timeframe", "timestamp"], name="historical_bar_unique"
            )
        ]

    def __str__(self):
        return f"{self.symbol} {self.timeframe} {self.timestamp:%Y-%m-%d %H:%M}"


class BarCoverage(models.Model):
    """A span whose bars are all stored: fetched from the broker or imported. Bars alone cannot
    tell a night or a holiday from a range never fetched; this can."""

    class Source(models.TextChoices):
        BROKER = "broker", "Broker"
        IMPORT = "import", "Imported file"

    symbol = models.CharField(max_length=12)
    timeframe = models.CharField(max_length=6, choices=Timeframe.choices)
    start = models.DateTimeField()
    end = models.DateTimeField(help_text="Exclusive")
    source = models.CharField(max_length=6, choices=Source.choices, default=Source.BROKER)

    class Meta:
        indexes = [models.Index(fields=["symbol", "timeframe", "start"])]

    def __str__(self):
        return f"{self.symbol} {self.timeframe} {self.start:%Y-%m-%d} → {self.end:%Y-%m-%d}"


class Backtest(models.Model):
    """One strategy replayed over one bar range: what was asked, how far it got, what came out."""

    Status = RunStatus

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=100)
    bot = models.ForeignKey(
        "bots.Bot", null=True, blank=True, on_delete=models.SET_NULL, related_name="backtests"
    )
    optimisation = models.ForeignKey(
        "Optimisation", null=True, blank=True, on_delete=models.CASCADE, related_name="backtests"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True, help_text="When a worker took it")
    finished_at = models.DateTimeField(null=True, blank=True)
    # What was asked: the bot settings that trade (BotSettings' strategy, SL/TP, fractions).
    symbol = models.CharField(max_length=12)
    timeframe = models.CharField(max_length=6, choices=Timeframe.choices)
    strategy = models.JSONField()
    capital = models.DecimalField(max_digits=14, decimal_places=2)
    stop_loss_pct = models.DecimalField(max_digits=5, decimal_places=2, null=True, blank=True)
    take_profit_pct = models.DecimalField(max_digits=6, decimal_places=2, null=True, blank=True)
    allow_fractional = models.BooleanField(default=False)
    slippage_bps = models.DecimalField(max_digits=8, decimal_places=2)
    commission_bps = models.DecimalField(max_digits=8, decimal_places=2, default=0)
    start = models.DateTimeField()
    end = models.DateTimeField()
    # How it went.
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.QUEUED)
    progress = models.PositiveSmallIntegerField(default=0, help_text="Percent")
    message = models.CharField(max_length=300, blank=True)
    # What came out.
    bar_count = models.PositiveIntegerField(default=0)
    first_bar_at = models.DateTimeField(null=True, blank=True)
    last_bar_at = models.DateTimeField(null=True, blank=True)
    metrics = models.JSONField(default=dict, blank=True)
    equity = models.JSONField(
        default=list, blank=True, help_text="[[epoch seconds, equity], ...], thinned for charts"
    )
    drawdown = models.JSONField(
        default=list, blank=True, help_text="[[epoch seconds, % under the peak], ...], thinned"
    )
    out_of_sample_metrics = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["-created_at"])]

    def __str__(self):
        return self.name

    @property
    def last_day(self):
        """The range's last day as a trader gave it ("To", inclusive): the end is exclusive."""
        return (self.end - timedelta(microseconds=1)).date()


class BacktestTrade(models.Model):
    """One round trip of a backtest: entry and exit, why each happened."""

    backtest = models.ForeignKey(Backtest, on_delete=models.CASCADE, related_name="trades")
    number = models.PositiveIntegerField()
    qty = models.DecimalField(**QUANTITY)
    entry_at = models.DateTimeField()
    entry_price = models.DecimalField(**PRICE)
    entry_reason = models.CharField(max_length=200)
    exit_at = models.DateTimeField()
    exit_price = models.DecimalField(**PRICE)
    exit_reason = models.CharField(max_length=200)
    pnl = models.DecimalField(**PRICE)
    return_pct = models.DecimalField(max_digits=12, decimal_places=4)

    class Meta:
        ordering = ["backtest", "number"]
        constraints = [
            models.UniqueConstraint(fields=["backtest", "number"], name="backtest_trade_number")
        ]

    def __str__(self):
        return f"{self.backtest} #{self.number}"


class Optimisation(models.Model):
    """A parameter grid over one strategy: every combination backtested on the in-sample part
    of the range, the best re-run on the rest (out of sample)."""

    Status = RunStatus

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=100)
    bot = models.ForeignKey(
        "bots.Bot", null=True, blank=True, on_delete=models.SET_NULL, related_name="optimisations"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    base = models.JSONField(help_text="The backtest settings every combination starts from")
    grid = models.JSONField(help_text='{"strategy.indicators.rsi.period": [10, 14], ...}')
    metric = models.CharField(max_length=32)
    in_sample_pct = models.PositiveSmallIntegerField(default=70)
    split_at = models.DateTimeField(null=True, blank=True)
    combinations = models.PositiveIntegerField(default=0)
    completed = models.PositiveIntegerField(default=0)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.QUEUED)
    message = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return self.name
