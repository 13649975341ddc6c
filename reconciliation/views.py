"""Reconciliation pages: the history of runs, one run's report, and "Check Sync" (the dashboard
panel's button and the history page's)."""

from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from . import services
from .models import ReconciliationRun

RUNS_PER_PAGE = 50


@require_GET
def run_list(request):
    page = Paginator(
        ReconciliationRun.objects.defer("discrepancies", "external_orders", "unmanaged_holdings"),
        RUNS_PER_PAGE,
    )
    runs = page.get_page(request.GET.get("page"))
    return render(request, "reconciliation/runs.html", {"runs": runs})


@require_GET
def run_detail(request, pk):
    run = get_object_or_404(ReconciliationRun, pk=pk)
    return render(request, "reconciliation/run_detail.html", {"run": run})


@require_POST
def check(request):
    run = services.reconcile(
        trigger=ReconciliationRun.Trigger.MANUAL, started_by=request.user.get_username()
    )
    if request.htmx:
        return render(request, "reconciliation/partials/check_result.html", {"run": run})
    return redirect("reconciliation:run", pk=run.pk)
