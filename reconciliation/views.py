"""Reconciliation pages: the history of runs, one run's report, and "Check Sync" (the dashboard
panel's button and the history page's form, which may narrow the window)."""

from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_GET, require_POST

from tradebots.permissions import trade_required

from . import services
from .forms import ReconcileForm
from .models import ReconciliationRun

RUNS_PER_PAGE = 50
DISCREPANCIES_PER_PAGE = 100
DISCREPANCIES_ID = "discrepancies"


def _runs_page(request, check_form: ReconcileForm):
    page = Paginator(
        ReconciliationRun.objects.defer(*ReconciliationRun.LISTS),
        RUNS_PER_PAGE,
    )
    runs = page.get_page(request.GET.get("page"))
    # A run that ends while the page is open goes on top of the first page only.
    context = {"runs": runs, "check_form": check_form, "newest_runs": runs.number == 1}
    return render(request, "reconciliation/runs.html", context)


@require_GET
def run_list(request):
    return _runs_page(request, ReconcileForm())


@require_GET
def run_detail(request, pk):
    """A run's report, its discrepancies a page at a time (``page``): a run may hold thousands."""
    run = get_object_or_404(ReconciliationRun, pk=pk)
    discrepancies = Paginator(run.discrepancies, DISCREPANCIES_PER_PAGE).get_page(
        request.GET.get("page")
    )
    context = {"run": run, "discrepancies": discrepancies}
    if request.htmx and not request.htmx.boosted and request.htmx.target == DISCREPANCIES_ID:
        response = render(request, "reconciliation/run_detail.html#discrepancies", context)
    else:
        response = render(request, "reconciliation/run_detail.html", context)
    patch_vary_headers(response, ["HX-Request", "HX-Target"])
    return response


@require_POST
@trade_required
def check(request):
    form = ReconcileForm(request.POST)
    if not form.is_valid():  # shown like any form's errors; nothing was run
        if request.htmx:
            return render(request, "reconciliation/partials/check_invalid.html", {"form": form})
        return _runs_page(request, form)
    run = services.reconcile(
        trigger=ReconciliationRun.Trigger.MANUAL,
        started_by=request.user.get_username(),
        limit=form.cleaned_data["limit"],
        since=form.cleaned_data["since"],
    )
    if request.htmx:
        return render(request, "reconciliation/partials/check_result.html", {"run": run})
    return redirect("reconciliation:run", pk=run.pk)
