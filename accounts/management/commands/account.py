from django.core.management.base import BaseCommand

from accounts.services import account_summary
from tradebots.money import format_money

FIGURES = (
    ("Total account value", "equity"),
    ("Cash", "cash"),
    ("Buying power", "buying_power"),
    ("Allocated to bots", "allocated_capital"),
    ("Reserved by bots", "reserved_capital"),
    ("Deployed by bots", "deployed_capital"),
    ("Available", "available_capital"),
    ("Total realized gains", "total_realized_gains"),
)


class Command(BaseCommand):
    help = "Print the account summary: the broker's figures and the bots' capital and gains."

    def handle(self, *args, **options):
        account = account_summary()
        number = account.account_number or "unknown"
        self.stdout.write(f"Account #{number} ({account.broker_label})")
        for label, name in FIGURES:
            self.stdout.write(f"  {label + ':':<22} {format_money(getattr(account, name)):>16}")
        if account.available_level == "over":
            self.stdout.write(
                self.style.WARNING("  Over-committed: bots reserve more than the buying power.")
            )
        if account.error:
            self.stderr.write(self.style.ERROR(account.error))
