from django.apps import AppConfig


class PaperExchangeConfig(AppConfig):
    """The built-in paper exchange: its own books (account, orders, positions) in the database, so
    the web process and every Celery worker trade against one exchange."""

    name = "tradebots.broker.paper"
    label = "paper_exchange"
    verbose_name = "Paper exchange (simulated)"
