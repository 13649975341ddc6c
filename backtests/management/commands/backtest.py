import json
from uuid import UUID

from django.core.management.base import BaseCommand, CommandError

from backtests import services
from backtests.api import BacktestOut
from backtests.models import Backtest
from backtests.pages import metric_rows
from backtests.schema import BacktestInvalid, validate_backtest
from bots.models import Bot

# Exit codes: 0 the backtest ran; 1 it could not run (no data, too few bars); 2 bad input.
EXIT_NOT_RUN = 1
EXIT_BAD_INPUT = 2


class Command(BaseCommand):
    help = (
        "Backtest a bot (--bot ID) or a strategy (--strategy JSON --symbol S --timeframe T) over "
        "--start .. --end, here and now (no worker needed), and print its figures (--json: the "
        "API's GET /api/backtests/{id} document). Exit code 0: ran; 1: could not run; 2: bad input."
    )

    def add_arguments(self, parser):
        source = parser.add_mutually_exclusive_group(required=True)
        source.add_argument("--bot", help="the bot's id: its settings and strategy")
        source.add_argument(
            "--strategy",
            help='a strategy as JSON, e.g. \'{"indicators": '
            '{"rsi": {"enabled": true}}, "buy_rule": "rsi", "sell_rule": "rsi"}\'',
        )
        parser.add_argument("--symbol", help="with --strategy: the ticker")
        parser.add_argument("--timeframe", help="with --strategy: 1Min, 5Min, 15Min, 1Hour, 1Day")
        parser.add_argument("--capital", help="the capital (default: the bot's, or 10000)")
        parser.add_argument("--stop-loss", help="stop-loss percent")
        parser.add_argument("--take-profit", help="take-profit percent")
        parser.add_argument("--start", required=True, help="ISO 8601 date or date-time (UTC)")
        parser.add_argument("--end", required=True, help="ISO 8601; a date means through that day")
        parser.add_argument("--commission-bps", help="commission in basis points (default 0)")
        parser.add_argument("--json", action="store_true", help="print the result as JSON")

    def handle(self, *args, **options):
        requested, bot = self._request(options)
        try:
            backtest = services.request_backtest(requested, None, bot, enqueue=False)
        except services.BacktestRefused as refused:
            raise CommandError(refused.message, returncode=EXIT_BAD_INPUT) from None
        backtest = services.run_backtest(backtest.pk)
        backtest.refresh_from_db()
        if backtest.status != Backtest.Status.DONE:
            raise CommandError(f"Not run: {backtest.message}", returncode=EXIT_NOT_RUN)
        if options["json"]:
            document = BacktestOut.from_orm(backtest).model_dump(mode="json")
            self.stdout.write(json.dumps(document, indent=2))
        else:
            self._print(backtest)

    def _request(self, options):
        bot = None
        if options["bot"]:
            try:
                bot = Bot.objects.get(pk=UUID(options["bot"]))
            except (ValueError, Bot.DoesNotExist):
                raise CommandError(
                    f"--bot: no bot {options['bot']!r}.", returncode=EXIT_BAD_INPUT
                ) from None
            document = services.settings_of_bot(bot)
        else:
            try:
                strategy = json.loads(options["strategy"])
            except ValueError:
                raise CommandError(
                    "--strategy: not valid JSON.", returncode=EXIT_BAD_INPUT
                ) from None
            document = {
                "name": "Command-line backtest",
                "symbol": options["symbol"],
                "timeframe": options["timeframe"],
                "capital": "10000",
                "strategy": strategy,
            }
        given = {
            "capital": options["capital"],
            "stop_loss_pct": options["stop_loss"],
            "take_profit_pct": options["take_profit"],
            "commission_bps": options["commission_bps"],
            "start": options["start"],
            "end": options["end"],
        }
        document.update({key: value for key, value in given.items() if value is not None})
        try:
            return validate_backtest(document), bot
        except BacktestInvalid as invalid:
            raise CommandError(str(invalid), returncode=EXIT_BAD_INPUT) from None

    def _print(self, backtest: Backtest) -> None:
        self.stdout.write(
            f"{backtest.name}: {backtest.symbol} {backtest.timeframe}, {backtest.bar_count} bars "
            f"from {backtest.first_bar_at:%Y-%m-%d %H:%M} to {backtest.last_bar_at:%Y-%m-%d %H:%M}"
            f" UTC (id {backtest.pk})"
        )
        rows = metric_rows(backtest.metrics)
        width = max(len(row["label"]) for row in rows)
        for row in rows:
            self.stdout.write(f"  {row['label']:<{width}}  {row['value']}")
