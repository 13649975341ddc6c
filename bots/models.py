import uuid
from datetime import timedelta
from decimal import Decimal

from django.conf import settings as django_settings
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import models
from django.db.models import Exists, OuterRef
from pydantic import ValidationError as SchemaError

from .books import books
from .schema import BotSettings, StrategyConfig, Timeframe, validation_errors


def default_strategy() -> dict:
    return StrategyConfig.default().model_dump(mode="json")


def _errors_by_field(errors: dict[str, list[str]]) -> dict[str, list[str]]:
    """validation_errors() by model field: "strategy.indicators.rsi.period" is the strategy
    field's (its messages say which part they are about)."""
    by_field: dict[str, list[str]] = {}
    for path, messages in errors.items():
        field = path.split(".")[0]
        by_field.setdefault(
            field if field in BotSettings.model_fields else NON_FIELD_ERRORS, []
        ).extend(messages)
    return by_field


class BotQuerySet(models.QuerySet):
    def with_figures(self):
        """Bots with their realized gains, trade and win counts and open position loaded in
        constant queries (read from the books, which belong to trading: see bots/books.py),
        and whether each has ever run."""
        started = BotStatusChange.objects.filter(bot=OuterRef("pk"), to_status=Bot.Status.RUNNING)
        return books().with_figures(self).annotate(has_run=Exists(started))


class Bot(models.Model):
    class Status(models.TextChoices):
        STOPPED = "stopped", "Stopped"
        RUNNING = "running", "Running"
        PAUSED = "paused", "Paused"
        ERROR = "error", "Error"

    Timeframe = Timeframe

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=100)
    symbol = models.CharField(max_length=12, db_index=True)
    capital = models.DecimalField(max_digits=14, decimal_places=2)
    timeframe = models.CharField(max_length=6, choices=Timeframe.choices, default=Timeframe.MIN_5)
    status = models.CharField(
        max_length=8, choices=Status.choices, default=Status.STOPPED, db_index=True
    )
    last_error = models.TextField(blank=True)
    strategy = models.JSONField(default=default_strategy)
    stop_loss_pct = models.DecimalField(max_digits=5, decimal_places=2, null=True, blank=True)
    take_profit_pct = models.DecimalField(max_digits=6, decimal_places=2, null=True, blank=True)
    # Fractional shares are bought only when this is on and the broker says the asset allows it.
    allow_fractional = models.BooleanField(default=False)
    # What the engine decided for the bot on its last evaluation (buy, sell, hold, waiting,
    # skipped, error), why, and when: its card says so, and when the next one comes.
    last_action = models.CharField(max_length=16, blank=True)
    last_reason = models.CharField(max_length=300, blank=True)
    last_evaluated_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = BotQuerySet.as_manager()

    class Meta:
        ordering = ("name", "created_at")
        # The trader role (tradebots.permissions): create, change, start and stop bots, sell,
        # reconcile. Without it a user can look at everything and change nothing.
        permissions = [("trade", "Can trade: change bots, sell positions, reconcile")]
        constraints = [
            models.CheckConstraint(condition=models.Q(capital__gt=0), name="bot_capital_positive"),
        ]

    def __str__(self):
        return f"{self.name} ({self.symbol})"

    def settings_input(self) -> dict:
        """The bot's current settings as BotSettings reads them (the strategy as stored)."""
        return {name: getattr(self, name) for name in BotSettings.model_fields}

    def clean(self):
        """Validate the settings, the strategy JSON included, through the bot schema (the admin
        comes here), and keep them as the schema normalises them."""
        try:
            settings = BotSettings.model_validate(self.settings_input())
        except SchemaError as error:
            raise ValidationError(_errors_by_field(validation_errors(error))) from None
        for name, value in settings.bot_fields().items():
            setattr(self, name, value)

    @property
    def open_position(self):
        """The bot's open position or None; uses ``open_positions`` when a list view prefetched
        it. (The reverse relation belongs to trading; bots does not import it.)"""
        positions = getattr(self, "open_positions", None)
        if positions is None:
            positions = list(self.positions.filter(is_open=True)[:1])
        return positions[0] if positions else None

    @property
    def is_new(self) -> bool:
        """Stopped and never started: shown as "New", not "Stopped"."""
        if self.status != Bot.Status.STOPPED:
            return False
        has_run = getattr(self, "has_run", None)
        if has_run is None:
            has_run = self.status_changes.filter(to_status=Bot.Status.RUNNING).exists()
        return not has_run

    @property
    def status_label(self) -> str:
        return "New" if self.is_new else self.get_status_display()

    @property
    def unrealized_pnl(self) -> Decimal | None:
        """The open position's P&L at the last price read (``services.with_latest_prices``
        sets it); None when flat or no price is known."""
        price = getattr(self, "latest_price", None)
        position = self.open_position
        if price is None or position is None:
            return None
        return (price - position.avg_entry_price) * position.qty

    @property
    def win_rate(self) -> Decimal | None:
        """Share of closed positions (``with_figures``) that made money, in percent."""
        closed = getattr(self, "closed_positions", 0)
        if not closed:
            return None
        return Decimal(self.winning_positions * 100) / closed

    @property
    def next_evaluation(self):
        """When the engine next looks at the bot (running, or paused holding a position): a
        tick interval after its last evaluation; None when it is not evaluated or has not been
        yet (the next tick)."""
        if self.status not in (Bot.Status.RUNNING, Bot.Status.PAUSED) or not self.last_evaluated_at:
            return None
        return self.last_evaluated_at + timedelta(seconds=django_settings.ENGINE_TICK_SECONDS)

    @property
    def realized_gains(self) -> Decimal:
        """Realized P&L of the bot's closed positions (annotated by ``with_figures``)."""
        total = getattr(self, "realized_gains_total", None)
        if total is None:
            closed = self.positions.filter(is_open=False)
            total = closed.aggregate(total=models.Sum("realized_pnl"))["total"] or Decimal(0)
        return total

    @property
    def short_id(self) -> str:
        """The part of the id that every client_order_id of this bot carries."""
        return self.id.hex[:8]


class BotStatusChange(models.Model):
    """Who or what changed a bot's status, why, and when."""

    bot = models.ForeignKey(Bot, on_delete=models.CASCADE, related_name="status_changes")
    from_status = models.CharField(max_length=8, choices=Bot.Status.choices, blank=True)
    to_status = models.CharField(max_length=8, choices=Bot.Status.choices)
    actor = models.CharField(max_length=150)
    reason = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ("-created_at", "-id")

    def __str__(self):
        return f"{self.bot}: {self.from_status or 'new'} → {self.to_status} by {self.actor}"


class AllocationLock(models.Model):
    """A single row whose lock serialises every capital check with the write that follows it, so
    concurrent requests cannot together allocate more than the buying power."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1, editable=False)

    def __str__(self):
        return "capital allocation lock"
