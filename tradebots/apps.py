from django.apps import AppConfig


class TradebotsConfig(AppConfig):
    name = "tradebots"
    verbose_name = "TradeBots"
