from django.apps import AppConfig


class TradebotsConfig(AppConfig):
    name = "tradebots"
    verbose_name = "TradeBots"

    def ready(self):
        from . import socket_sessions

        socket_sessions.connect()
