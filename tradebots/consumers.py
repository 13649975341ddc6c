from channels.generic.websocket import AsyncWebsocketConsumer

from .live import UPDATES_GROUP


class UpdatesConsumer(AsyncWebsocketConsumer):
    """One socket per open page; receives the HTML fragments that tradebots.live pushes."""

    async def connect(self):
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close()
            return
        await self.channel_layer.group_add(UPDATES_GROUP, self.channel_name)
        await self.accept()

    async def disconnect(self, code):
        await self.channel_layer.group_discard(UPDATES_GROUP, self.channel_name)

    async def live_html(self, event):
        await self.send(text_data=event["html"])
