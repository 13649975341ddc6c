"""Keep the dashboard's account summary current: bots and trades change in other apps, which
must not import this one, so it listens for their saves."""

from django.db.models.signals import post_delete, post_save

from bots.models import Bot
from trading.models import Trade

from .services import refresh_account_summary_on_commit

FILL_STATUSES = (Trade.Status.FILLED, Trade.Status.PARTIALLY_FILLED)


def bot_changed(sender, **kwargs):
    refresh_account_summary_on_commit()


def trade_changed(sender, instance, **kwargs):
    if instance.status in FILL_STATUSES:
        refresh_account_summary_on_commit()


def connect():
    post_save.connect(bot_changed, sender=Bot, dispatch_uid="account-summary-bot-saved")
    post_delete.connect(bot_changed, sender=Bot, dispatch_uid="account-summary-bot-deleted")
    post_save.connect(trade_changed, sender=Trade, dispatch_uid="account-summary-trade-saved")
