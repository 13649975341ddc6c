"""The database a benchmark runs on, after django.setup(): on PostgreSQL a ``test_`` database of
its own on the configured server (created here, dropped at the end, so a benchmark never touches
real data); on SQLite the configured file, migrated."""

import contextlib


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
