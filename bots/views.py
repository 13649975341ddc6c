from django.contrib import messages
from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.cache import patch_vary_headers
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from pydantic import ValidationError

from tradebots import live
from tradebots.forms import form_error_lines
from tradebots.pagination import InvalidCursor, Keyset
from tradebots.permissions import trade_required

from . import charts, services
from .books import books
from .forms import BotForm
from .models import Bot
from .schema import (
    StrategyConfig,
    validate_setting,
    validation_errors,
)
from .strategy import describe_strategy

STATUS_HISTORY_LENGTH = 20
BOTS_PER_PAGE = 50
BOTS_PAGE_ID = "bots-page"
BOTS_KEYSET = Keyset(("name", "id"))


def _actor(request) -> str:
    return request.user.get_username()


def _capital_context(bot: Bot | None = None) -> dict:
    try:
        return {"capital": services.capital_summary(bot.pk if bot else None)}
    except services.BrokerUnreachable as error:
        return {"capital": None, "capital_error": error.message}


@require_GET
def bot_list(request):
    """The bots by name, a page of cards at a time (``cursor``: a keyset page, no OFFSET)."""
    cursor = request.GET.get("cursor") or None
    try:
        bots, more = BOTS_KEYSET.page(Bot.objects.with_figures(), cursor, BOTS_PER_PAGE)
    except InvalidCursor:
        cursor = None
        bots, more = BOTS_KEYSET.page(Bot.objects.with_figures(), None, BOTS_PER_PAGE)
    bots = services.with_latest_prices(bots)
    context = {"bots": bots, "first_page": cursor is None, "next_cursor": more}
    if request.htmx and not request.htmx.boosted and request.htmx.target == BOTS_PAGE_ID:
        response = render(request, "bots/list.html#bots-page", context)
    else:
        response = render(request, "bots/list.html", {**context, **_capital_context()})
    patch_vary_headers(response, ["HX-Request", "HX-Target"])
    return response


@require_GET
def bot_detail(request, pk):
    (bot,) = services.with_latest_prices([get_object_or_404(Bot.objects.with_figures(), pk=pk)])
    context = {
        "bot": bot,
        "history": bot.status_changes.all()[:STATUS_HISTORY_LENGTH],
        "live_group": live.bot_group(bot.pk),
        # Delete is offered only when it would be accepted; otherwise the page says why.
        "deletion_refusal": services.deletion_refusal(bot),
        "pnl_series": books().realized_pnl_series(bot.pk),
    }
    try:
        strategy = StrategyConfig.model_validate(bot.strategy)
    except ValidationError as error:
        # Stored before the schema checked every entry point (the admin did not): say what to
        # fix rather than fail.
        problems = [message for found in validation_errors(error).values() for message in found]
        context.update(strategy_problems=problems, chart_error="No chart: the strategy is invalid.")
        return render(request, "bots/detail.html", context)
    context.update(strategy=describe_strategy(strategy), **charts.price_chart(bot, strategy))
    return render(request, "bots/detail.html", context)


@require_http_methods(["GET", "POST"])
@trade_required
def bot_create(request):
    return _bot_form(request, None)


@require_http_methods(["GET", "POST"])
@trade_required
def bot_edit(request, pk):
    return _bot_form(request, get_object_or_404(Bot, pk=pk))


def _bot_form(request, bot: Bot | None):
    validate_url = (
        reverse("bots:validate-existing", args=[bot.pk]) if bot else reverse("bots:validate")
    )
    if request.method == "POST":
        form = BotForm(request.POST, validate_url=validate_url)
        if form.is_valid():
            try:
                if bot is None:
                    bot = services.create_bot(form.bot_data(), _actor(request))
                    messages.success(request, f"Bot '{bot.name}' created. Start it when ready.")
                else:
                    services.update_bot(bot, form.bot_data(), _actor(request))
                    messages.success(request, f"Bot '{bot.name}' saved.")
                return redirect("bots:detail", pk=bot.pk)
            except services.BotError as error:
                _add_service_errors(form, error)
    else:
        form = BotForm(initial=BotForm.initial_for(bot), validate_url=validate_url)
    return render(request, "bots/form.html", {"form": form, "bot": bot, **_capital_context(bot)})


def _add_service_errors(form: BotForm, error: services.BotError) -> None:
    if not error.fields:
        form.add_error(None, error.message)
    for field, message in error.fields.items():
        form.add_error(field if field in form.fields else None, message)


@require_POST
@trade_required
def validate_field(request, pk=None):
    """Inline validation of one field as the user leaves it: the same checks as on submit."""
    bot = get_object_or_404(Bot, pk=pk) if pk else None
    field = request.POST.get("_field", "")
    form = BotForm(request.POST)
    form.is_valid()
    errors = form_error_lines(form)
    typed = form.cleaned_data.get(field)
    if field in ("symbol", "timeframe", "capital") and field not in errors and typed:
        # Valid as typed (the other fields may not be yet): its value as the schema reads it.
        value = validate_setting(field, typed)
        errors.update(services.validate_bot_fields({field: value}, bot=bot))
    return render(
        request,
        "bots/partials/field_error.html",
        {"name": field, "message": errors.get(field, "")},
    )


def _next_or(request, default: str) -> str:
    """The form's ``next`` when it points into this site, else ``default``."""
    target = request.POST.get("next", "")
    if url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return default


@require_POST
@trade_required
def bot_action(request, pk, action):
    change_status = services.LIFECYCLE_ACTIONS.get(action)
    if change_status is None:
        raise Http404(f"No bot action {action!r}")
    bot = get_object_or_404(Bot, pk=pk)
    try:
        bot = change_status(bot, _actor(request))
        feedback = live.render_toast(f"Bot '{bot.name}' is {bot.get_status_display().lower()}.")
    except services.BotError as error:
        if not request.htmx:
            messages.error(request, error.message)
        feedback = live.render_toast(error.message, "error")
    if not request.htmx:
        return HttpResponseRedirect(_next_or(request, reverse("bots:detail", args=[bot.pk])))
    # Both out of band (the buttons' form swaps nothing itself): the card wherever the page
    # shows it, the toast in #toasts.
    (bot,) = services.with_latest_prices(Bot.objects.with_figures().filter(pk=bot.pk))
    html = render_to_string(services.BOT_CARD, {"bot": bot, "oob": True}, request=request)
    return HttpResponse(html + feedback)


@require_http_methods(["GET", "POST"])
@trade_required
def bot_delete(request, pk):
    bot = get_object_or_404(Bot, pk=pk)
    if request.method == "POST":
        try:
            services.delete_bot(bot, _actor(request))
        except services.BotError as error:
            messages.error(request, error.message)
            return redirect("bots:detail", pk=bot.pk)
        messages.success(request, f"Bot '{bot.name}' deleted.")
        return redirect("bots:list")
    return render(request, "bots/confirm_delete.html", {"bot": bot})
