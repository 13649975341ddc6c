from django.apps import AppConfig


class TradingConfig(AppConfig):
    name = "trading"

    def ready(self):
        from bots.books import register

        from . import selectors

        # bots reads its positions and trades through this (bots never imports trading).
        register(selectors)
