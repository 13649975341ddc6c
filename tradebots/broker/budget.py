"""The broker request budget: one sliding-window log in Redis shared by every process and machine.

Alpaca allows 200 requests per minute per account and answers 429 beyond that. Every HTTP request
AlpacaBroker makes first takes a slot here:

    slot = budget.acquire(Priority.EXIT, max_wait=30)   # waits for a free slot, or raises
    ... send the request ...
    budget.sent(slot)

Why a log and not a token bucket: a bucket of capacity N refilled at N per window lets 2N through
in one sliding window (a full bucket spent, then the refill). The log keeps one entry per request
and admits a request only while fewer than N entries are younger than the window, so no window
of that length ever holds more than N.

Each entry is stamped with Redis's clock (one clock for every machine) when the slot is taken,
and stamped again when the request has completed (``sent``). The broker receives the request
somewhere between the two, so counting from the later stamp keeps the guarantee as the broker
measures it, whatever the network delay between our clock and its.

Exits go first: an ENTRY request is admitted only while at least ``exit_reserve`` slots stay
free, an EXIT request may use them all. The priority comes from ``request_priority``, a context
variable, so code deep under the engine or a view needs no extra argument.
"""

import contextlib
import enum
import logging
import random
import threading
import time
import uuid
from contextvars import ContextVar

import redis

from .base import BudgetExhausted

logger = logging.getLogger(__name__)

# After Redis failed, requests go through unmetered for this long before Redis is tried again, so
# an unreachable Redis costs one connect timeout now and then, not one per broker request.
REDIS_RETRY_AFTER_SECONDS = 5.0
REDIS_TIMEOUT_SECONDS = 0.5
# Waiters woken for the same freed slot would all retry at once; a little spread avoids that.
WAKE_JITTER_SECONDS = 0.005


class Priority(enum.IntEnum):
    ENTRY = 0  # new buys, and everything not marked otherwise
    EXIT = 1  # stop-loss, take-profit, signal sells, manual closes, syncing/cancelling orders


_priority: ContextVar[Priority] = ContextVar("broker_request_priority", default=Priority.ENTRY)


def current_priority() -> Priority:
    return _priority.get()


@contextlib.contextmanager
def request_priority(priority: Priority):
    """Broker requests made inside the block (on this thread or task) use this priority."""
    token = _priority.set(Priority(priority))
    try:
        yield
    finally:
        _priority.reset(token)


# KEYS[1]: sorted set of requests (member: request id, score: Redis time in microseconds).
# ARGV: limit, window (µs), slots the caller must leave free, new member, key lifetime (ms).
# Returns 0 when the request was admitted (and recorded), else the microseconds until the slot it
# needs frees up. Scores are formatted with %d: Lua 5.1 prints large numbers in %.14g otherwise.
_ACQUIRE = """
redis.replicate_commands()
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local allowed = limit - tonumber(ARGV[3])
-- An entry stamped exactly one window ago still counts: a closed window of that length holds
-- it and the new request both.
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. string.format('%d', now - window))
local count = redis.call('ZCARD', KEYS[1])
if count < allowed then
    redis.call('ZADD', KEYS[1], string.format('%d', now), ARGV[4])
    redis.call('PEXPIRE', KEYS[1], ARGV[5])
    return 0
end
-- Once the (count - allowed + 1) oldest entries have aged out, one slot is free for this caller.
local oldest = redis.call('ZRANGE', KEYS[1], count - allowed, count - allowed, 'WITHSCORES')
local wait = tonumber(oldest[2]) + window - now + 1
if wait < 1 then wait = 1 end
return wait
"""

# KEYS[1]: as above. ARGV: member, key lifetime (ms). Re-stamps a request once it has completed.
_SENT = """
redis.replicate_commands()
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
redis.call('ZADD', KEYS[1], string.format('%d', now), ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 0
"""

_USED = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
return redis.call('ZCOUNT', KEYS[1], string.format('%d', now - tonumber(ARGV[1])), '+inf')
"""


class RequestBudget:
    """At most ``limit`` requests in any ``window_seconds``, shared through Redis under ``key``.

    Fails open: when Redis cannot be reached the request goes through (with a warning), since
    a limiter that is down must never stop a stop-loss from being sent.
    """

    def __init__(
        self,
        redis_url: str,
        *,
        key: str,
        limit: int,
        window_seconds: float,
        exit_reserve: int = 0,
        max_wait: float = 30.0,
    ):
        if limit < 1 or window_seconds <= 0:
            raise ValueError("A request budget needs a positive limit and window.")
        if not 0 <= exit_reserve < limit:
            raise ValueError("The exit reserve must be at least 0 and below the limit.")
        self.key = key
        self.limit = limit
        self.window_seconds = window_seconds
        self.exit_reserve = exit_reserve
        self.max_wait = max_wait
        self._window_us = int(window_seconds * 1_000_000)
        self._ttl_ms = int(window_seconds * 1000) + 1000
        self._redis = redis.Redis.from_url(
            redis_url,
            socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
            socket_timeout=REDIS_TIMEOUT_SECONDS,
        )
        self._acquire = self._redis.register_script(_ACQUIRE)
        self._sent = self._redis.register_script(_SENT)
        self._used = self._redis.register_script(_USED)
        self._down_until = 0.0
        self._down_lock = threading.Lock()

    def acquire(
        self, priority: Priority | None = None, max_wait: float | None = None
    ) -> str | None:
        """Take a slot, waiting up to ``max_wait`` seconds for one. Returns the slot to hand to
        ``sent`` (None when Redis is down and the request goes through unmetered).

        Raises BudgetExhausted, before anything was sent, when no slot frees up in time."""
        priority = current_priority() if priority is None else Priority(priority)
        max_wait = self.max_wait if max_wait is None else max_wait
        reserve = 0 if priority is Priority.EXIT else self.exit_reserve
        deadline = time.monotonic() + max_wait
        while True:
            if time.monotonic() < self._down_until:
                return None
            slot = uuid.uuid4().hex
            try:
                wait_us = self._acquire(
                    keys=[self.key],
                    args=[self.limit, self._window_us, reserve, slot, self._ttl_ms],
                )
            except redis.RedisError as error:
                self._redis_down(error)
                return None
            if wait_us == 0:
                return slot
            wait = wait_us / 1_000_000
            remaining = deadline - time.monotonic()
            if wait > remaining:
                raise BudgetExhausted(
                    f"Broker request budget used up ({self.limit} requests per "
                    f"{self.window_seconds:g} s, {priority.name.lower()} priority): no slot "
                    f"within {max_wait:g} s. The request was not sent."
                )
            jitter = random.uniform(0, WAKE_JITTER_SECONDS)  # noqa: S311 (not a secret)
            time.sleep(min(wait + jitter, remaining))

    def sent(self, slot: str | None) -> None:
        """The request holding ``slot`` has completed: count it from now."""
        if slot is None:
            return
        try:
            self._sent(keys=[self.key], args=[slot, self._ttl_ms])
        except redis.RedisError as error:
            self._redis_down(error)

    def used(self) -> int:
        """Requests counted in the current window (raises redis errors: not on a request path)."""
        return int(self._used(keys=[self.key], args=[self._window_us]))

    def reset(self) -> None:
        self._redis.delete(self.key)

    def _redis_down(self, error: Exception) -> None:
        with self._down_lock:
            if time.monotonic() < self._down_until:
                return
            self._down_until = time.monotonic() + REDIS_RETRY_AFTER_SECONDS
        logger.warning(
            "Broker request budget: Redis unreachable (%s); broker requests go through "
            "unmetered for %g s",
            error,
            REDIS_RETRY_AFTER_SECONDS,
        )
