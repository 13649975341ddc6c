from uuid import UUID

from django.conf import settings
from django.contrib import messages
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from bots.models import Bot
from bots.services import BotError
from tradebots.pagination import InvalidCursor, Keyset
from tradebots.permissions import trade_required

from . import optimisation, pages, services
from .forms import BacktestForm, OptimisationForm
from .models import Backtest, Optimisation

BACKTESTS_PER_PAGE = 50
BACKTESTS_PAGE_ID = "backtests-page"
BACKTESTS_KEYSET = Keyset(("-created_at", "-id"))
RESULTS_ID = "backtest-results"
TRADES_ID = "backtest-trades"
PRICE_CHART_ID = "backtest-price-chart"
PROGRESS_ID = "backtest-progress"
MAX_COMPARED = 6
RECENT_GRIDS = 10


@require_GET
def backtest_list(request):
    cursor = request.GET.get("cursor") or None
    backtests = (
        Backtest.objects.filter(optimisation=None)
        .select_related("bot")
        .defer("equity", "drawdown", "strategy")
    )
    try:
        shown, more = BACKTESTS_KEYSET.page(backtests, cursor, BACKTESTS_PER_PAGE)
    except InvalidCursor:
        cursor = None
        shown, more = BACKTESTS_KEYSET.page(backtests, None, BACKTESTS_PER_PAGE)
    context = {"backtests": shown, "first_page": cursor is None, "next_cursor": more}
    if request.htmx and not request.htmx.boosted and request.htmx.target == BACKTESTS_PAGE_ID:
        response = render(request, "backtests/list.html#backtests-page", context)
    else:
        recent_grids = Optimisation.objects.all()[:RECENT_GRIDS]
        response = render(
            request, "backtests/list.html", {**context, "optimisations": recent_grids}
        )
    patch_vary_headers(response, ["HX-Request", "HX-Target"])
    return response


def _uuid(value) -> UUID | None:
    try:
        return UUID(str(value))
    except ValueError:
        return None


def _bot_from_query(request) -> Bot | None:
    bot_id = request.GET.get("bot") or request.POST.get("bot")
    if not bot_id:
        return None
    bot = Bot.objects.filter(pk=_uuid(bot_id)).first() if _uuid(bot_id) else None
    if bot is None:
        raise Http404("No such bot.")
    return bot


@require_http_methods(["GET", "POST"])
@trade_required
def backtest_new(request):
    """Backtest a configuration: a bot's (``?bot=<id>``, "Backtest this bot") or a new one."""
    bot = _bot_from_query(request)
    if request.method == "POST":
        form = BacktestForm(request.POST)
        if form.is_valid():
            try:
                backtest = services.request_backtest(form.settings, request.user, bot)
            except services.BacktestRefused as refused:
                for field, message in refused.fields.items() or [(None, refused.message)]:
                    form.add_error(field if field in form.fields else None, message)
            else:
                return redirect("backtests:detail", backtest.pk)
        status = 400
    else:
        form = BacktestForm(initial=BacktestForm.initial_for(bot))
        status = 200
    context = {"form": form, "bot": bot, "slippage_bps": settings.PAPER_SLIPPAGE_BPS}
    return render(request, "backtests/form.html", context, status=status)


@require_GET
def backtest_detail(request, pk):
    backtest = get_object_or_404(Backtest.objects.select_related("bot"), pk=pk)
    target = request.htmx.target if request.htmx and not request.htmx.boosted else None
    if target == TRADES_ID:
        context = {"backtest": backtest, **pages.trades_page(backtest, request.GET.get("after"))}
        return _htmx(render(request, "backtests/detail.html#trades", context))
    if target == PRICE_CHART_ID:
        context = {"backtest": backtest, **pages.price_chart(backtest, request.GET.get("trade"))}
        return _htmx(render(request, "backtests/detail.html#price-chart", context))
    if target == PROGRESS_ID:
        context = {"backtest": backtest, "swapped": True}
        return _htmx(render(request, "backtests/detail.html#progress", context))
    context = {"backtest": backtest, "live_group": services.backtest_group(backtest.pk)}
    if backtest.status == Backtest.Status.DONE:
        context.update(pages.results(backtest, request.GET.get("after"), request.GET.get("trade")))
    if target == RESULTS_ID:
        return _htmx(render(request, "backtests/detail.html#results", context))
    return _htmx(render(request, "backtests/detail.html", context))


def _htmx(response):
    patch_vary_headers(response, ["HX-Request", "HX-Target"])
    return response


@require_GET
def backtest_compare(request):
    ids = [uuid for value in request.GET.getlist("id") if (uuid := _uuid(value))][:MAX_COMPARED]
    backtests = list(Backtest.objects.filter(pk__in=ids, status=Backtest.Status.DONE))
    backtests.sort(key=lambda backtest: ids.index(backtest.pk))
    return render(request, "backtests/compare.html", pages.comparison(backtests))


@require_POST
@trade_required
def create_bot(request, pk):
    backtest = get_object_or_404(Backtest, pk=pk, status=Backtest.Status.DONE)
    name = (request.POST.get("name") or "").strip() or backtest.name
    try:
        bot = services.create_bot_from(backtest, name, request.user.get_username())
    except BotError as error:
        messages.error(request, f"No bot created: {error.message}")
        return redirect("backtests:detail", backtest.pk)
    except services.BacktestRefused as refused:
        messages.error(request, f"No bot created: {refused.message}")
        return redirect("backtests:detail", backtest.pk)
    messages.success(request, f"Created '{bot.name}' (stopped) with this configuration.")
    return redirect("bots:detail", bot.pk)


@require_POST
@trade_required
def apply_to_bot(request, pk):
    backtest = get_object_or_404(Backtest, pk=pk, status=Backtest.Status.DONE)
    bot_id = _uuid(request.POST.get("bot") or "")
    bot = Bot.objects.filter(pk=bot_id).first() if bot_id else None
    if bot is None:
        messages.error(request, "Choose a bot to apply the configuration to.")
        return redirect("backtests:detail", backtest.pk)
    try:
        services.apply_to_bot(backtest, bot, request.user.get_username())
    except (BotError, services.BacktestRefused) as error:
        messages.error(request, f"'{bot.name}' was not changed: {error.message}")
        return redirect("backtests:detail", backtest.pk)
    messages.success(request, f"Applied this configuration to '{bot.name}'.")
    return redirect("bots:detail", bot.pk)


@require_http_methods(["GET", "POST"])
@trade_required
def optimisation_new(request):
    bot = _bot_from_query(request)
    if request.method == "POST":
        form = OptimisationForm(request.POST)
        if form.is_valid():
            grid_request = optimisation.GridRequest(
                base=form.settings,
                grid=form.grid_values,
                metric=form.cleaned_data["metric"],
                in_sample_pct=form.cleaned_data["in_sample_pct"],
            )
            try:
                run = optimisation.request_optimisation(grid_request, request.user, bot)
            except optimisation.GridInvalid as invalid:
                form.add_error("grid", str(invalid))
            else:
                return redirect("backtests:optimisation", run.pk)
        status = 400
    else:
        form = OptimisationForm(initial=OptimisationForm.initial_for(bot))
        status = 200
    context = {"form": form, "bot": bot, "slippage_bps": settings.PAPER_SLIPPAGE_BPS}
    return render(request, "backtests/optimisation_form.html", context, status=status)


@require_POST
@trade_required
def optimisation_count(request):
    """How many combinations the form as filled in would run (htmx, as the grid is typed)."""
    form = OptimisationForm(request.POST)
    form.is_valid()
    return render(request, "backtests/optimisation_form.html#combination-count", {"form": form})


@require_GET
def optimisation_detail(request, pk):
    run = get_object_or_404(Optimisation.objects.select_related("bot"), pk=pk)
    target = request.htmx.target if request.htmx and not request.htmx.boosted else None
    if target == "optimisation-progress":
        context = {"optimisation": run, "swapped": True}
        return _htmx(render(request, "backtests/optimisation.html#progress", context))
    context = {
        "optimisation": run,
        "live_group": optimisation.optimisation_group(run.pk),
        **pages.optimisation_results(run),
    }
    if target == "optimisation-results":
        return _htmx(render(request, "backtests/optimisation.html#results", context))
    return _htmx(render(request, "backtests/optimisation.html", context))
