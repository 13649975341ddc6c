"""What the Django forms of every app share."""

from django import forms


def form_error_lines(form: forms.Form) -> dict[str, str]:
    """Each field at fault with its messages as one line, for inline errors and one-line
    answers (the JSON API gives the lists themselves: ApiError(400, ..., form.errors))."""
    return {name: " ".join(messages) for name, messages in form.errors.items()}
