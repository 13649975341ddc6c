"""Keyset pagination for every list of the JSON API, as a django-ninja pagination class.

A page is ``{"results": [...], "next": "<cursor>" | null}``; the client passes ``next`` back as
``cursor`` for the page after. The cursor is opaque to clients but is simply the last row's sort
key (its ordering field and primary key), so the next page is one indexed ``WHERE (key) <
(cursor)`` query: page 2,000 of 100,000 trades costs what page 1 costs, with no OFFSET, and rows
written meanwhile neither repeat nor go missing. (ninja's own CursorPagination positions by one
field and skips ties with OFFSET, takes the position from the cursor unchecked, so a forged
cursor reaches the database as an unparsed value, and answers with URLs.)

Lists that do not come from the database (what the broker holds) are paginated the same way in
memory, sorted by their key.
"""

import binascii
import json
from base64 import urlsafe_b64decode, urlsafe_b64encode
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from uuid import UUID

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Q, QuerySet
from ninja import Field, Schema
from ninja.pagination import PaginationBase

from .api import ApiError, in_utc

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
MAX_CURSOR_LENGTH = 500
INVALID_CURSOR = "Pass back the `next` value of the previous page unchanged."


class PageParams(Schema):
    limit: int = Field(
        DEFAULT_LIMIT, ge=1, le=MAX_LIMIT, description=f"Rows per page (at most {MAX_LIMIT})."
    )
    cursor: str | None = Field(
        None,
        max_length=MAX_CURSOR_LENGTH,
        description="Where to continue: the `next` of the previous page, unchanged.",
    )


class InvalidCursor(ValueError):
    """A cursor this module did not hand out (or not for this ordering)."""


@dataclass(frozen=True)
class Keyset:
    """An ordering to page by: the sort field and, unless that field is unique, a unique
    tie-breaker after it, all in the same direction, e.g. ("-created_at", "-id")."""

    ordering: tuple[str, ...]

    def __post_init__(self):
        directions = {field.startswith("-") for field in self.ordering}
        if len(self.ordering) not in (1, 2) or len(directions) != 1:
            raise ValueError("ordering: a field and maybe a tie-breaker, in the same direction")

    @property
    def descending(self) -> bool:
        return self.ordering[0].startswith("-")

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(field.lstrip("-") for field in self.ordering)

    def key(self, item) -> list:
        return [_key_value(getattr(item, name)) for name in self.fields]

    def cursor(self, item) -> str:
        """The cursor of the page after ``item``."""
        return _encode(self.key(item))

    def decode(self, cursor: str) -> list:
        """Raises InvalidCursor."""
        key = _decode(cursor)
        if len(key) != len(self.fields):
            raise InvalidCursor(cursor)
        return key

    def page(self, queryset: QuerySet, cursor: str | None, limit: int) -> tuple[list, str | None]:
        """The ``limit`` rows after ``cursor`` (from the top without one) in one query, and the
        cursor of the page after them (None on the last page). Raises InvalidCursor."""
        queryset = queryset.order_by(*self.ordering)
        if cursor:
            queryset = queryset.filter(self.beyond(queryset.model, self.decode(cursor)))
        rows = list(queryset[: limit + 1])
        more = len(rows) > limit
        rows = rows[:limit]
        return rows, (self.cursor(rows[-1]) if more else None)

    def beyond(self, model, key: list) -> Q:
        """The rows that come after ``key`` in this ordering: ``(a, b) < (x, y)`` spelled so
        that the database uses the (a, b) index."""
        beyond = "lt" if self.descending else "gt"
        values = [
            _python_value(model, name, raw) for name, raw in zip(self.fields, key, strict=True)
        ]
        field, value = self.fields[0], values[0]
        condition = Q(**{f"{field}__{beyond}": value})
        if len(values) == 2:
            condition |= Q(**{field: value, f"{self.fields[1]}__{beyond}": values[1]})
        return condition


def encode_cursor(item, fields: tuple[str, ...]) -> str:
    """The cursor that continues after ``item`` in an ordering by ``fields`` (either direction)."""
    return Keyset(tuple(fields)).cursor(item)


class KeysetPagination(PaginationBase):
    """``ordering``: see Keyset. ``rows`` turns a page of objects into what the response schema
    reads (e.g. positions valued at prices fetched for the page)."""

    Input = PageParams

    class Output(Schema):
        results: list[Any]
        next: str | None = Field(description="The cursor of the next page; null on the last page.")

    items_attribute = "results"

    def __init__(
        self,
        *,
        ordering: tuple[str, ...],
        rows: Callable[[list], list] | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.keyset = Keyset(tuple(ordering))
        self.rows = rows

    def paginate_queryset(self, items, pagination: PageParams, request, **params) -> dict:
        try:
            if isinstance(items, QuerySet):
                page, after = self.keyset.page(items, pagination.cursor, pagination.limit)
            else:
                page, after = self._memory_page(items, pagination.cursor, pagination.limit)
        except InvalidCursor:
            raise _invalid_cursor() from None
        return {"results": self.rows(page) if self.rows else page, "next": after}

    def _memory_page(
        self, items: Sequence, cursor: str | None, limit: int
    ) -> tuple[list, str | None]:
        keyset = self.keyset
        ordered = sorted(items, key=keyset.key, reverse=keyset.descending)
        if cursor:
            after = keyset.decode(cursor)
            try:
                ordered = [
                    item
                    for item in ordered
                    if (keyset.key(item) < after if keyset.descending else keyset.key(item) > after)
                ]
            except TypeError:  # the cursor's values are not of the key's types
                raise InvalidCursor(cursor) from None
        more = len(ordered) > limit
        page = ordered[:limit]
        return page, (keyset.cursor(page[-1]) if more else None)


def _key_value(value):
    """A sort key as JSON can carry it."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    return value


def _encode(key: list) -> str:
    text = json.dumps(key, separators=(",", ":"))
    return urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _decode(cursor: str) -> list:
    try:
        text = urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        key = json.loads(text)
    except (ValueError, binascii.Error):  # UnicodeDecodeError and JSONDecodeError included
        raise InvalidCursor(cursor) from None
    if not (
        isinstance(key, list)
        and all(isinstance(part, str | int) and not isinstance(part, bool) for part in key)
    ):
        raise InvalidCursor(cursor)
    return key


def _python_value(model, name: str, raw):
    field = model._meta.pk if name in ("id", "pk") else model._meta.get_field(name)
    try:
        value = field.to_python(raw)
        if isinstance(value, datetime):
            value = in_utc(value)
    except (DjangoValidationError, ValueError):
        raise InvalidCursor(raw) from None
    if value is None:
        raise InvalidCursor(raw)
    return value


def _invalid_cursor() -> ApiError:
    return ApiError(400, "Invalid cursor", {"cursor": INVALID_CURSOR})
