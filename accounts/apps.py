from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"

    def ready(self):
        # tradebots.account_refresh names the refresh task without importing this app; every
        # process registers it here, so the unthrottled refresh can run it in place.
        from . import tasks  # noqa: F401
