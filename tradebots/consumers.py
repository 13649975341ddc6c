from importlib import import_module

from channels.auth import get_user
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from .live import UPDATES_GROUP
from .socket_sessions import SESSION_ENDED_CLOSE_CODE, user_group


class UpdatesConsumer(AsyncWebsocketConsumer):
    """One socket per open page; receives the HTML fragments that tradebots.live pushes, and
    closes when the session it was opened in ends (tradebots.socket_sessions)."""

    async def connect(self):
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close()
            return
        self.user_id = user.pk
        self.session_key = self.scope["session"].session_key
        self.joined = [UPDATES_GROUP, user_group(user.pk)]
        for group in self.joined:
            await self.channel_layer.group_add(group, self.channel_name)
        # A logout or user change between the auth middleware's look-up and joining the user's
        # group told nobody: check the session once more now that this socket listens.
        if not await self.session_still_valid():
            await self._leave()
            await self.close(code=SESSION_ENDED_CLOSE_CODE)
            return
        await self.accept()

    async def disconnect(self, code):
        await self._leave()

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

    async def session_ended(self, event):
        if event["session_key"] == self.session_key:
            await self.close(code=SESSION_ENDED_CLOSE_CODE)

    async def session_check(self, event):
        if not await self.session_still_valid():
            await self.close(code=SESSION_ENDED_CLOSE_CODE)
