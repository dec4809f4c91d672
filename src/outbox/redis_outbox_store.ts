/**
 * The {@link OutboxStore} on Redis: the one outbox of a fleet, shared by scrapers on many machines.
 *
 * Why hashes, sorted sets and Lua scripts rather than Streams with a consumer group: the outbox's entries
 * are not a log read once in order. Each has its own backoff (`nextAt`), is replaced in place by a later
 * copy under its once-per-channel key, carries attempts and refusals, and every lease call is conditional
 * on a token that changes with each write. Streams give none of that (an entry cannot be rescheduled or
 * replaced, `XAUTOCLAIM` knows idle time but not backoff), so they would need a second structure beside
 * them anyway. Here each call is one Lua script, so it is atomic on the server: two processes taking at
 * once never both get an entry, and counters change in the same step as the entries.
 *
 * Layout (prefix `rtcv:ob:`; a standalone Redis, not Cluster: scripts touch the keys of several channels):
 *
 * | key | type | what |
 * |---|---|---|
 * | `e:<id>` | hash | an entry: channel, key, route, label, count, created, next, attempts, refusal(s), last error, owner, lease end, token, payload |
 * | `q:<channel>` | sorted set | ids by the time each is free to take: its `nextAt`, or its lease end while leased |
 * | `age:<channel>` | sorted set | ids by `createdAt` (oldest waiting entry) |
 * | `k:<channel>` | hash | once-per-channel key → id of the entry waiting under it |
 * | `n:<channel>` | hash | `pending`, `dead`, `delivered` item counters and `err` (the last failure) |
 * | `channels` | set | every channel that ever had an entry |
 * | `d:<id>`, `dead` | hash, sorted set | dead letters (with their payload) and their ids by time |
 * | `seq`, `tok` | counters | entry ids (sortable: zero-padded) and lease tokens |
 *
 * Tokens come from a counter and change with every write that changes an entry's copy or its holder (put,
 * take, reschedule, release), not with a renewal (see `rtcvObRenew`).
 *
 * Times are the clients' clocks (`now` from the caller, as for the Deno.Kv store): machines of a fleet
 * should run NTP; a skew only shifts when a lapsed lease is taken over.
 *
 * @module
 */

import { Buffer } from "node:buffer";
import type { Redis } from "ioredis";
import type { RedisBatcher } from "../store/redis/redis_batcher.ts";
import type { RedisConnection } from "../store/redis/redis_connection.ts";
import { isRedisCommit } from "../store/redis/redis_commit.ts";
import type {
  ChannelCounts,
  DeadLetterRecord,
  Lease,
  LeasedEntry,
  NewOutboxEntry,
  OutboxEntry,
  OutboxRoute,
  OutboxStore,
  Reschedule,
} from "./outbox_store.ts";

/** The prefix of every outbox key in Redis. */
export const OUTBOX_KEY_PREFIX = "rtcv:ob:";

/** Shared Lua: the prefix, and the check every conditional call makes. */
const COMMON = `
local P = '${OUTBOX_KEY_PREFIX}'
local function token() return tostring(redis.call('INCR', P .. 'tok')) end
-- The entry's fields when its token is still the lease's and the caller owns it; else nil (a newer copy,
-- which its putter holds and sends, or one another process took over: left alone).
local function held(id, tk, owner)
  local v = redis.call('HMGET', P .. 'e:' .. id, 'tk', 'o', 'ch', 't', 'n', 'k')
  if v[1] == tk and v[2] == owner then return v end
  return nil
end
local function remove(id, v)
  local ch = v[3]
  redis.call('DEL', P .. 'e:' .. id)
  redis.call('ZREM', P .. 'q:' .. ch, id)
  redis.call('ZREM', P .. 'age:' .. ch, id)
  if v[6] and redis.call('HGET', P .. 'k:' .. ch, v[6]) == id then redis.call('HDEL', P .. 'k:' .. ch, v[6]) end
end
-- Removes a held entry and moves its items from pending to counter (delivered or dead).
local function settle(id, v, counter)
  remove(id, v)
  local count = tonumber(v[5]) or 0
  redis.call('HINCRBY', P .. 'n:' .. v[3], 'pending', -count)
  redis.call('HINCRBY', P .. 'n:' .. v[3], counter, count)
end
`;

const SCRIPTS = {
  /**
   * ARGV: owner, until, now, n, then per entry: channel, hasKey, key, route, label, count, payload; then m,
   * and m triples key, value, ms: keys set with an expiry after the entries (a {@link RedisCommit}).
   */
  rtcvObPut: `${COMMON}
local owner, untilAt, now, n = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local out = {}
for i = 0, n - 1 do
  local b = 5 + i * 7
  local ch, hasKey, key = ARGV[b], ARGV[b + 1] == '1', ARGV[b + 2]
  local count = tonumber(ARGV[b + 5])
  local id, old = false, 0
  if hasKey then
    id = redis.call('HGET', P .. 'k:' .. ch, key)
    if id and redis.call('EXISTS', P .. 'e:' .. id) == 0 then id = false end
  end
  local e
  if id then
    e = P .. 'e:' .. id
    old = tonumber(redis.call('HGET', e, 'n')) or 0
    redis.call('HDEL', e, 'f', 'e')
  else
    id = string.format('%016d', redis.call('INCR', P .. 'seq'))
    e = P .. 'e:' .. id
    if hasKey then
      redis.call('HSET', P .. 'k:' .. ch, key, id)
      redis.call('HSET', e, 'k', key)
    end
  end
  local tk = token()
  redis.call('HSET', e, 'ch', ch, 'r', ARGV[b + 3], 'l', ARGV[b + 4], 'n', count, 'c', now, 't', now, 'a', 0,
    'fc', 0, 'o', owner, 'u', untilAt, 'tk', tk, 'p', ARGV[b + 6])
  redis.call('ZADD', P .. 'q:' .. ch, untilAt, id)
  redis.call('ZADD', P .. 'age:' .. ch, now, id)
  redis.call('HINCRBY', P .. 'n:' .. ch, 'pending', count - old)
  redis.call('SADD', P .. 'channels', ch)
  out[#out + 1] = id
  out[#out + 1] = tk
end
local sets = 5 + n * 7
for i = 0, tonumber(ARGV[sets] or '0') - 1 do
  local b = sets + 1 + i * 3
  redis.call('SET', ARGV[b], ARGV[b + 1], 'PX', ARGV[b + 2])
end
return out`,
  /** ARGV: channel, owner, now, until, limit, skip count, skip ids... Returns [nextCheckAt, entry fields...]. */
  rtcvObTake: `${COMMON}
local ch, owner, now, untilAt, limit, nskip = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4], tonumber(ARGV[5]), tonumber(ARGV[6])
local skip = {}
for i = 7, 6 + nskip do skip[ARGV[i]] = true end
local q = P .. 'q:' .. ch
local nextAt = -1
local later = redis.call('ZRANGEBYSCORE', q, '(' .. ARGV[3], '+inf', 'WITHSCORES', 'LIMIT', 0, nskip + 1)
for i = 1, #later, 2 do
  if not skip[later[i]] then nextAt = tonumber(later[i + 1]); break end
end
local due = redis.call('ZRANGEBYSCORE', q, '-inf', ARGV[3], 'LIMIT', 0, limit + nskip + 1)
local out = {}
local taken = 0
for _, id in ipairs(due) do
  if not skip[id] then
    local e = P .. 'e:' .. id
    if taken >= limit then
      nextAt = now
      break
    elseif redis.call('EXISTS', e) == 1 then
      redis.call('HSET', e, 'o', owner, 'u', untilAt, 'tk', token())
      redis.call('ZADD', q, untilAt, id)
      out[#out + 1] = id
      out[#out + 1] = redis.call('HGETALL', e)
      taken = taken + 1
    else
      redis.call('ZREM', q, id)
    end
  end
end
table.insert(out, 1, nextAt)
return out`,
  /**
   * ARGV: owner, until, n, then id, token pairs. Returns the token per lease ('' when not held). A renewal
   * keeps the token: were its reply lost (Redis restarting), the holder's token must still be the entry's,
   * or the entry would stay leased to nobody who knows it until the lease lapses.
   */
  rtcvObRenew: `${COMMON}
local owner, untilAt, n = ARGV[1], ARGV[2], tonumber(ARGV[3])
local out = {}
for i = 0, n - 1 do
  local id, tk = ARGV[4 + i * 2], ARGV[5 + i * 2]
  local v = held(id, tk, owner)
  if v then
    redis.call('HSET', P .. 'e:' .. id, 'u', untilAt)
    redis.call('ZADD', P .. 'q:' .. v[3], untilAt, id)
    out[#out + 1] = tk
  else
    out[#out + 1] = ''
  end
end
return out`,
  /** ARGV: owner, n, then id, token pairs. */
  rtcvObAck: `${COMMON}
local owner, n = ARGV[1], tonumber(ARGV[2])
for i = 0, n - 1 do
  local id = ARGV[3 + i * 2]
  local v = held(id, ARGV[4 + i * 2], owner)
  if v then settle(id, v, 'delivered') end
end
return n`,
  /** ARGV: owner, id, token, nextAt, attempts, hasRefusal, refusal, refusals, lastError. */
  rtcvObReschedule: `${COMMON}
local owner, id = ARGV[1], ARGV[2]
local v = held(id, ARGV[3], owner)
if not v then return 0 end
local e = P .. 'e:' .. id
redis.call('HSET', e, 't', ARGV[4], 'a', ARGV[5], 'fc', ARGV[8], 'e', ARGV[9], 'o', '', 'u', 0, 'tk', token())
if ARGV[6] == '1' then redis.call('HSET', e, 'f', ARGV[7]) else redis.call('HDEL', e, 'f') end
redis.call('ZADD', P .. 'q:' .. v[3], ARGV[4], id)
redis.call('HSET', P .. 'n:' .. v[3], 'err', ARGV[9])
return 1`,
  /** ARGV: owner, id, token, reason, at. */
  rtcvObBury: `${COMMON}
local owner, id, reason, at = ARGV[1], ARGV[2], ARGV[4], ARGV[5]
local v = held(id, ARGV[3], owner)
if not v then return 0 end
local f = redis.call('HMGET', P .. 'e:' .. id, 'r', 'l', 'p')
redis.call('HSET', P .. 'd:' .. id, 'ch', v[3], 'r', f[1], 'l', f[2], 'n', v[5], 'reason', reason, 'at', at, 'p', f[3])
redis.call('ZADD', P .. 'dead', at, id)
settle(id, v, 'dead')
redis.call('HSET', P .. 'n:' .. v[3], 'err', reason)
return 1`,
  /** ARGV: owner, n, then id, token pairs. */
  rtcvObRelease: `${COMMON}
local owner, n = ARGV[1], tonumber(ARGV[2])
for i = 0, n - 1 do
  local id = ARGV[3 + i * 2]
  local v = held(id, ARGV[4 + i * 2], owner)
  if v then
    redis.call('HSET', P .. 'e:' .. id, 'o', '', 'u', 0, 'tk', token())
    redis.call('ZADD', P .. 'q:' .. v[3], v[4], id)
  end
end
return n`,
  /** Returns per channel: name, pending, dead, delivered, err, oldest createdAt (or ''). */
  rtcvObStatus: `${COMMON}
local out = {}
for _, ch in ipairs(redis.call('SMEMBERS', P .. 'channels')) do
  local c = redis.call('HMGET', P .. 'n:' .. ch, 'pending', 'dead', 'delivered', 'err')
  local oldest = redis.call('ZRANGE', P .. 'age:' .. ch, 0, 0, 'WITHSCORES')
  out[#out + 1] = ch
  out[#out + 1] = c[1] or '0'
  out[#out + 1] = c[2] or '0'
  out[#out + 1] = c[3] or '0'
  out[#out + 1] = c[4] or ''
  out[#out + 1] = oldest[2] or ''
end
return out`,
  /** ARGV: limit. Returns per dead letter: channel, route, label, count, reason, at. */
  rtcvObDead: `${COMMON}
local out = {}
for _, id in ipairs(redis.call('ZREVRANGE', P .. 'dead', 0, tonumber(ARGV[1]) - 1)) do
  local d = redis.call('HMGET', P .. 'd:' .. id, 'ch', 'r', 'l', 'n', 'reason', 'at')
  for i = 1, 6 do out[#out + 1] = d[i] or '' end
end
return out`,
} as const;

type ScriptName = keyof typeof SCRIPTS;
type Arg = string | number | Buffer;
type Scripted = Record<string, (...args: Arg[]) => Promise<unknown>>;

/** Defines the scripts on a client once (ioredis sends them by SHA and reloads them after a Redis restart). */
const defined = new WeakSet<Redis>();
function defineScripts(client: Redis): void {
  if (defined.has(client)) return;
  for (const [name, lua] of Object.entries(SCRIPTS)) client.defineCommand(name, { numberOfKeys: 0, lua });
  defined.add(client);
}

const text = (value: unknown): string =>
  Buffer.isBuffer(value) ? value.toString("utf8") : String(value ?? "");
const bytes = (payload: Uint8Array): Buffer =>
  Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);

/** The outbox's storage on the fleet's Redis; see the module documentation. */
export class RedisOutboxStore implements OutboxStore {
  readonly #connection: RedisConnection;
  readonly #batcher: RedisBatcher;

  /** Works over the store's connection; puts go through its batcher (pipelined lines share round trips). */
  constructor(connection: RedisConnection, batcher: RedisBatcher) {
    this.#connection = connection;
    this.#batcher = batcher;
    defineScripts(connection.client);
  }

  /** Runs one script through the connection (its checks, timeout and errors naming the server). */
  #run(name: ScriptName, args: Arg[], buffers = false): Promise<unknown> {
    return this.#connection.call((client) =>
      (client as unknown as Scripted)[buffers ? `${name}Buffer` : name](...args)
    );
  }

  /**
   * `alsoCommit` is a `RedisCommit` (`redis_commit.ts`) (a matched CV's cache entry), applied in the put's script: one
   * atomic step with the entries. Deno.Kv mutations (its dedupe marks) have no place here: on Redis the
   * dedupe index claims its ids itself (`redis_dedupe_index.ts`).
   */
  async put(
    entries: readonly NewOutboxEntry[],
    owner: string,
    until: number,
    now: number,
    alsoCommit?: unknown,
  ): Promise<LeasedEntry[]> {
    if (Array.isArray(alsoCommit) && alsoCommit.length > 0) {
      throw new Error("the Redis outbox cannot commit Deno.Kv mutations with its entries");
    }
    const sets = isRedisCommit(alsoCommit) ? alsoCommit.setPx : [];
    if (entries.length === 0 && sets.length === 0) return [];
    const args: Arg[] = [owner, until, now, entries.length];
    for (const entry of entries) {
      args.push(
        entry.channel,
        entry.key === null ? "0" : "1",
        entry.key ?? "",
        entry.route,
        entry.label,
        entry.count,
        bytes(entry.payload),
      );
    }
    args.push(sets.length);
    for (const [key, value, ms] of sets) args.push(key, value, ms);
    const [reply] = await this.#batcher.run(1, (pipeline) => {
      (pipeline as unknown as Record<string, (...a: Arg[]) => void>).rtcvObPut(...args);
    });
    const ids = (reply as unknown[]).map(text);
    return entries.map(({ payload, ...fields }, index) => {
      const id = ids[index * 2];
      const fresh = { attempts: 0, refusal: null, refusals: 0, lastError: null };
      const entry: OutboxEntry = { ...fields, id, createdAt: now, nextAt: now, ...fresh };
      return { entry, lease: { channel: fields.channel, id, token: ids[index * 2 + 1] }, payload };
    });
  }

  async take(
    channel: string,
    options: { owner: string; now: number; until: number; limit: number; skip: ReadonlySet<string> },
  ): Promise<{ taken: LeasedEntry[]; nextCheckAt: number | null }> {
    const { owner, now, until, limit, skip } = options;
    const reply = await this.#run(
      "rtcvObTake",
      [channel, owner, now, until, Math.max(0, limit), skip.size, ...skip],
      true,
    ) as unknown[];
    const next = Number(reply[0]);
    const taken: LeasedEntry[] = [];
    for (let i = 1; i < reply.length; i += 2) {
      const id = text(reply[i]);
      const flat = reply[i + 1] as unknown[];
      const fields = new Map<string, unknown>();
      for (let j = 0; j < flat.length; j += 2) fields.set(text(flat[j]), flat[j + 1]);
      taken.push(leasedOf(channel, id, fields));
    }
    return { taken, nextCheckAt: next < 0 ? null : next };
  }

  async renew(leases: readonly Lease[], owner: string, until: number): Promise<(Lease | null)[]> {
    if (leases.length === 0) return [];
    const reply = await this.#run("rtcvObRenew", [owner, until, leases.length, ...pairs(leases)]) as string[];
    return leases.map((lease, index) =>
      reply[index] === "" ? null : { ...lease, token: String(reply[index]) }
    );
  }

  async ack(leases: readonly Lease[], owner: string): Promise<void> {
    if (leases.length > 0) await this.#run("rtcvObAck", [owner, leases.length, ...pairs(leases)]);
  }

  async reschedule(lease: Lease, owner: string, change: Reschedule): Promise<void> {
    await this.#run("rtcvObReschedule", [
      owner,
      lease.id,
      lease.token,
      change.nextAt,
      change.attempts,
      change.refusal === null ? "0" : "1",
      change.refusal ?? "",
      change.refusals,
      change.lastError,
    ]);
  }

  async bury(lease: Lease, owner: string, reason: string, at: number): Promise<void> {
    await this.#run("rtcvObBury", [owner, lease.id, lease.token, reason, at]);
  }

  async release(leases: readonly Lease[], owner: string): Promise<void> {
    if (leases.length > 0) await this.#run("rtcvObRelease", [owner, leases.length, ...pairs(leases)]);
  }

  async status(): Promise<Map<string, ChannelCounts>> {
    const reply = (await this.#run("rtcvObStatus", [])) as unknown[];
    const status = new Map<string, ChannelCounts>();
    for (let i = 0; i < reply.length; i += 6) {
      const pending = Number(text(reply[i + 1])) || 0;
      const dead = Number(text(reply[i + 2])) || 0;
      const error = text(reply[i + 4]);
      const oldest = text(reply[i + 5]);
      status.set(text(reply[i]), {
        pending,
        dead,
        delivered: Number(text(reply[i + 3])) || 0,
        oldestAt: pending > 0 && oldest !== "" ? Number(oldest) : null,
        lastError: (pending > 0 || dead > 0) && error !== "" ? error : null,
      });
    }
    return status;
  }

  async deadLetters(limit: number): Promise<DeadLetterRecord[]> {
    if (limit <= 0) return [];
    const reply = ((await this.#run("rtcvObDead", [limit])) as unknown[]).map(text);
    const letters: DeadLetterRecord[] = [];
    for (let i = 0; i < reply.length; i += 6) {
      letters.push({
        channel: reply[i],
        route: reply[i + 1] as OutboxRoute,
        label: reply[i + 2],
        count: Number(reply[i + 3]) || 0,
        reason: reply[i + 4],
        at: Number(reply[i + 5]) || 0,
      });
    }
    return letters;
  }
}

function pairs(leases: readonly Lease[]): string[] {
  return leases.flatMap((lease) => [lease.id, lease.token]);
}

function leasedOf(channel: string, id: string, fields: Map<string, unknown>): LeasedEntry {
  const field = (name: string) => fields.has(name) ? text(fields.get(name)) : null;
  const number = (name: string) => Number(field(name) ?? 0) || 0;
  const payload = fields.get("p");
  const entry: OutboxEntry = {
    id,
    channel,
    key: field("k"),
    route: (field("r") ?? "scanCV") as OutboxRoute,
    label: field("l") ?? "",
    count: number("n"),
    createdAt: number("c"),
    nextAt: number("t"),
    attempts: number("a"),
    refusal: field("f"),
    refusals: number("fc"),
    lastError: field("e"),
  };
  const body = Buffer.isBuffer(payload) ? new Uint8Array(payload) : new TextEncoder().encode(text(payload));
  return { entry, lease: { channel, id, token: field("tk") ?? "" }, payload: body };
}
