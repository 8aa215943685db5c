"""The stream's storage: one Redis stream of events, each with the market's slug, its kind and its JSON data.

Every web, worker and stream process reaches the same Redis, so an event added here by whichever process
committed the change reaches the stream processes, which read it with XREAD and send it to their clients.
The Redis entry id (`<milliseconds>-<sequence>`) is the event's SSE `id`: a client that reconnects with
`Last-Event-ID` gets every kept entry after it (XRANGE). Entries are kept for FORECASTLE_STREAM_RETENTION_SECONDS
and at most FORECASTLE_STREAM_MAX_EVENTS of them; the id of the newest entry ever trimmed is kept beside the
stream, so a reconnecting client that missed trimmed events is told so (a `reset` event) instead of
silently getting a gap.

This module imports nothing of the app: the publisher (markets.services.stream) and the server share it.
"""

import hashlib
import re
from dataclasses import dataclass

from django.conf import settings

PRICE = "price"
TRADE = "trade"
STATUS = "status"
# Sent by the server (never stored) when events after a client's Last-Event-ID were trimmed.
RESET = "reset"

EVENT_ID = re.compile(r"^(\d{1,20})-(\d{1,20})$")

# One script per publication, so a change's events are added, the market's last published price version
# and status compared and recorded, and the stream trimmed, all at once: two processes publishing the same
# market's changes never interleave, and prices are never published out of order. The publisher runs it by its
# SHA1 (EVALSHA, PUBLISH_SCRIPT_SHA), sending the text only when Redis does not have it yet (NOSCRIPT).
#
# KEYS: the stream, the market's state hash, the trimmed-id marker.
# ARGV: max entries, retention in ms, state ttl in s, slug, price version ('' for none), price data,
#       status ('' for none), status data, then the data of each trade, in the order written (none or more).
# Returns the ids added.
PUBLISH_SCRIPT = """
local ids = {}
local function add(kind, data)
  ids[#ids + 1] = redis.call('XADD', KEYS[1], '*', 'event', kind, 'market', ARGV[4], 'data', data)
end
for index = 9, #ARGV do add('trade', ARGV[index]) end
if ARGV[5] ~= '' then
  local known = tonumber(redis.call('HGET', KEYS[2], 'version') or '0')
  if tonumber(ARGV[5]) > known then
    redis.call('HSET', KEYS[2], 'version', ARGV[5])
    add('price', ARGV[6])
  end
end
if ARGV[7] ~= '' then
  if redis.call('HGET', KEYS[2], 'status') ~= ARGV[7] then
    redis.call('HSET', KEYS[2], 'status', ARGV[7])
    add('status', ARGV[8])
  end
end
redis.call('EXPIRE', KEYS[2], tonumber(ARGV[3]))
if #ids == 0 then return ids end
local maxlen = tonumber(ARGV[1])
local length = redis.call('XLEN', KEYS[1])
if length > maxlen then
  local doomed = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', length - maxlen)
  redis.call('XTRIM', KEYS[1], 'MAXLEN', maxlen)
  redis.call('SET', KEYS[3], doomed[#doomed][1])
end
local now = redis.call('TIME')
local cutoff = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) - tonumber(ARGV[2])
local expired = redis.call('XREVRANGE', KEYS[1], '(' .. cutoff .. '-0', '-', 'COUNT', 1)
if #expired > 0 then
  redis.call('XTRIM', KEYS[1], 'MINID', cutoff .. '-0')
  redis.call('SET', KEYS[3], expired[1][1])
end
return ids
"""

PUBLISH_SCRIPT_SHA = hashlib.sha1(PUBLISH_SCRIPT.encode(), usedforsecurity=False).hexdigest()

# How long a market's last published version and status are remembered; after that its next change
# publishes its status again (harmless: a status event states the current status).
STATE_SECONDS = 7 * 86400


def stream_key() -> str:
    """The Redis stream's key (FORECASTLE_STREAM_KEY); the other keys of the stream start with it."""
    return str(settings.FORECASTLE_STREAM_KEY)


def state_key(market_id: int) -> str:
    return f"{stream_key()}:market:{market_id}"


def trimmed_key() -> str:
    return f"{stream_key()}:trimmed"


def connections_key(address: str) -> str:
    return f"{stream_key()}:connections:{address}"


@dataclass(frozen=True, order=True)
class EventId:
    """A Redis stream entry id, ordered as Redis orders them."""

    milliseconds: int
    sequence: int

    @classmethod
    def parse(cls, text: str) -> "EventId | None":
        match = EVENT_ID.match(text.strip())
        if match is None:
            return None
        milliseconds, sequence = int(match.group(1)), int(match.group(2))
        if milliseconds >= 2**64 or sequence >= 2**64:  # Redis ids are two unsigned 64-bit numbers
            return None
        return cls(milliseconds, sequence)

    def __str__(self) -> str:
        return f"{self.milliseconds}-{self.sequence}"
