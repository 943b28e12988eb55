/**
 * The Redis scripts of the ledger's read projection. Each is one atomic step; every key it
 * touches is passed in KEYS. Amounts travel as decimal strings: Lua 5.1 numbers are
 * doubles and would print large values in exponent form, which HINCRBY refuses. No script
 * decides anything: decisions are made on the fold of LEDGER (decide.ts).
 *
 * Outcome hash `ledger:outcome:<transferId>` fields: status (posted|declined),
 * detail (risk decision or decline reason), cause (input eventId), from, to,
 * amount, currency, and once reversed rev_reason, rev_cause.
 *
 * APPLY first checks the epoch key: absent means the projection was wiped or is being
 * restored, so it refuses (`not-ready`).
 */

/** Negates a decimal integer string without going through a double. */
const NEGATE = `
local function negate(s)
  if s == '0' then return '0' end
  if string.sub(s, 1, 1) == '-' then return string.sub(s, 2) end
  return '-' .. s
end
`;

/**
 * The projection's step: apply one LEDGER event at sequence `seq` to Redis, strictly after
 * the one before it. Redis is a read model of the log, written only here and by a restore;
 * a Redis that lost its latest writes (a failover to a lagging replica, a lost AOF tail, a
 * backup) holds an older applied-seq, and the next step finds the gap instead of writing
 * over it. Effects are idempotent by transferId as in fold.ts.
 * KEYS: epoch, applied-seq, applied-id, outcome, bal:from, bal:to, accounts
 * ARGV: seq, kind (posted|declined|reversed|skip), cause, from, to, amount, -amount, currency,
 *   detail, event id, outcome ttl ms (0: the outcome hash keeps no TTL: a skipped message; outcome-ttl.ts)
 * → {'not-ready'} | {'applied'|'duplicate'|'ignored'} | {'gap', applied-seq} | {'mismatch', from, to}
 */
export const APPLY = `${NEGATE}
if redis.call('EXISTS', KEYS[1]) == 0 then return {'not-ready'} end
local seq = tonumber(ARGV[1])
local applied = tonumber(redis.call('GET', KEYS[2]) or '0')
if seq <= applied then return {'duplicate'} end
if seq ~= applied + 1 then return {'gap', tostring(applied)} end
local result = 'ignored'
if ARGV[2] == 'reversed' then
  local o = redis.call('HMGET', KEYS[4], 'status', 'from', 'to', 'amount', 'currency', 'rev_reason')
  if o[1] ~= 'posted' then
    result = 'ignored'
  elseif o[6] then
    result = 'duplicate'
  elseif o[2] ~= ARGV[4] or o[3] ~= ARGV[5] then
    return {'mismatch', o[2], o[3]}
  else
    redis.call('HINCRBY', KEYS[5], o[5], o[4])
    redis.call('HINCRBY', KEYS[6], o[5], negate(o[4]))
    redis.call('HSET', KEYS[4], 'rev_reason', ARGV[9], 'rev_cause', ARGV[3])
    if tonumber(ARGV[11]) > 0 then redis.call('PEXPIRE', KEYS[4], ARGV[11]) end
    result = 'applied'
  end
elseif ARGV[2] == 'posted' or ARGV[2] == 'declined' then
  if redis.call('EXISTS', KEYS[4]) == 1 then
    result = 'duplicate'
  else
    redis.call('HSET', KEYS[4], 'status', ARGV[2], 'detail', ARGV[9], 'cause', ARGV[3],
      'from', ARGV[4], 'to', ARGV[5], 'amount', ARGV[6], 'currency', ARGV[8])
    if tonumber(ARGV[11]) > 0 then redis.call('PEXPIRE', KEYS[4], ARGV[11]) end
    if ARGV[2] == 'posted' then
      redis.call('HINCRBY', KEYS[5], ARGV[8], ARGV[7])
      redis.call('HINCRBY', KEYS[6], ARGV[8], ARGV[6])
      redis.call('SADD', KEYS[7], ARGV[4], ARGV[5])
    end
    result = 'applied'
  end
end
redis.call('SET', KEYS[2], ARGV[1])
redis.call('SET', KEYS[3], ARGV[10])
return {result}
`;

/**
 * A batch of writes of a restore, fenced by the restore lock: nothing is written
 * once another process owns the lock (ours expired), so two restorers never mix.
 * Batches are numbered from 1 and each records its number in the batch counter, in the same
 * atomic step as its writes: batch n writes only after batch n − 1 is there. A Redis that lost
 * its latest writes in the middle of a restore (a failover to a lagging replica) loses a suffix
 * of them, counter included; the next batch, or the commit, finds the counter behind and the
 * restore starts over instead of committing a partial copy. Batch 1 starts the count.
 * KEYS: lock, counter, k1, k2, …   ARGV: owner, batch number, then per key: op, n, n args
 * (op one of DEL, SET, HSET, SADD, PEXPIRE) → 1 written | 0 lock lost | -1 an earlier batch lost
 */
export const FENCED_WRITE = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
local n = tonumber(ARGV[2])
if n > 1 and tonumber(redis.call('GET', KEYS[2]) or '0') ~= n - 1 then return -1 end
redis.call('SET', KEYS[2], ARGV[2])
local allowed = { DEL = true, SET = true, HSET = true, SADD = true, PEXPIRE = true }
local a = 3
for k = 3, #KEYS do
  local op = ARGV[a]
  local n = tonumber(ARGV[a + 1])
  if not allowed[op] then return redis.error_reply('op ' .. tostring(op) .. ' not allowed') end
  local args = {}
  for i = 1, n do args[i] = ARGV[a + 1 + i] end
  if op == 'DEL' then redis.call('DEL', KEYS[k]) else redis.call(op, KEYS[k], unpack(args)) end
  a = a + 2 + n
end
return 1
`;

/**
 * Ends a restore: applied-seq, applied-id and the epoch are set and the lock released in
 * one step, so a reader sees either no epoch or the whole restored state; only when every
 * batch of the restore is there (the counter holds the last one's number, FENCED_WRITE).
 * KEYS: lock, applied-seq, epoch, applied-id, counter   ARGV: owner, seq, epoch value, event id,
 * batches → 1 | 0 lock lost | -1 a batch lost
 */
export const COMMIT_RESTORE = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if redis.call('GET', KEYS[5]) ~= ARGV[5] then return -1 end
redis.call('DEL', KEYS[5])
redis.call('SET', KEYS[2], ARGV[2])
redis.call('SET', KEYS[3], ARGV[3])
redis.call('SET', KEYS[4], ARGV[4])
redis.call('DEL', KEYS[1])
return 1
`;

/** KEYS: lock   ARGV: owner, ttl ms → 1 renewed | 0 not ours */
export const RENEW_LOCK = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
`;

/** KEYS: lock   ARGV: owner → 1 released | 0 not ours */
/**
 * Moves the restore lock from `stale` (an earlier attempt of the same process, which no longer
 * restores) to `owner`, only if `stale` still holds it.
 * KEYS: lock   ARGV: stale owner, owner, ttl ms → 1 taken over | 0 not held by stale
 */
export const TAKE_OVER_LOCK = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
`;

export const RELEASE_LOCK = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
return 1
`;
