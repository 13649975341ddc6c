from django.core.management.base import BaseCommand, CommandError

from tradebots.money import plain_decimal
from trading.emergency import emergency_counts, emergency_stop


class Command(BaseCommand):
    help = "Pause every running bot and sell every managed position at market."

    def add_arguments(self, parser):
        parser.add_argument("--yes", action="store_true", help="Do not ask for confirmation.")

    def handle(self, *args, yes, **options):
        counts = emergency_counts()
        if not yes:
            question = (
                f"Sell all {counts['positions']} open position(s) and pause all "
                f"{counts['bots']} running bot(s)? Type 'yes': "
            )
            if input(question).strip().lower() != "yes":
                raise CommandError("Aborted; nothing was changed.")
        report = emergency_stop("manage.py emergency_stop")
        for bot in report.paused:
            self.stdout.write(f"Paused {bot.name}")
        for result in report.closed:
            trade = result.trade
            self.stdout.write(
                f"Sold {plain_decimal(trade.qty)} {trade.symbol} ({trade.get_status_display()})"
            )
        if report.failed:
            raise CommandError("Could not close: " + "; ".join(report.failed))
        self.stdout.write(self.style.SUCCESS("Emergency stop done."))
