"""The database a benchmark runs on, after django.setup(): on PostgreSQL a ``test_`` database of
its own on the configured server (created here, dropped at the end, so a benchmark never touches
real data); on SQLite the configured file, migrated."""

import contextlib
import os


def setup_django(database_url: str) -> None:
    """Django on ``database_url`` with the paper exchange (no Alpaca keys), DEBUG off."""
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tradebots.settings")
    os.environ["ALPACA_API_KEY"] = os.environ["ALPACA_SECRET_KEY"] = ""
    os.environ["DEBUG"] = "false"
    import django

    django.setup()


@contextlib.contextmanager
def throwaway_database():
    from django.core.management import call_command
    from django.db import connection

    if connection.vendor != "postgresql":
        call_command("migrate", verbosity=0)
        yield
        return
    name = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        yield
    finally:
        connection.close()
        connection.creation.destroy_test_db(name, verbosity=0)
