from django.core.management.base import BaseCommand, CommandError

from tradebots.broker import BrokerError
from trading import engine


class Command(BaseCommand):
    help = "Run one engine tick now, in this process, and print what each running bot did."

    def handle(self, *args, **options):
        try:
            report = engine.run_tick(dispatch=engine.evaluate_batch)
        except BrokerError as error:
            raise CommandError(f"The broker is unreachable: {error}") from None
        if not report.market_open:
            status = engine.market_status() or {}
            self.stdout.write(f"Market closed (next open {status.get('next_open', 'unknown')}).")
            return
        if not report.outcomes:
            self.stdout.write("No running bots.")
            return
        for outcome in report.outcomes:
            self.stdout.write(outcome.describe())
