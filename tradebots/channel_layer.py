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
