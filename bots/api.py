"""JSON API for bots; the same service functions as the pages."""

import json

from django.http import HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404
from pydantic import ValidationError

from tradebots.api import api_methods, json_error

from . import services
from .models import Bot
from .schema import BotSettings, validation_errors

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


def _save(request, bot: Bot | None):
    try:
        payload = _payload(request)
    except BadRequest as error:
        return json_error(str(error), 400)
    # On update, the fields sent replace the stored ones (the strategy as a whole).
    given = {**bot.settings_input(), **payload} if bot else payload
    try:
        settings = BotSettings.model_validate(given)
    except ValidationError as error:
        fields = {path: " ".join(messages) for path, messages in validation_errors(error).items()}
        return json_error("Invalid bot", 400, fields=fields)
    actor = request.user.get_username()
    try:
        if bot is None:
            bot = services.create_bot(settings.bot_fields(), actor)
            return JsonResponse(bot_json(bot), status=201)
        return JsonResponse(bot_json(services.update_bot(bot, settings.bot_fields(), actor)))
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
