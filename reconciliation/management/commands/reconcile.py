import json

from django.core.management.base import BaseCommand, CommandError

from reconciliation import schemas, services
from reconciliation.forms import ReconcileForm
from reconciliation.models import ReconciliationRun
from tradebots.money import format_money

# Exit codes, for cron and CI: 0 in sync, 1 discrepancies, 2 bad input, 3 broker unreachable.
EXIT_DISCREPANCIES = 1
EXIT_BAD_INPUT = 2
EXIT_UNREACHABLE = 3


class Command(BaseCommand):
    help = (
        "Compare our trades with the broker's recent orders, and our open positions with its "
        "holdings, and print the report. Exit code 0: "
        "in sync; 1: discrepancies found; 2: bad input; 3: the broker could not be read."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--limit",
            help=f"how many closed broker orders back (default {services.DEFAULT_LIMIT}; with "
            f"--since, all since then; at most {services.MAX_LIMIT})",
        )
        parser.add_argument("--since", help="only orders after this ISO 8601 date or date-time")
        parser.add_argument("--json", action="store_true", help="print the report as JSON")

    def handle(self, *args, **options):
        form = ReconcileForm({"limit": options["limit"], "since": options["since"]})
        if not form.is_valid():
            name, message = form.first_error()
            raise CommandError(f"--{name}: {message}", returncode=EXIT_BAD_INPUT)
        run = services.reconcile(
            trigger=ReconciliationRun.Trigger.COMMAND,
            started_by="manage.py reconcile",
            limit=form.cleaned_data["limit"],
            since=form.cleaned_data["since"],
        )
        if run.failed:
            raise CommandError(run.error, returncode=EXIT_UNREACHABLE)
        if options["json"]:
            self.stdout.write(json.dumps(schemas.report(run), indent=2))
        else:
            self._print(run)
        if run.discrepancy_count:
            # The report above says it all; the exit code tells cron and CI. Not an error of
            # the command, so no "CommandError:" line.
            raise SystemExit(EXIT_DISCREPANCIES)

    def _print(self, run: ReconciliationRun) -> None:
        start = f"after {run.window_start.isoformat()}" if run.window_start else "all history"
        self.stdout.write(
            f"Compared {run.orders_checked} broker orders with our trades "
            f"(window: {start} up to {run.window_end.isoformat()}"
            f"{f'; the last {run.limit} closed orders' if run.limit_reached else ''})."
        )
        external = "external order" if run.external_count == 1 else "external orders"
        self.stdout.write(f"{run.summary}; {run.external_count} {external}.")
        unmanaged = len(run.unmanaged_holdings)
        self.stdout.write(
            f"Compared holdings of {run.holdings_checked} "
            f"{'symbol' if run.holdings_checked == 1 else 'symbols'}; {unmanaged} unmanaged "
            f"{'holding' if unmanaged == 1 else 'holdings'} (not discrepancies)."
        )
        if run.in_flight:
            self.stdout.write(f"{run.in_flight} trades in flight (the order sync settles them).")
        if run.unlinked_trades:
            self.stdout.write(
                f"{run.unlinked_trades} trades in the window have neither client_order_id nor "
                "order_id and were left out."
            )
        if run.discrepancies:
            self.stdout.write("\nDiscrepancies:")
            for d in run.discrepancies:
                if "bots" in d:  # a holding: its detail names every bot
                    bot = ", ".join(b["name"] or services.NO_BOT for b in d["bots"])
                else:
                    bot = d["bot"]["name"] or (
                        f"bot {d['bot']['prefix']}" if d["bot"]["prefix"] else "-"
                    )
                order = d["client_order_id"] or d["order_id"] or "-"
                self.stdout.write(
                    f"  {d['kind']:<17} {order:<22} {d['side'] or '':<4} {d['symbol']:<6} "
                    f"{bot}: {d['detail']}"
                )
        if run.unmanaged_holdings:
            self.stdout.write("\nUnmanaged holdings (the broker holds more than our bots):")
            for h in run.unmanaged_holdings:
                self.stdout.write(
                    f"  {h['symbol']:<6} {h['qty']} unmanaged: the broker holds "
                    f"{h['broker_qty']}, our bots {h['ours']}"
                )
        if run.external_orders:
            self.stdout.write("\nExternal orders (not placed by a bot):")
            for o in run.external_orders:
                price = f" @ {format_money(o['filled_avg_price'])}" if o["filled_avg_price"] else ""
                self.stdout.write(
                    f"  {o['client_order_id']:<38} {o['side']:<4} {o['qty']} {o['symbol']} "
                    f"{o['status']}{price}"
                )
        kinds = {d["kind"] for d in run.discrepancies}
        if kinds:
            self.stdout.write("\nWhat they mean and what to do:")
            for kind, (meaning, action) in services.KIND_GUIDANCE.items():
                if kind in kinds:
                    self.stdout.write(f"- {services.KIND_LABELS[kind]}: {meaning} {action}")
