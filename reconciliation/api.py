"""JSON API for reconciliation: run one, and the stored runs with everything they found."""

from django.shortcuts import get_object_or_404
from ninja import Field, Query, Router, Schema
from ninja.pagination import paginate

from tradebots.api import TRADERS, ApiError, responses
from tradebots.pagination import KeysetPagination

from . import services
from .forms import ReconcileForm
from .models import ReconciliationRun
from .schemas import RunOut, RunSummaryOut

router = Router(tags=["reconciliation"])


class ReconcileParams(Schema):
    limit: int | None = Field(
        None,
        ge=1,
        le=services.MAX_LIMIT,
        description=f"Closed broker orders to compare, newest first (default "
        f"{services.DEFAULT_LIMIT}; with `since`, up to {services.MAX_LIMIT}).",
    )
    # Read by services.parse_since, as the command and the page read it.
    since: str | None = Field(
        None,
        max_length=64,
        description="Only orders after this time: an ISO 8601 date or date-time (the server's "
        "time zone, TIME_ZONE, when it has no offset), from 1970-01-01 up to now.",
        examples=["2025-01-31T14:00Z"],
    )


@router.get("/account/reconcile", auth=TRADERS, response=responses({200: RunOut}, 403, 503))
def reconcile(request, params: Query[ReconcileParams]):
    """Run a reconciliation now and answer its report. It changes no trade or position; the run
    is stored in the history like every other. 503 when the broker cannot be reached."""
    form = ReconcileForm({"limit": params.limit, "since": params.since})
    if not form.is_valid():
        raise ApiError(400, "Invalid parameters", form.errors)
    run = services.reconcile(
        trigger=ReconciliationRun.Trigger.API,
        started_by=request.user.get_username(),
        limit=form.cleaned_data["limit"],
        since=form.cleaned_data["since"],
    )
    if run.failed:
        raise ApiError(503, run.error)
    return run


@router.get("/reconciliation/runs", response=responses({200: list[RunSummaryOut]}))
@paginate(KeysetPagination, ordering=("-started_at", "-id"))
def list_runs(request):
    """Every stored run, newest first, without its lists (see a run for those)."""
    return ReconciliationRun.objects.defer(*ReconciliationRun.LISTS)


@router.get("/reconciliation/runs/{int:run_id}", response=responses({200: RunOut}, 404))
def get_run(request, run_id: int):
    """A run with every discrepancy, external order and unmanaged holding it found."""
    return get_object_or_404(ReconciliationRun, pk=run_id)
