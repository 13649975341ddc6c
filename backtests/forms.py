"""The backtest form: the bot form's settings and strategy widgets, plus the range and costs,
validated as one BacktestSettings (backtests/schema.py)."""

from datetime import timedelta

from django import forms
from django.utils import timezone

from bots.forms import WIDGET_PATHS, BotForm
from bots.models import Bot

from .optimisation import RANKINGS, GridInvalid, combination_count, combinations, parse_grid
from .schema import BacktestSettings
from .services import settings_of_bot

DEFAULT_DAYS = 30


def _date(label: str, help_text: str) -> forms.Field:
    # Passed on as typed: the schema parses it (and says what is wrong with it).
    return forms.Field(
        required=False,
        label=label,
        help_text=help_text,
        widget=forms.DateInput(attrs={"type": "date"}),
    )


class BacktestForm(BotForm):
    settings_model = BacktestSettings
    widget_paths = {
        **WIDGET_PATHS,
        "start": "start",
        "end": "end",
        "commission_bps": "commission_bps",
    }

    start = _date("From", "The first bars prime the indicators (their warm-up).")
    end = _date("To (inclusive)", "Bars up to the end of this day (UTC).")
    commission_bps = forms.Field(
        required=False,
        label="Commission (basis points)",
        help_text="Of each fill's value; Alpaca charges none.",
        widget=forms.NumberInput(attrs={"step": "0.01"}),
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["capital"].help_text = "What each entry invests, as the bot's capital."

    @classmethod
    def initial_for(cls, bot: Bot | None = None) -> dict:
        initial = super().initial_for(bot)
        if bot is not None:
            initial["name"] = settings_of_bot(bot)["name"]
        else:
            initial["name"] = "Backtest"
        today = timezone.now().date()
        initial.update(
            start=(today - timedelta(days=DEFAULT_DAYS)).isoformat(),
            end=(today - timedelta(days=1)).isoformat(),
            commission_bps="0",
        )
        return initial


GRID_HELP = (
    "One parameter per line: name = values, e.g. rsi.period = 10, 14, 20 or "
    "stop_loss_pct = 1:3:0.5 (from:to:step)."
)


class OptimisationForm(BacktestForm):
    """The backtest form's configuration as the grid's base, the grid, the figure to rank by
    and how much of the range is in sample."""

    grid = forms.CharField(
        required=False,
        label="Parameters to vary",
        help_text=GRID_HELP,
        widget=forms.Textarea(attrs={"rows": 4, "spellcheck": "false"}),
    )
    metric = forms.ChoiceField(
        label="Rank by", choices=[(key, label) for key, (label, _) in RANKINGS.items()]
    )
    in_sample_pct = forms.IntegerField(
        label="In sample (%)",
        min_value=10,
        max_value=95,
        initial=70,
        help_text="Optimised on this first part of the range; the best are tested on the rest.",
    )

    def clean(self):
        cleaned = super().clean()
        self.grid_values = None
        self.combinations = 0
        try:
            grid = parse_grid(cleaned.get("grid") or "")
            # Until the base configuration is valid, the count is the grid's size.
            self.combinations = combination_count(grid)
            if self.settings is not None:
                found = combinations(self.settings.model_dump(mode="json"), grid)
                if not found:
                    raise GridInvalid("No combination of the grid is a valid strategy.")
                self.combinations = len(found)
            self.grid_values = grid
        except GridInvalid as invalid:
            self.add_error("grid", str(invalid))
        return cleaned

    @classmethod
    def initial_for(cls, bot: Bot | None = None) -> dict:
        initial = super().initial_for(bot)
        initial.update(
            grid="rsi.period = 10, 14, 20\nstop_loss_pct = 1, 2, 3",
            metric="sharpe",
            in_sample_pct=70,
        )
        return initial
