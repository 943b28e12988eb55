/**
 * The ledger's Redis scripts. Each is one atomic step; every key it touches is
 * passed in KEYS. Amounts travel as decimal strings: Lua 5.1 numbers are doubles
 * and would print large values in exponent form, which HINCRBY refuses.
 *
 * Outcome hash `ledger:outcome:<transferId>` fields: status (posted|declined),
 * detail (risk decision or decline reason), cause (input eventId), from, to,
 * amount, currency, and once reversed rev_reason, rev_cause.
 *
 * Every script that decides or applies first checks the epoch key: absent means the
 * projection was wiped or is being restored, so the script refuses (`not-ready`).
 */

/**
 * Decide and post one scored transfer.
 * KEYS: epoch, outcome, bal:from, bal:to, accounts
 * ARGV: cause, from, to, amount, -amount, currency, decision, external account
 * → {'not-ready'} | {'new'|'replay', status, detail, cause}
 */
export const POST = `
if redis.call('EXISTS', KEYS[1]) == 0 then return {'not-ready'} end
local o = redis.call('HMGET', KEYS[2], 'status', 'detail', 'cause')
if o[1] then return {'replay', o[1], o[2], o[3]} end
local function record(status, detail)
  redis.call('HSET', KEYS[2], 'status', status, 'detail', detail, 'cause', ARGV[1],
    'from', ARGV[2], 'to', ARGV[3], 'amount', ARGV[4], 'currency', ARGV[6])
  return {'new', status, detail, ARGV[1]}
end
if ARGV[7] == 'deny' then return record('declined', 'risk_denied') end
if ARGV[2] ~= ARGV[3] then
  local amount = tonumber(ARGV[4])
  local fb = tonumber(redis.call('HGET', KEYS[3], ARGV[6]) or '0')
  local tb = tonumber(redis.call('HGET', KEYS[4], ARGV[6]) or '0')
  if (ARGV[2] ~= ARGV[8] and fb - amount < 0) or (ARGV[3] ~= ARGV[8] and tb + amount < 0) then
    return record('declined', 'insufficient_funds')
  end
end
redis.call('HINCRBY', KEYS[3], ARGV[6], ARGV[5])
redis.call('HINCRBY', KEYS[4], ARGV[6], ARGV[4])
redis.call('SADD', KEYS[5], ARGV[2], ARGV[3])
return record('posted', ARGV[7])
`;

/** Negates a decimal integer string without going through a double. */
const NEGATE = `
local function negate(s)
  if s == '0' then return '0' end
  if string.sub(s, 1, 1) == '-' then return string.sub(s, 2) end
  return '-' .. s
end
`;

/**
 * Reverse a posting once. Uses the stored posting's accounts and amount; KEYS name
 * the accounts the caller believes, and a mismatch asks it to call again.
 * KEYS: epoch, outcome, bal:from, bal:to
 * ARGV: cause, reason, from, to
 * → {'not-ready'} | {'unknown'} | {'not-posted', status, detail} | {'mismatch', from, to}
 *   | {'new'|'replay', reason, cause, from, to, amount, currency}
 */
export const REVERSE = `${NEGATE}
if redis.call('EXISTS', KEYS[1]) == 0 then return {'not-ready'} end
local o = redis.call('HMGET', KEYS[2], 'status', 'detail', 'from', 'to', 'amount', 'currency', 'rev_reason', 'rev_cause')
if not o[1] then return {'unknown'} end
if o[1] ~= 'posted' then return {'not-posted', o[1], o[2]} end
if o[7] then return {'replay', o[7], o[8], o[3], o[4], o[5], o[6]} end
if o[3] ~= ARGV[3] or o[4] ~= ARGV[4] then return {'mismatch', o[3], o[4]} end
redis.call('HINCRBY', KEYS[3], o[6], o[5])
redis.call('HINCRBY', KEYS[4], o[6], negate(o[5]))
redis.call('HSET', KEYS[2], 'rev_reason', ARGV[2], 'rev_cause', ARGV[1])
return {'new', ARGV[2], ARGV[1], o[3], o[4], o[5], o[6]}
`;

/**
 * The projector's step: make sure one LEDGER event's effect is in Redis (idempotent
 * by transferId, the same rules as fold.ts) and advance applied-seq.
 * KEYS: epoch, applied-seq, outcome, bal:from, bal:to, accounts
 * ARGV: seq, kind (posted|declined|reversed), cause, from, to, amount, -amount, currency, detail
 * → {'not-ready'} | {'applied'|'duplicate'|'ignored'} | {'mismatch', from, to}
 */
export const APPLY = `${NEGATE}
if redis.call('EXISTS', KEYS[1]) == 0 then return {'not-ready'} end
local result
if ARGV[2] == 'reversed' then
  local o = redis.call('HMGET', KEYS[3], 'status', 'from', 'to', 'amount', 'currency', 'rev_reason')
  if o[1] ~= 'posted' then
    result = 'ignored'
  elseif o[6] then
    result = 'duplicate'
  elseif o[2] ~= ARGV[4] or o[3] ~= ARGV[5] then
    return {'mismatch', o[2], o[3]}
  else
    redis.call('HINCRBY', KEYS[4], o[5], o[4])
    redis.call('HINCRBY', KEYS[5], o[5], negate(o[4]))
    redis.call('HSET', KEYS[3], 'rev_reason', ARGV[9], 'rev_cause', ARGV[3])
    result = 'applied'
  end
elseif redis.call('EXISTS', KEYS[3]) == 1 then
  result = 'duplicate'
else
  redis.call('HSET', KEYS[3], 'status', ARGV[2], 'detail', ARGV[9], 'cause', ARGV[3],
    'from', ARGV[4], 'to', ARGV[5], 'amount', ARGV[6], 'currency', ARGV[8])
  if ARGV[2] == 'posted' then
    redis.call('HINCRBY', KEYS[4], ARGV[8], ARGV[7])
    redis.call('HINCRBY', KEYS[5], ARGV[8], ARGV[6])
    redis.call('SADD', KEYS[6], ARGV[4], ARGV[5])
  end
  result = 'applied'
end
if tonumber(ARGV[1]) > tonumber(redis.call('GET', KEYS[2]) or '0') then
  redis.call('SET', KEYS[2], ARGV[1])
end
return {result}
`;

/**
 * A batch of writes of a restore, fenced by the restore lock: nothing is written
 * once another process owns the lock (ours expired), so two restorers never mix.
 * KEYS: lock, k1, k2, …   ARGV: owner, then per key: op, n, n args
 * (op one of DEL, SET, HSET, SADD) → 1 written | 0 lock lost
 */
export const FENCED_WRITE = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
local allowed = { DEL = true, SET = true, HSET = true, SADD = true }
local a = 2
for k = 2, #KEYS do
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
 * Ends a restore: applied-seq and the epoch are set and the lock released in one
 * step, so a decision sees either no epoch or the whole restored state.
 * KEYS: lock, applied-seq, epoch   ARGV: owner, seq, epoch value → 1 | 0 lock lost
 */
export const COMMIT_RESTORE = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[2], ARGV[2])
redis.call('SET', KEYS[3], ARGV[3])
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
export const RELEASE_LOCK = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
return 1
`;
