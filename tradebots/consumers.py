import json
import logging
import re
from dataclasses import dataclass, field
from importlib import import_module

from channels.auth import get_user
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from .live import DASHBOARD_GROUP, TABLES, TOASTS_GROUP, message_kind
from .socket_sessions import SESSION_ENDED_CLOSE_CODE, user_group

logger = logging.getLogger(__name__)

# An application close code (4000-4999): htmx's ws extension does not reconnect after it.
BAD_DECLARATION_CLOSE_CODE = 4400
MAX_DECLARATION_BYTES = 128 * 1024
MAX_WATCHED_GROUPS = 8
MAX_ROWS = 5000
# A bot's page, a backtest's or an optimisation's: one group per object, named by its UUID.
_OBJECT_GROUP = re.compile(
    r"(bot|backtest|optimisation)\.[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
)
_ROW_PK = re.compile(r"[0-9A-Za-z-]{1,64}")


class BadDeclaration(ValueError):
    pass


@dataclass
class TableView:
    """The rows of a table a page shows, and whether they are its newest (new rows go on top)."""

    rows: set[str] = field(default_factory=set)
    newest: bool = False


def parse_declaration(text: str) -> tuple[str, TableView | None]:
    """A page's ``{"watch": group, "rows": "pk pk ...", "newest": "1"}`` (the JSON htmx's ws
    extension sends from ``partials/live_watch.html``) as the group and, for a table, its view."""
    if len(text) > MAX_DECLARATION_BYTES:
        raise BadDeclaration("declaration too long")
    try:
        declared = json.loads(text)
    except (ValueError, RecursionError) as error:  # deep nesting is hostile, not a crash
        raise BadDeclaration("not JSON") from error
    if not isinstance(declared, dict) or not isinstance(declared.get("watch"), str):
        raise BadDeclaration("no group to watch")
    group = declared["watch"]
    if group == DASHBOARD_GROUP or _OBJECT_GROUP.fullmatch(group):
        return group, None
    if group not in TABLES:
        raise BadDeclaration(f"unknown group {group[:40]!r}")
    rows = declared.get("rows", "")
    if not isinstance(rows, str):
        raise BadDeclaration("rows must be a string")
    pks = rows.split()
    if len(pks) > MAX_ROWS or not all(_ROW_PK.fullmatch(pk) for pk in pks):
        raise BadDeclaration("rows must be at most 5000 primary keys")
    return group, TableView(rows=set(pks), newest=declared.get("newest") == "1")


class UpdatesConsumer(AsyncWebsocketConsumer):
    """One socket per open page. It receives the pushes of tradebots.live for the groups its
    page declares it shows, forwards a table's rows only where they fit the page (see
    ``live_rows``), and closes when the session it was opened in ends
    (tradebots.socket_sessions)."""

    async def connect(self):
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close()
            return
        self.user_id = user.pk
        self.session_key = self.scope["session"].session_key
        self.tables: dict[str, TableView] = {}
        self.joined = []
        self.declarations = 0
        for group in (TOASTS_GROUP, user_group(user.pk)):
            await self._join(group)
        # A logout or user change between the auth middleware's look-up and joining the user's
        # group told nobody: check the session once more now that this socket listens.
        if not await self.session_still_valid():
            await self._leave()
            await self.close(code=SESSION_ENDED_CLOSE_CODE)
            return
        await self.accept()

    async def receive(self, text_data=None, bytes_data=None):
        """A page's declaration of a group it shows; a later one for the same table (another
        page of it, another filter) replaces the earlier."""
        try:
            group, view = parse_declaration(text_data or "")
            if group not in self.joined and len(self.joined) >= MAX_WATCHED_GROUPS + 2:
                raise BadDeclaration("too many groups")
        except BadDeclaration as error:
            logger.info("Closing a live-updates socket: %s", error)
            await self.close(code=BAD_DECLARATION_CLOSE_CODE)
            return
        if view is not None:
            self.tables[group] = view
        if group not in self.joined:
            await self._join(group)
        self.declarations += 1
        await self.send(text_data=self._watching_element())

    def _watching_element(self) -> str:
        """The page's ``#live-watching`` says which groups its socket has joined and how many
        declarations it has taken (the names are checked, so they need no escaping): a test, or
        a person debugging, can see that a declaration has landed."""
        groups = " ".join(group for group in self.joined if group != user_group(self.user_id))
        return (
            f'<div id="live-watching" hidden hx-swap-oob="true" data-watching="{groups}" '
            f'data-declarations="{self.declarations}"></div>'
        )

    async def disconnect(self, code):
        await self._leave()

    async def _join(self, group):
        await self.channel_layer.group_add(group, self.channel_name)
        self.joined.append(group)

    async def _leave(self):
        for group in getattr(self, "joined", []):
            await self.channel_layer.group_discard(group, self.channel_name)
        self.joined = []

    async def session_still_valid(self) -> bool:
        """Read the session afresh (the scope's copy was loaded at connect) and check it as a
        request would: it exists, its user is active and its hash matches the password's."""
        store = import_module(settings.SESSION_ENGINE).SessionStore(self.session_key)
        user = await get_user({"session": store})
        return user.is_authenticated and user.pk == self.user_id

    async def live_html(self, event):
        await self.send(text_data=event["html"])

    async def live_rows(self, event):
        """A replace or remove for a row the page shows, an insert on top where it shows the
        newest rows and not this one; nothing else (a swap without a target is an error)."""
        view = self.tables.get(event["table"])
        if view is None:
            return
        kinds: dict[str, list[str]] = {"tr": [], "tbody": [], "other": []}
        for row in event["rows"]:
            pk = row["pk"]
            if pk in view.rows:
                html = row["remove"] or row["replace"]
                if row["remove"]:
                    view.rows.discard(pk)
            elif view.newest and row["insert"]:
                html = row["insert"]
                view.rows.add(pk)
            else:
                continue
            kinds[message_kind(html)].append(html)
        for parts in kinds.values():
            if parts:
                await self.send(text_data="".join(parts))

    async def session_ended(self, event):
        if event["session_key"] == self.session_key:
            await self.close(code=SESSION_ENDED_CLOSE_CODE)

    async def session_check(self, event):
        if not await self.session_still_valid():
            await self.close(code=SESSION_ENDED_CLOSE_CODE)
