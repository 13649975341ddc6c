from django.conf import settings
from django.db import models


class ApiToken(models.Model):
    """A per-user bearer token for the JSON API. Only the SHA-256 of the token is stored."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100, blank=True)
    # The first characters of the token, so an operator can tell tokens apart in the admin.
    prefix = models.CharField(max_length=8, editable=False)
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        label = f" ({self.name})" if self.name else ""
        return f"{self.prefix}… for {self.user}{label}"


class EquitySnapshot(models.Model):
    """The broker account's value at a moment: the dashboard's account value over time. Taken
    on a schedule (EQUITY_SNAPSHOT_MINUTES) and with every account refresh."""

    taken_at = models.DateTimeField(db_index=True)
    equity = models.DecimalField(max_digits=16, decimal_places=2)
    cash = models.DecimalField(max_digits=16, decimal_places=2)

    class Meta:
        ordering = ["taken_at"]

    def __str__(self):
        return f"{self.equity} at {self.taken_at:%Y-%m-%d %H:%M}"
