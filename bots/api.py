"""JSON API for bots; the same service functions as the pages."""

import json

from django.http import HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404

from tradebots.api import api_methods, json_error

from . import services
from .forms import BOT_FIELDS, BotForm
from .models import Bot
from .strategy import INDICATOR_NAMES, Strategy

LIFECYCLE = {"start": services.start_bot, "pause": services.pause_bot, "stop": services.stop_bot}


def _two_places(value) -> str | None:
    # As stored (2 decimal places), whether the bot was just built or read back.
    return None if value is None else f"{value:.2f}"


def bot_json(bot: Bot) -> dict:
    return {
        "id": str(bot.pk),
        "name": bot.name,
        "symbol": bot.symbol,
        "capital": _two_places(bot.capital),
        "timeframe": bot.timeframe,
        "status": bot.status,
        "last_error": bot.last_error,
        "strategy": bot.strategy,
        "stop_loss_pct": _two_places(bot.stop_loss_pct),
        "take_profit_pct": _two_places(bot.take_profit_pct),
        "allow_fractional": bot.allow_fractional,
        "realized_gains": _two_places(bot.realized_gains),
        "created_at": bot.created_at.isoformat(),
        "updated_at": bot.updated_at.isoformat(),
    }


class BadRequest(Exception):
    pass


def _payload(request) -> dict:
    try:
        payload = json.loads(request.body or b"{}")
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise BadRequest("Request body must be JSON") from None
    if not isinstance(payload, dict):
        raise BadRequest("Request body must be a JSON object")
    return payload


def _form_data(payload: dict, bot: Bot | None) -> dict:
    """The flat form fields from the API's nested shape; on update, omitted fields keep their
    current values."""
    data = dict(BotForm.initial_for(bot)) if bot else {}
    data.update({name: payload[name] for name in BOT_FIELDS if name in payload})
    strategy = payload.get("strategy")
    if strategy is not None:
        if not isinstance(strategy, dict):
            raise BadRequest("strategy must be an object")
        if bot is None:
            data.update(Strategy(buy_rule="", sell_rule="").to_flat())
        for key, params in (strategy.get("indicators") or {}).items():
            if key not in INDICATOR_NAMES or not isinstance(params, dict):
                raise BadRequest(f"Unknown indicator {key!r}")
            data.update({f"{key}_{param}": value for param, value in params.items()})
        data.update(
            {rule: strategy[rule] for rule in ("buy_rule", "sell_rule") if rule in strategy}
        )
    # Unchecked boxes are absent from a form post; the API says false.
    return {name: value for name, value in data.items() if value not in (False, None)}


def _save(request, bot: Bot | None):
    try:
        form = BotForm(_form_data(_payload(request), bot))
    except BadRequest as error:
        return json_error(str(error), 400)
    if not form.is_valid():
        fields = {name: " ".join(errors) for name, errors in form.errors.items()}
        return json_error("Invalid bot", 400, fields=fields)
    actor = request.user.get_username()
    try:
        if bot is None:
            bot = services.create_bot(form.bot_data(), actor)
            return JsonResponse(bot_json(bot), status=201)
        return JsonResponse(bot_json(services.update_bot(bot, form.bot_data(), actor)))
    except services.BrokerUnreachable as error:
        return json_error(error.message, 503, fields=error.fields)
    except services.BotExposed as error:
        # The request is well formed; the bot's state (a position, an open order) conflicts.
        return json_error(error.message, 409, fields=error.fields)
    except services.BotError as error:
        return json_error(error.message, 400, fields=error.fields)


@api_methods("GET", "POST")
def bots(request):
    if request.method == "POST":
        return _save(request, None)
    return JsonResponse({"bots": [bot_json(bot) for bot in Bot.objects.with_figures()]})


@api_methods("GET", "PUT", "DELETE")
def bot(request, pk):
    bot = get_object_or_404(Bot.objects.with_figures(), pk=pk)
    if request.method == "PUT":
        return _save(request, bot)
    if request.method == "DELETE":
        try:
            services.delete_bot(bot, request.user.get_username())
        except services.BotError as error:
            return json_error(error.message, 409)
        return HttpResponse(status=204)
    return JsonResponse(bot_json(bot))


@api_methods("POST")
def bot_lifecycle(request, pk, action):
    bot = get_object_or_404(Bot, pk=pk)
    try:
        bot = LIFECYCLE[action](bot, request.user.get_username())
    except services.BrokerUnreachable as error:
        return json_error(error.message, 503)
    except services.BotError as error:
        return json_error(error.message, 409)
    return JsonResponse(bot_json(bot))
