"""The JSON API under /api/: one django-ninja ``NinjaAPI``; each app contributes a ``Router`` (its
api.py), mounted in tradebots/api_urls.py. What every endpoint shares lives here.

- Auth: ``Authorization: Bearer <token>`` (accounts.tokens) or the logged-in session, with the
  CSRF token on unsafe methods. Anonymous: 401. Operations that change something use
  ``auth=TRADERS``: a user without the trade permission gets 403.
- Errors: every 4xx (validation, auth, 404, 405, 413, refusals) is
  ``{"error": "<readable message>", "fields": {"<field>": ["message", ...]}}``.
- Request bodies are strict JSON (``StrictJsonParser``); money goes out as plain decimal strings
  (tradebots.money.Money); lists are keyset-paginated (tradebots.pagination).
"""

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from functools import wraps
from typing import Annotated, Any

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import RequestDataTooBig
from django.http import Http404, HttpResponseNotAllowed, JsonResponse
from django.utils import timezone
from ninja import Field, NinjaAPI, Schema
from ninja.errors import AuthenticationError, HttpError, ValidationError
from ninja.openapi.docs import Swagger
from ninja.openapi.views import openapi_view
from ninja.parser import Parser
from ninja.security import HttpBearer, SessionAuth
from ninja.utils import check_csrf
from pydantic import AfterValidator

from accounts.tokens import user_for_token

from .permissions import REFUSED_MESSAGE, can_trade

API_PREFIX = "/api/"
AUTHENTICATION_REQUIRED = "Authentication required"
CSRF_MESSAGE = (
    "CSRF check failed: a session request that changes something must send the X-CSRFToken "
    "header (the csrftoken cookie's value); scripts should use a Bearer token instead."
)
# Request bodies are small documents; anything beyond these is refused before it reaches pydantic.
MAX_JSON_DEPTH = 32
MAX_NUMBER_DIGITS = 100


def is_api_request(request) -> bool:
    return request.path.startswith(API_PREFIX)


def json_error(message: str, status: int, fields: Mapping[str, Any] | None = None) -> JsonResponse:
    return JsonResponse({"error": message, "fields": field_messages(fields)}, status=status)


def field_messages(fields: Mapping[str, Any] | None) -> dict[str, list[str]]:
    """Each field's messages as a list, whether given one message or several."""
    return {
        name: [messages] if isinstance(messages, str) else list(messages)
        for name, messages in (fields or {}).items()
    }


def api_not_found(request, exception=None):
    return json_error("Not found", 404)


def api_server_error(request):
    return json_error("Internal server error", 500)


def request_too_large() -> JsonResponse:
    return json_error(
        f"Request body too large: at most {settings.DATA_UPLOAD_MAX_MEMORY_SIZE:,} bytes.", 413
    )


def json_object(value: Any) -> dict:
    """A request body that must be a JSON object (validated further by the view's schema)."""
    if not isinstance(value, dict):
        raise ValueError("The request body must be a JSON object.")
    return value


class ApiError(HttpError):
    """Refuse a request: the status, a readable message and, where fields are at fault, theirs."""

    def __init__(self, status: int, message: str, fields: Mapping[str, Any] | None = None):
        super().__init__(status, message)
        self.fields = field_messages(fields)


class ErrorOut(Schema):
    error: str = Field(description="What went wrong, in words for people.")
    fields: dict[str, list[str]] = Field(
        default_factory=dict,
        description="The fields at fault (dotted paths into the body, or parameter names), "
        "each with its messages; empty when no single field is at fault.",
    )


def responses(success: Mapping[int, Any], *errors: int) -> dict[int, Any]:
    """An operation's documented answers: ``success`` plus ErrorOut for 400 (bad input) and
    401 (not logged in), which any operation may give, and for ``errors``."""
    return {**success, **{status: ErrorOut for status in sorted({400, 401, *errors})}}


# Authorization for unsafe requests: documented 403 for the role and 413 for the body size.
MUTATION_ERRORS = (403, 413)


def in_utc(moment: datetime) -> datetime:
    """``moment`` in UTC, read in the server's time zone when naive; ValueError when it has no
    UTC equivalent (the database stores UTC, so it could not be compared)."""
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment)
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise ValueError("Must fall between the years 1 and 9999 in UTC.") from None


# A time parameter: ISO 8601, in the server's time zone (TIME_ZONE) when it has no offset.
Moment = Annotated[datetime, AfterValidator(in_utc)]


# --- authentication ----------------------------------------------------------------------------


def _permitted(user, trade: bool):
    if trade and not can_trade(user):
        raise ApiError(403, REFUSED_MESSAGE)
    return user


class BearerToken(HttpBearer):
    """``Authorization: Bearer <token>`` from ``manage.py create_api_token``. A token carries no
    cookie that a forged cross-site request could ride on, so it needs no CSRF token; a wrong one
    is refused outright rather than falling back to the session."""

    def __init__(self, *, trade: bool = False):
        self.trade = trade
        super().__init__()

    def authenticate(self, request, token):
        user = user_for_token(token.strip())
        if user is None:
            raise ApiError(401, "Invalid API token")
        request.user = user
        return _permitted(user, self.trade)


class SessionCookie(SessionAuth):
    """The logged-in browser session (the pages' and /api/docs'). Unsafe methods need the CSRF
    token; an anonymous request is a 401 before any CSRF question."""

    def __init__(self, *, trade: bool = False):
        self.trade = trade
        super().__init__(csrf=True)

    def __call__(self, request):
        if not request.user.is_authenticated:
            return None
        if not getattr(request, "_ninja_csrf_exempt", False) and check_csrf(request):
            raise ApiError(403, CSRF_MESSAGE)
        return _permitted(request.user, self.trade)


ANYONE_LOGGED_IN = [BearerToken(), SessionCookie()]
TRADERS = [BearerToken(trade=True), SessionCookie(trade=True)]


# --- request bodies ----------------------------------------------------------------------------


class InvalidJson(Exception):
    """A request body refused before validation; with ``field``, a value at that path."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.message = "Invalid request body" if field else message
        self.fields = {field: [message]} if field else {}


def _bounded_number(parse):
    def parse_bounded(text: str):
        if len(text) > MAX_NUMBER_DIGITS:
            raise InvalidJson(
                f"Numbers in the request body are limited to {MAX_NUMBER_DIGITS} digits."
            )
        return parse(text)

    return parse_bounded


def _refuse_constant(name: str):
    raise InvalidJson(f"{name} is not a JSON value.")


def _field_path(path: tuple) -> str | None:
    return ".".join(str(part) for part in path) or None


def _check_document(document) -> None:
    """Every string is storable text (no lone surrogate such as "\\ud800", which no database
    can store, no NUL, which PostgreSQL refuses) and the nesting stays shallow."""
    pending: list[tuple[Any, tuple, int]] = [(document, (), 0)]
    while pending:
        value, path, depth = pending.pop()
        if depth > MAX_JSON_DEPTH:
            raise InvalidJson(f"The request body is nested deeper than {MAX_JSON_DEPTH} levels.")
        if isinstance(value, dict):
            for key, item in value.items():
                _check_text(key, path)
                pending.append((item, (*path, key), depth + 1))
        elif isinstance(value, list):
            pending.extend((item, (*path, index), depth + 1) for index, item in enumerate(value))
        elif isinstance(value, str):
            _check_text(value, path)


def _check_text(text: str, path: tuple) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidJson(
            "Text must be valid Unicode; a lone surrogate escape such as \\ud800 is not.",
            _field_path(path),
        ) from None
    if "\x00" in text:
        raise InvalidJson("Text must not contain NUL characters.", _field_path(path))


class StrictJsonParser(Parser):
    """JSON as RFC 8259 has it, kept exact and small: numbers become int or Decimal (never
    float), NaN/Infinity are refused, and so are over-long numbers, deep nesting and text that
    cannot be stored. Every refusal is a 400 with its reason (see ``_http_error``)."""

    def parse_body(self, request):
        try:
            return self.parse_json(request.body)
        except RecursionError:
            raise InvalidJson(
                f"The request body is nested deeper than {MAX_JSON_DEPTH} levels."
            ) from None

    @staticmethod
    def parse_json(body: bytes):
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidJson("The request body must be JSON encoded as UTF-8.") from None
        try:
            document = json.loads(
                text,
                parse_int=_bounded_number(int),
                parse_float=_bounded_number(Decimal),
                parse_constant=_refuse_constant,
            )
        except json.JSONDecodeError as error:
            raise InvalidJson(f"The request body is not valid JSON: {error}.") from None
        _check_document(document)
        return document


# --- errors ------------------------------------------------------------------------------------


def _location(error: dict) -> tuple[str, str | None]:
    """(where: body / query / path, the field's dotted path or None) of a ninja error."""
    loc = list(error.get("loc") or ())
    source = str(loc[0]) if loc else "body"
    # A body's loc starts with the view's parameter name ("payload"), not part of the document.
    inside = loc[2:] if source == "body" else loc[1:]
    return source, _field_path(tuple(inside))


def _message(error: dict) -> str:
    message = str(error.get("msg") or error)
    # pydantic prefixes the messages of our own validators; the prefix says nothing to a client.
    return message.removeprefix("Value error, ")


def _validation_error(request, exc: ValidationError):
    fields: dict[str, list[str]] = {}
    general: list[str] = []
    sources = set()
    for error in exc.errors:
        source, field = _location(error)
        sources.add(source)
        if field is None and source == "body" and error.get("type") == "missing":
            general.append("A JSON body is required.")
        elif field is None:
            general.append(_message(error))
        else:
            fields.setdefault(field, []).append(_message(error))
    message = "Invalid request body" if "body" in sources else "Invalid parameters"
    if general:
        message = f"{message}: {' '.join(general)}"
    return json_error(message, 400, fields)


def _http_error(request, exc: HttpError):
    cause = exc.__cause__
    if isinstance(cause, InvalidJson):  # ninja wraps every body parse error as "cannot parse"
        return json_error(cause.message, 400, cause.fields)
    message = exc.message
    if type(exc) is AuthenticationError:  # ninja's own: no auth callback accepted the request
        message = AUTHENTICATION_REQUIRED
    return json_error(message, exc.status_code, getattr(exc, "fields", None))


def _not_found(request, exc):
    return api_not_found(request)


def _too_large(request, exc):
    return request_too_large()


# --- the API -----------------------------------------------------------------------------------


def _docs_login_required(view):
    """The schema and its docs page are for logged-in users (the session): the page sends an
    anonymous visitor to the login page, the schema answers 401 like the rest of the API."""
    is_page = getattr(view, "func", None) is openapi_view

    @wraps(view)
    def logged_in_only(request, *args, **kwargs):
        if request.user.is_authenticated:
            return view(request, *args, **kwargs)
        if is_page:
            return redirect_to_login(request.get_full_path())
        return json_error(AUTHENTICATION_REQUIRED, 401)

    return logged_in_only


api = NinjaAPI(
    title="TradeBots API",
    version="1",
    description=(
        "Bots, trades, positions, the account and reconciliation. Log in with the session (the "
        "pages') or send `Authorization: Bearer <token>` (`manage.py create_api_token`). Every "
        '4xx answers `{"error": ..., "fields": {...}}`; money and quantities are decimal '
        "strings; lists are paginated with `limit` and an opaque `cursor` (the `next` of the "
        "page before)."
    ),
    urls_namespace="api",
    auth=ANYONE_LOGGED_IN,
    parser=StrictJsonParser(),
    docs=Swagger(settings={"persistAuthorization": False}),
    docs_decorator=_docs_login_required,
)
api.add_exception_handler(ValidationError, _validation_error)
api.add_exception_handler(HttpError, _http_error)
api.add_exception_handler(Http404, _not_found)
api.add_exception_handler(RequestDataTooBig, _too_large)


def answer_in_json(view):
    """ninja answers a method the path does not have with a plain-text 405: say it in JSON."""

    @wraps(view)
    def json_method_not_allowed(request, *args, **kwargs):
        response = view(request, *args, **kwargs)
        if isinstance(response, HttpResponseNotAllowed):
            allowed = ", ".join(sorted(method.strip() for method in response["Allow"].split(",")))
            answer = json_error(f"Method {request.method} not allowed; use {allowed}", 405)
            answer["Allow"] = allowed
            return answer
        return response

    return json_method_not_allowed
