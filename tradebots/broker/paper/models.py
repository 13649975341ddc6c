import uuid

from django.db import models

MONEY = {"max_digits": 20, "decimal_places": 4}
QUANTITY = {"max_digits": 20, "decimal_places": 9}


class PaperAccount(models.Model):
    """The one simulated brokerage account."""

    account_number = models.CharField(max_length=20, unique=True)
    cash = models.DecimalField(**MONEY)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self):
        return self.account_number


class PaperOrder(models.Model):
    STATUSES = [
        (status, status)
        for status in ("new", "accepted", "partially_filled", "filled", "canceled", "rejected")
    ]

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    client_order_id = models.CharField(max_length=48, unique=True)
    symbol = models.CharField(max_length=12, db_index=True)
    side = models.CharField(max_length=4, choices=[("buy", "buy"), ("sell", "sell")])
    type = models.CharField(max_length=6, choices=[("market", "market"), ("limit", "limit")])
    qty = models.DecimalField(**QUANTITY)
    limit_price = models.DecimalField(null=True, blank=True, **MONEY)
    filled_qty = models.DecimalField(default=0, **QUANTITY)
    filled_avg_price = models.DecimalField(null=True, blank=True, **MONEY)
    status = models.CharField(max_length=20, choices=STATUSES, db_index=True)
    submitted_at = models.DateTimeField(db_index=True)
    filled_at = models.DateTimeField(null=True, blank=True)
    canceled_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("-submitted_at",)

    def __str__(self):
        return f"{self.side} {self.qty} {self.symbol} ({self.status})"


class PaperPosition(models.Model):
    symbol = models.CharField(max_length=12, unique=True)
    qty = models.DecimalField(**QUANTITY)
    avg_entry_price = models.DecimalField(**MONEY)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("symbol",)

    def __str__(self):
        return f"{self.qty} {self.symbol}"
