import re
from decimal import Decimal

from django import forms

from .models import Bot
from .strategy import INDICATOR_NAMES, RULE_CHOICES, Strategy, flat_fields, validate_strategy

CAPITAL_HELP = (
    "Available = buying power − reserved; a bot reserves its capital minus what it has "
    "already invested."
)
SYMBOL_PATTERN = re.compile(r"^[A-Z][A-Z0-9.]{0,11}$")
BOT_FIELDS = (
    "name", "symbol", "capital", "timeframe", "stop_loss_pct", "take_profit_pct",
    "allow_fractional",
)  # fmt: skip


def _strategy_field(field) -> forms.Field:
    if field.param == "enabled":
        return forms.BooleanField(required=False, label=field.label)
    if isinstance(field.default, Decimal):
        return forms.DecimalField(required=False, label=field.label, max_digits=6, decimal_places=2)
    # Periods and levels are whole numbers; ranges are checked by validate_strategy so that the
    # form, the API and the engine share one rule book.
    return forms.IntegerField(required=False, label=field.label)


class BotForm(forms.Form):
    """A bot's settings and strategy, flat, as both the page and the JSON API submit them."""

    name = forms.CharField(max_length=100)
    symbol = forms.CharField(max_length=12, help_text="Ticker, e.g. AAPL")
    capital = forms.DecimalField(
        max_digits=14,
        decimal_places=2,
        min_value=Decimal("0.01"),
        label="Capital ($)",
        help_text=CAPITAL_HELP,
    )
    timeframe = forms.ChoiceField(choices=Bot.Timeframe.choices, initial=Bot.Timeframe.MIN_5)
    stop_loss_pct = forms.DecimalField(
        required=False, max_digits=5, decimal_places=2, min_value=Decimal("0.01"),
        max_value=Decimal("99.99"), label="Stop-loss (%)",
    )  # fmt: skip
    take_profit_pct = forms.DecimalField(
        required=False, max_digits=6, decimal_places=2, min_value=Decimal("0.01"),
        max_value=Decimal("1000"), label="Take-profit (%)",
    )  # fmt: skip
    allow_fractional = forms.BooleanField(
        required=False,
        label="Buy fractional shares",
        help_text="Only where the broker allows fractional trading of the symbol.",
    )
    buy_rule = forms.ChoiceField(choices=RULE_CHOICES, initial="rsi")
    sell_rule = forms.ChoiceField(choices=RULE_CHOICES, initial="rsi")

    def __init__(self, *args, validate_url: str | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        for field in flat_fields():
            self.fields[field.name] = _strategy_field(field)
        if validate_url:
            for name, field in self.fields.items():
                # Each field is checked on the server as the user leaves it, by the same rules
                # as on submit; the answer replaces the field's error line.
                field.widget.attrs.update(
                    {
                        "hx-post": validate_url,
                        "hx-trigger": "change",
                        "hx-target": f"#error-{name}",
                        "hx-swap": "outerHTML",
                        "hx-include": "closest form",
                        "hx-vals": f'{{"_field": "{name}"}}',
                    }
                )

    @classmethod
    def initial_for(cls, bot: Bot | None = None) -> dict:
        if bot is None:
            return Strategy.default().to_flat()
        initial = {name: getattr(bot, name) for name in BOT_FIELDS}
        initial.update(Strategy.from_dict(bot.strategy).to_flat())
        return initial

    def clean_symbol(self):
        symbol = self.cleaned_data["symbol"].strip().upper()
        if not SYMBOL_PATTERN.match(symbol):
            raise forms.ValidationError("Enter a ticker symbol such as AAPL or BRK.B.")
        return symbol

    def clean_name(self):
        name = self.cleaned_data["name"].strip()
        if not name:
            raise forms.ValidationError("Give the bot a name.")
        return name

    def clean(self):
        cleaned = super().clean()
        strategy = Strategy.from_flat(cleaned)
        for field, message in validate_strategy(strategy).items():
            if field in self.fields and field not in self.errors:
                self.add_error(field, message)
            elif field not in self.fields:
                self.add_error(None, message)
        cleaned["strategy"] = strategy.to_dict()
        return cleaned

    def bot_data(self) -> dict:
        """The model fields, for the services."""
        data = {name: self.cleaned_data.get(name) for name in BOT_FIELDS}
        data["strategy"] = self.cleaned_data["strategy"]
        return data

    def indicator_groups(self):
        """The strategy fields grouped per indicator, for the template."""
        groups = []
        for key, name in INDICATOR_NAMES.items():
            bound = [self[f.name] for f in flat_fields() if f.indicator == key]
            groups.append({"key": key, "name": name, "enabled": bound[0], "params": bound[1:]})
        return groups
