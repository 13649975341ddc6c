from django import forms
from django.utils import timezone

from .services import MAX_LIMIT


class ReconcileForm(forms.Form):
    """What a reconciliation may be asked for: how many closed orders back, and/or since when.
    Parses the API's query string and the command's options alike."""

    limit = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=MAX_LIMIT,
        error_messages={"invalid": "Enter a whole number."},
    )
    since = forms.DateTimeField(
        required=False,
        error_messages={"invalid": "Enter an ISO 8601 date or date-time, e.g. 2025-01-31T14:00Z."},
    )

    def clean_since(self):
        since = self.cleaned_data["since"]
        if since is not None and since >= timezone.now():
            raise forms.ValidationError("Must be in the past.")
        return since

    def first_error(self) -> tuple[str, str]:
        """(field, message) of the first problem, for one-line answers."""
        name, errors = next(iter(self.errors.items()))
        return name, errors[0]
