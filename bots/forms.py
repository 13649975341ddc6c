"""The bot form: one flat widget per setting for a human, validated as one nested BotSettings.

The widgets parse nothing; the form puts what was typed where the schema expects it
("rsi_period" -> strategy.indicators.rsi.period) and the schema alone accepts or refuses it, so
the page, the admin and the JSON API say the same thing about the same value.
"""

from decimal import Decimal

from django import forms
from pydantic import ValidationError

from .models import Bot, default_strategy
from .schema import (
    RULE_CHOICES,
    BotSettings,
    IndicatorSet,
    StrategyConfig,
    Timeframe,
    validation_errors,
)

CAPITAL_HELP = (
    "Available = buying power − reserved; a bot reserves its capital minus what it has "
    "already invested."
)
SETTING_FIELDS = (
    "name", "symbol", "capital", "timeframe", "stop_loss_pct", "take_profit_pct",
    "allow_fractional",
)  # fmt: skip


def _widget_paths() -> dict[str, str]:
    """Form field -> where its value goes in BotSettings' input."""
    paths = {name: name for name in SETTING_FIELDS}
    paths.update(buy_rule="strategy.buy_rule", sell_rule="strategy.sell_rule")
    for key, indicator in IndicatorSet.model_fields.items():
        for param in indicator.annotation.model_fields:
            paths[f"{key}_{param}"] = f"strategy.indicators.{key}.{param}"
    return paths


WIDGET_PATHS = _widget_paths()


def _text(**attrs) -> forms.Field:
    # forms.Field passes the text on as typed: the schema parses and checks it.
    return forms.Field(required=False, **attrs)


def _number(step: str, **attrs) -> forms.Field:
    return _text(widget=forms.NumberInput(attrs={"step": step}), **attrs)


def _indicator_fields() -> dict[str, forms.Field]:
    fields = {}
    for key, indicator in IndicatorSet.model_fields.items():
        config = indicator.annotation
        fields[f"{key}_enabled"] = forms.BooleanField(required=False, label=config.label)
        for param, info in config.model_fields.items():
            if param != "enabled":
                step = "0.01" if info.annotation is Decimal else "1"
                fields[f"{key}_{param}"] = _number(step, label=config.field_label(param))
    return fields


class BotForm(forms.Form):
    """A bot's settings and strategy as the bot pages edit them."""

    # What the form validates as, and where each widget's value goes in its input: a form for
    # another shape built on BotSettings (a backtest) sets both.
    settings_model = BotSettings
    widget_paths = WIDGET_PATHS

    name = _text()
    symbol = _text(help_text="Ticker, e.g. AAPL")
    capital = _number("0.01", label="Capital ($)", help_text=CAPITAL_HELP)
    timeframe = _text(widget=forms.Select(choices=Timeframe.choices), initial=Timeframe.MIN_5)
    stop_loss_pct = _number("0.01", label="Stop-loss (%)")
    take_profit_pct = _number("0.01", label="Take-profit (%)")
    allow_fractional = forms.BooleanField(
        required=False,
        label="Buy fractional shares",
        help_text="Only where the broker allows fractional trading of the symbol.",
    )
    buy_rule = _text(widget=forms.Select(choices=RULE_CHOICES))
    sell_rule = _text(widget=forms.Select(choices=RULE_CHOICES))

    def __init__(self, *args, validate_url: str | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields.update(_indicator_fields())
        self.settings: BotSettings | None = None
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
        """The widgets' values: a new bot's defaults, or the bot's settings as stored."""
        settings = bot.settings_input() if bot else {"strategy": default_strategy()}
        try:
            strategy = StrategyConfig.model_validate(settings["strategy"])
            settings["strategy"] = strategy.model_dump(mode="json")
        except ValidationError:
            pass  # shown as stored, so that the user sees what to fix
        defaults = {"strategy": {"indicators": IndicatorSet().model_dump(mode="json")}}
        return {**_widget_values(defaults), **_widget_values(settings)}

    def clean(self):
        cleaned = super().clean()
        try:
            self.settings = self.settings_model.model_validate(
                _settings_input(cleaned, self.widget_paths)
            )
        except ValidationError as error:
            widget_for_path = {path: widget for widget, path in self.widget_paths.items()}
            for path, messages in validation_errors(error, root=self.settings_model).items():
                for message in messages:
                    # What no widget shows (e.g. "enable at least one indicator") is the form's.
                    self.add_error(widget_for_path.get(path), message)
        return cleaned

    def bot_data(self) -> dict:
        """The model fields, for the services (after is_valid())."""
        return self.settings.bot_fields()

    def indicator_groups(self):
        """The strategy fields grouped per indicator, for the template."""
        return [
            {
                "key": key,
                "name": indicator.annotation.label,
                "enabled": self[f"{key}_enabled"],
                "params": [
                    self[f"{key}_{param}"]
                    for param in indicator.annotation.model_fields
                    if param != "enabled"
                ],
            }
            for key, indicator in IndicatorSet.model_fields.items()
        ]


def _settings_input(cleaned: dict, widget_paths: dict[str, str]) -> dict:
    """The nested input of BotSettings from the widgets; a blank widget is left out, so the
    schema's default applies (for stop-loss and take-profit: none)."""
    data: dict = {}
    for widget, path in widget_paths.items():
        value = cleaned.get(widget)
        if value is None or value == "":
            continue
        *parents, last = path.split(".")
        node = data
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return data


def _widget_values(data: dict) -> dict:
    """The inverse: each widget's value found in nested settings (absent ones left out)."""
    values = {}
    for widget, path in WIDGET_PATHS.items():
        node = data
        for part in path.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if node is not None:
            values[widget] = node
    return values
