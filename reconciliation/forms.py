from django import forms

from tradebots.forms import form_error_lines

from . import services


class ReconcileForm(forms.Form):
    """What a reconciliation may be asked for: how many closed orders back, and/or since when.
    Parses the API's query string, the command's options and the page's form alike."""

    limit = forms.IntegerField(
        label="Closed orders back",
        required=False,
        min_value=1,
        max_value=services.MAX_LIMIT,
        error_messages={"invalid": "Enter a whole number."},
        help_text=f"Default {services.DEFAULT_LIMIT}; with Since, all since then.",
    )
    since = forms.CharField(
        label="Since",
        required=False,
        widget=forms.TextInput(attrs={"placeholder": "2025-01-31T14:00Z"}),
        help_text="An ISO 8601 date or date-time; default: no bound.",
    )

    def clean_since(self):
        return services.parse_since(self.cleaned_data["since"])

    def first_error(self) -> tuple[str, str]:
        """(field, message) of the first field at fault, for one-line answers."""
        return next(iter(form_error_lines(self).items()))
