from django.core.management.base import BaseCommand, CommandError
from pydantic import ValidationError

from backtests.bars import BarDataError, import_csv
from bots.schema import validate_setting, validation_errors

# As manage.py reconcile: 2 for bad input (here: the file, the options or a row).
EXIT_BAD_INPUT = 2


class Command(BaseCommand):
    help = (
        "Import historical bars from a CSV file with the header "
        "timestamp,open,high,low,close[,volume] (ISO 8601 timestamps, UTC when they carry no "
        "offset). Bars already stored at the same timestamps are replaced; a bad row stores "
        "nothing. Exit code 0: imported; 2: bad input."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", help="the CSV file")
        parser.add_argument("--symbol", required=True, help="the ticker, e.g. AAPL")
        parser.add_argument("--timeframe", required=True, help="1Min, 5Min, 15Min, 1Hour or 1Day")

    def handle(self, *args, file, symbol, timeframe, **options):
        symbol = _setting("symbol", symbol)
        timeframe = _setting("timeframe", timeframe)
        try:
            # utf-8-sig: spreadsheet programs often start a CSV with a byte-order mark.
            with open(file, newline="", encoding="utf-8-sig") as csv_file:
                imported = import_csv(csv_file, symbol, timeframe)
        except OSError as error:
            raise CommandError(
                f"{file}: {error.strerror or error}", returncode=EXIT_BAD_INPUT
            ) from error
        except BarDataError as error:
            raise CommandError(f"{file}: {error}", returncode=EXIT_BAD_INPUT) from error
        self.stdout.write(
            f"Imported {imported.count:,} {symbol} {timeframe.value} bars, the first at "
            f"{imported.first:%Y-%m-%d %H:%M} UTC, the last at {imported.last:%Y-%m-%d %H:%M} UTC."
        )


def _setting(name: str, value: str):
    try:
        return validate_setting(name, value)
    except ValidationError as error:
        message = next(iter(validation_errors(error).values()))[0]
        raise CommandError(
            f"--{name} {message.removeprefix('Input ')}", returncode=EXIT_BAD_INPUT
        ) from error
