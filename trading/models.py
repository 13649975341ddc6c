from django.db import models

from bots.models import Bot
from tradebots.money import plain_decimal

MONEY = {"max_digits": 20, "decimal_places": 4}
QUANTITY = {"max_digits": 20, "decimal_places": 9}


class Trade(models.Model):
    """One order intent of one bot, written before the order is sent (write-ahead) and then kept
    in step with the broker's view of the order."""

    class Side(models.TextChoices):
        BUY = "buy", "Buy"
        SELL = "sell", "Sell"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        ACCEPTED = "accepted", "Accepted"
        PARTIALLY_FILLED = "partially_filled", "Partially filled"
        FILLED = "filled", "Filled"
        CANCELED = "canceled", "Canceled"
        REJECTED = "rejected", "Rejected"
        EXPIRED = "expired", "Expired"
        UNKNOWN = "unknown", "Unknown"

    class Origin(models.TextChoices):
        ENGINE = "engine", "Engine"
        MANUAL = "manual", "Manual"

    OPEN_STATUSES = (Status.PENDING, Status.ACCEPTED, Status.PARTIALLY_FILLED, Status.UNKNOWN)

    # A deleted bot's trades stay in the books; the client_order_id still names the bot.
    bot = models.ForeignKey(Bot, on_delete=models.SET_NULL, null=True, related_name="trades")
    position = models.ForeignKey(
        "Position", on_delete=models.SET_NULL, null=True, blank=True, related_name="trades"
    )
    symbol = models.CharField(max_length=12)
    side = models.CharField(max_length=4, choices=Side.choices)
    qty = models.DecimalField(**QUANTITY)
    filled_qty = models.DecimalField(default=0, **QUANTITY)
    price = models.DecimalField(null=True, blank=True, help_text="Average fill price", **MONEY)
    # The price the decision was made at: what an unfilled buy is expected to cost (capital rules).
    expected_price = models.DecimalField(null=True, blank=True, **MONEY)
    # Engine intents are abandoned when they never reached the broker in time; manual closes never.
    origin = models.CharField(max_length=8, choices=Origin.choices, default=Origin.ENGINE)
    status = models.CharField(
        max_length=16, choices=Status.choices, default=Status.PENDING, db_index=True
    )
    # NULL, not "", for "none yet" / "history from before linking": unique ignores NULLs.
    order_id = models.CharField(max_length=64, null=True, blank=True, db_index=True)  # noqa: DJ001
    client_order_id = models.CharField(max_length=48, null=True, blank=True, unique=True)  # noqa: DJ001
    reason = models.CharField(max_length=200, null=True, blank=True)  # noqa: DJ001
    error_message = models.TextField(blank=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    filled_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("-created_at", "-id")
        indexes = [
            # A bot's open orders: read by every intent, the capital figures and the order sync;
            # a handful of rows among a bot's whole history.
            models.Index(
                fields=["bot", "created_at"],
                condition=models.Q(
                    status__in=["pending", "accepted", "partially_filled", "unknown"]
                ),
                name="trade_open_by_bot",
            ),
        ]

    def __str__(self):
        return f"{self.side} {plain_decimal(self.qty)} {self.symbol} ({self.status})"

    @property
    def is_open(self) -> bool:
        return self.status in self.OPEN_STATUSES


class Position(models.Model):
    """A bot's holding in its symbol, changed only by actual fills."""

    # Like trades, closed positions (and their realized P&L) outlive a deleted bot.
    bot = models.ForeignKey(Bot, on_delete=models.SET_NULL, null=True, related_name="positions")
    symbol = models.CharField(max_length=12, db_index=True)
    qty = models.DecimalField(**QUANTITY)
    avg_entry_price = models.DecimalField(**MONEY)
    entry_reason = models.CharField(max_length=200, blank=True)
    stop_loss_price = models.DecimalField(null=True, blank=True, **MONEY)
    take_profit_price = models.DecimalField(null=True, blank=True, **MONEY)
    is_open = models.BooleanField(default=True, db_index=True)
    exit_price = models.DecimalField(null=True, blank=True, **MONEY)
    realized_pnl = models.DecimalField(null=True, blank=True, **MONEY)
    opened_at = models.DateTimeField()
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-opened_at", "-id")
        constraints = [
            # At most one open position per bot: a bot is either flat or holding.
            models.UniqueConstraint(
                fields=["bot"], condition=models.Q(is_open=True), name="one_open_position_per_bot"
            ),
        ]

    def __str__(self):
        state = "open" if self.is_open else "closed"
        return f"{plain_decimal(self.qty)} {self.symbol} for {self.bot} ({state})"
