"""The bridge's side of Redis: reading entries of the event streams through the consumer group
and acknowledging them, as two Lua scripts, and decoding what the reads return.

Split from `bridge.py`, which owns the forwarding loop and its guarantees, because this is a
wire format with reasons of its own: it is what let one bridge process forward tens of thousands
of entries a second (parsing plain replies in redis-py cost more than the forwarding itself),
and it is where a change to how entries are read or deleted belongs. The entry's fields are
`producers.streams`'s convention.
"""

from __future__ import annotations

import struct

import redis

from producers.streams import KEY_FIELD, VALUE_FIELD
from smart_shelf_platform.settings import Settings


def bridge_redis_client(settings: Settings) -> redis.Redis:
    # Raw bytes: values must reach Kafka exactly as written, valid UTF-8 or not.
    return redis.Redis.from_url(settings.redis_url, decode_responses=False)


# XREADGROUP runs inside this script so that its reply comes back as one compact binary string.
# Parsing the nested reply of a plain XREADGROUP (an ID, then a field/value array per entry) costs
# redis-py's pure-Python parser ~8 us per entry, which alone held the bridge near 40,000 entries/s;
# decoding this string costs ~0.5 us. Same command, same semantics: ARGV[4] is ">" for new entries
# or an ID to re-read this consumer's pending ones. Scripts cannot BLOCK: waiting uses a plain
# XREADGROUP (see `bridge.Bridge._wait_for_entries`).
READ_SCRIPT = """
local reply = redis.call('XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', ARGV[3],
                         'STREAMS', KEYS[1], ARGV[4])
if not reply then return '' end
local out, n = {}, 0
for _, entry in ipairs(reply[1][2]) do
  local id, fields = entry[1], entry[2]
  local flags, key, value = 0, '', ''
  if fields then
    flags = 4
    for i = 1, #fields, 2 do
      if fields[i] == ARGV[5] then key = fields[i + 1]; flags = flags + 1
      elseif fields[i] == ARGV[6] then value = fields[i + 1]; flags = flags + 2 end
    end
  end
  out[n + 1] = struct.pack('>BHII', flags, #id, #key, #value)
  out[n + 2] = id
  out[n + 3] = key
  out[n + 4] = value
  n = n + 4
end
return table.concat(out)
"""
# XACK and XDEL of the delivered entries of one stream, atomically (a script runs alone), so an
# acknowledged entry is never left behind in the stream, where writers count it as backlog. The IDs
# come as one space-separated argument: redis-py packs each argument in Python (~1 us apiece),
# which cost more than the acknowledgement itself. Batches of 1,000 stay under Lua's limit on
# unpack() arguments.
ACK_SCRIPT = """
local ids, n, acked = {}, 0, 0
for id in string.gmatch(ARGV[2], '%S+') do
  n = n + 1
  ids[n] = id
  if n == 1000 then
    acked = acked + redis.call('XACK', KEYS[1], ARGV[1], unpack(ids))
    redis.call('XDEL', KEYS[1], unpack(ids))
    ids, n = {}, 0
  end
end
if n > 0 then
  acked = acked + redis.call('XACK', KEYS[1], ARGV[1], unpack(ids))
  redis.call('XDEL', KEYS[1], unpack(ids))
end
return acked
"""
ENTRY_HEADER = struct.Struct(">BHII")  # flags, then the lengths of the ID, the key, the value
HAS_KEY, HAS_VALUE, ALIVE = 1, 2, 4  # ALIVE unset: deleted from the stream while still pending

# One stream entry as the bridge handles it: (entry ID, alive, key or None, value or None).
Entry = tuple[bytes, int, bytes | None, bytes | None]


def decode_entries(blob: bytes) -> list[Entry]:
    """The entries of one READ_SCRIPT reply, in stream order."""
    entries = []
    unpack, header = ENTRY_HEADER.unpack_from, ENTRY_HEADER.size
    pos, end = 0, len(blob)
    while pos < end:
        flags, id_len, key_len, value_len = unpack(blob, pos)
        key_at = pos + header + id_len
        value_at = key_at + key_len
        pos = value_at + value_len
        entries.append((blob[key_at - id_len:key_at], flags & ALIVE,
                        blob[key_at:value_at] if flags & HAS_KEY else None,
                        blob[value_at:pos] if flags & HAS_VALUE else None))
    return entries


def entries_from_reply(reply) -> list[tuple[bytes, list[Entry]]]:
    """(stream, entries) of a plain XREADGROUP reply, in RESP2 (list) or RESP3 (map) shape."""
    if not reply:
        return []
    pairs = ((s, b[0] if b else []) for s, b in reply.items()) if isinstance(reply, dict) \
        else reply
    return [(stream, [(entry_id, ALIVE if fields else 0, fields.get(KEY_FIELD),
                       fields.get(VALUE_FIELD)) for entry_id, fields in entries])
            for stream, entries in pairs]
