from django.core.management.base import BaseCommand, CommandError

from trading import orders


class Command(BaseCommand):
    help = (
        "Run the order sync once: bring every open order (pending, accepted, partially filled, "
        "unknown) in line with the broker, resend intents that never left, cancel stale ones."
    )

    def handle(self, *args, **options):
        counts = orders.sync_open_orders()
        still_open = orders.open_trades().count()
        self.stdout.write(
            f"Checked {counts['checked']} open orders: {counts['updated']} updated, "
            f"{counts['resent']} sent, {counts['canceled']} canceled as stale, "
            f"{counts['abandoned']} abandoned, {counts['failed']} unreachable; "
            f"{still_open} still open."
        )
        if counts["failed"]:
            raise CommandError(
                f"{counts['failed']} open orders could not be checked: the broker did not answer."
            )
