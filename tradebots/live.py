"""Live updates: rendered fragments pushed over each open page's WebSocket as htmx out-of-band
swaps, only to the pages that show them.

Groups. Every socket (tradebots.consumers) is in ``toasts`` and its user's group from the start,
and joins the groups its page declares it shows (``partials/live_watch.html``, sent when the
socket opens and again whenever a fragment that declares is swapped in):

- ``dashboard``: the account summary, market, system status and last reconciliation run;
- ``bot.<id>``: one bot's page (its card);
- the tables: ``bots`` (the bots list's cards), ``trades``, ``open-positions``,
  ``closed-positions`` and ``reconciliation`` (the runs). A table's declaration lists the rows
  the page shows and whether it shows the newest rows (first page, no filter).

What a push carries. A render returns ``Fragment``s (an element every page of its group has,
swapped by its ``id``) and ``Row``s (a row of a table: its replacement, the insert a page that
shows the newest rows but not this one takes, or its removal). Each socket forwards a row only
where it fits its page: a replace or remove for a row it shows, an insert where it shows the
newest rows and not this one. So no page is sent a swap it has no target for.

Call these from sync code only (views, services, Celery tasks); inside a transaction push from
``transaction.on_commit`` so nobody sees data that might still roll back.

Coalescing: inside ``with coalesced():`` (an engine batch, an order sync, a web request, a task)
pushes are collected instead of sent. Each push, named by its key, keeps only its latest version
and is rendered when the block ends; then each group gets at most one message per kind of
element (see ``message_kind``) and each table one message of rows.

A render that costs real work per group (a bot's chart: indicator maths on every engine tick)
asks ``watched_groups`` first and renders only for groups an open page has joined.
"""

import asyncio
import contextlib
import logging
import re
from collections.abc import Callable, Iterable
from contextvars import ContextVar
from dataclasses import asdict, dataclass

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction
from django.template.loader import render_to_string

logger = logging.getLogger(__name__)

TOASTS_GROUP = "toasts"
DASHBOARD_GROUP = "dashboard"
TABLES = ("bots", "trades", "open-positions", "closed-positions", "reconciliation")
TOAST_LEVELS = ("info", "success", "warning", "error")


def bot_group(bot_id) -> str:
    return f"bot.{bot_id}"


@dataclass(frozen=True)
class Fragment:
    group: str
    html: str


@dataclass(frozen=True)
class Row:
    """One row of ``table`` as pushed: ``replace`` (an element with ``hx-swap-oob``) for pages
    showing it, ``insert`` (a ``<tbody>`` wrapper, empty for a row that must not be inserted,
    e.g. an old trade that changed) for pages showing the newest rows, or ``remove``."""

    table: str
    pk: str
    replace: str = ""
    insert: str = ""
    remove: str = ""


Push = Fragment | Row


def table_row(table: str, pk, render_row: Callable[..., str], *, tbody: str, insert: bool) -> Row:
    """A row as pushed: ``render_row(oob=True)`` replaces it where shown; with ``insert`` it also
    goes to the top of ``<tbody id=tbody>`` on pages that show the newest rows and not this one
    (htmx strips the ``<tbody>`` wrapper of a non-outerHTML swap: its documented way for rows)."""
    inserted = f'<tbody hx-swap-oob="afterbegin:#{tbody}">{render_row()}</tbody>' if insert else ""
    return Row(table, str(pk), replace=render_row(oob=True), insert=inserted)


def removed_row(table: str, pk, element_id: str) -> Row:
    return Row(table, str(pk), remove=f'<tr id="{element_id}" hx-swap-oob="delete"></tr>')


_collected: ContextVar[dict | None] = ContextVar("live_collected", default=None)
_FIRST_TAG = re.compile(r"\s*<(\w+)")


def message_kind(html: str) -> str:
    """htmx parses a message like table content when it starts with a row: lone ``<tr>``s,
    ``<tbody>`` wrappers and other elements re-parent each other, so each goes out alone."""
    match = _FIRST_TAG.match(html)
    tag = match[1].lower() if match else ""
    return tag if tag in ("tr", "tbody") else "other"


@contextlib.contextmanager
def coalesced():
    """Collect the pushes made inside the block and send them, coalesced, when it ends."""
    if _collected.get() is not None:  # nested: the outer block sends
        yield
        return
    collected: dict = {}
    token = _collected.set(collected)
    try:
        yield
    finally:
        _collected.reset(token)
        _flush(collected)


def push(key, render: Callable[..., Push | Iterable[Push]], **flags: bool) -> None:
    """Push what ``render(**flags)`` returns; within a coalesced block only its latest version
    is sent, rendered at the end. A flag set by any version stays set (a row created and then
    changed in one tick is still inserted, with its latest content)."""
    collected = _collected.get()
    if collected is None:
        _send_all(_render(key, render, flags))
        return
    if key in collected:
        earlier = collected[key][1]
        flags = {name: value or earlier.get(name, False) for name, value in flags.items()}
    collected[key] = (render, flags)


def push_each(kind: str, item, render_many: Callable[[dict], Iterable[Push]], **flags) -> None:
    """Push ``item`` (a trade, a bot, by primary key) where ``render_many({item: flags, ...})``
    reads and renders all items of its kind at once, in the order they were first pushed:
    within a coalesced block one query for however many items, and each rendered from the
    database as it is when the block ends, so a long block never sends an older state than a
    shorter one that ended meanwhile."""
    collected = _collected.get()
    if collected is None:
        _send_all(_render(kind, lambda: render_many({item: flags}), {}))
        return
    key = ("each", kind)
    if key not in collected:
        collected[key] = (_RenderEach(render_many), {})
    items = collected[key][0].items
    earlier = items.get(item, {})
    items[item] = {name: value or earlier.get(name, False) for name, value in flags.items()}


class _RenderEach:
    def __init__(self, render_many):
        self.render_many, self.items = render_many, {}

    def __call__(self):
        return self.render_many(dict(self.items))


def pushes_sent() -> int:
    """Messages sent to the channel layer by this process (for the benchmark)."""
    return _sent_count


def _render(key, render, flags) -> list[Push]:
    try:
        pushed = render(**flags)
    except Exception:
        logger.exception("Live update %s could not be rendered", key)
        return []
    return [pushed] if isinstance(pushed, Fragment | Row) else list(pushed)


def _flush(collected: dict) -> None:
    _send_all(
        pushed
        for key, (render, flags) in collected.items()
        for pushed in _render(key, render, flags)
    )


def _send_all(pushes: Iterable[Push]) -> None:
    fragments: dict[str, dict[str, list[str]]] = {}
    rows: dict[str, list[dict]] = {}
    for pushed in pushes:
        if isinstance(pushed, Row):
            rows.setdefault(pushed.table, []).append(asdict(pushed))
        else:
            kinds = fragments.setdefault(pushed.group, {"tr": [], "tbody": [], "other": []})
            kinds[message_kind(pushed.html)].append(pushed.html)
    messages = [
        (group, {"type": "live.html", "html": "".join(parts)})
        for group, kinds in fragments.items()
        for parts in kinds.values()
        if parts
    ]
    messages += [
        (table, {"type": "live.rows", "table": table, "rows": changes})
        for table, changes in rows.items()
    ]
    if messages:
        _deliver(messages)


_sent_count = 0


def _deliver(messages: list[tuple[str, dict]]) -> None:
    """All of a flush's messages in one trip from sync code to the event loop (each trip costs
    2-3 ms), sent concurrently. A push that fails is logged, not raised: the data is already
    saved and the next page load shows it."""
    global _sent_count
    _sent_count += len(messages)
    try:
        failures = async_to_sync(_group_send_all)(messages)
    except Exception:
        logger.exception("Live updates could not be pushed")
        return
    for (group, _), failure in zip(messages, failures, strict=True):
        if failure is not None:
            logger.error("Live update to %s could not be pushed", group, exc_info=failure)


async def _group_send_all(messages) -> list[BaseException | None]:
    layer = get_channel_layer()
    results = await asyncio.gather(
        *(layer.group_send(group, message) for group, message in messages),
        return_exceptions=True,
    )
    return [result if isinstance(result, BaseException) else None for result in results]


def watched_groups(groups: Iterable[str]) -> set[str]:
    """Which of ``groups`` an open page's socket has joined, so that a render costly enough to
    matter (a bot's chart, each engine tick) is made only for pages that show it. A layer that
    cannot tell (not the Redis one) or fails to answer counts every group as watched."""
    groups = list(groups)
    layer = get_channel_layer()
    if not groups or not hasattr(layer, "groups_with_members"):
        return set(groups)
    try:
        return async_to_sync(layer.groups_with_members)(groups)
    except Exception:
        logger.exception("Could not tell which pages are open; rendering for all")
        return set(groups)


def send_html(group: str, html: str) -> None:
    """Send ready-made OOB HTML to the pages of ``group`` (collected inside ``coalesced()``)."""
    push(object(), lambda: Fragment(group, html))


def broadcast(group: str, template_name: str, context: dict | None = None) -> None:
    send_html(group, render_to_string(template_name, context or {}))


def render_toast(
    message: str, level: str = "info", *, link: tuple[str, str] | None = None, sticky=False
) -> str:
    """A toast; ``link`` is (url, text) shown after the message; a ``sticky`` one stays until
    dismissed."""
    if level not in TOAST_LEVELS:
        raise ValueError(f"Unknown toast level {level!r}")
    url, text = link or ("", "")
    context = {"message": message, "level": level, "link_url": url, "link_text": text}
    return render_to_string("partials/toast.html", {**context, "sticky": sticky})


def toast(message: str, level: str = "info", **options) -> None:
    """A toast on every open page (``options``: see ``render_toast``)."""
    send_html(TOASTS_GROUP, render_toast(message, level, **options))


def toast_on_commit(message: str, level: str = "info") -> None:
    transaction.on_commit(lambda: toast(message, level))
