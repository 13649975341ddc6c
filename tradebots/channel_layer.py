"""The Channels layer on Redis, with a connection pool that makes a burst wait instead of fail."""

from channels_redis.core import RedisChannelLayer
from redis.asyncio import BlockingConnectionPool


class BoundedRedisChannelLayer(RedisChannelLayer):
    """redis-py's asyncio pool refuses a command once its connections are all in use ("Too
    many connections"): a hundred pages opening their sockets at once got HTTP 500s while
    joining their groups. This pool holds at most ``max_connections`` and lets the rest wait for
    one (up to ``timeout`` seconds)."""

    def create_pool(self, index):
        host = dict(self.hosts[index])
        return BlockingConnectionPool.from_url(host.pop("address"), **host)

    async def groups_with_members(self, groups: list[str]) -> set[str]:
        """Which of ``groups`` some channel has joined: one pipelined ZCARD per shard of the
        group sets ``group_add`` keeps (an expired member counts until ``group_send`` or
        ``group_expiry`` clears it, which only costs a render nobody sees)."""
        by_shard: dict[int, list[str]] = {}
        for group in groups:
            by_shard.setdefault(self.consistent_hash(group), []).append(group)
        found = set()
        for shard, names in by_shard.items():
            pipe = self.connection(shard).pipeline(transaction=False)
            for name in names:
                pipe.zcard(self._group_key(name))
            sizes = await pipe.execute()
            found.update(name for name, size in zip(names, sizes, strict=True) if size)
        return found
