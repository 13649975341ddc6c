"""GET /api/account/reconcile: a reconciliation report as JSON. Read-only as far as the books
go: it changes no Trade (the run is recorded in the history like every other)."""

from django.http import JsonResponse

from tradebots.api import api_methods, json_error

from . import services
from .forms import ReconcileForm
from .models import ReconciliationRun


@api_methods("GET")
def reconcile(request):
    form = ReconcileForm(request.GET)
    if not form.is_valid():
        fields = {name: " ".join(errors) for name, errors in form.errors.items()}
        return json_error("Invalid parameters", 400, fields=fields)
    run = services.reconcile(
        trigger=ReconciliationRun.Trigger.API,
        started_by=request.user.get_username(),
        limit=form.cleaned_data["limit"],
        since=form.cleaned_data["since"],
    )
    if run.failed:
        return json_error(run.error, 503)
    return JsonResponse(services.report(run))
