import { globMatcher } from "./glob.ts";
import type { Entry, Keyspace } from "./keyspace.ts";
import { Errors, type Reply, RespError, Status } from "./replies.ts";

/** What a command may reach besides the keys: the script cache and runner. */
export interface ScriptHost {
  /** EVAL: `args` = numkeys, keys…, argv…. */
  eval(script: string, args: readonly string[]): Reply;
  evalsha(sha: string, args: readonly string[]): Reply;
  load(script: string): string;
  exists(sha: string): boolean;
  flush(): void;
}

export interface CommandContext {
  readonly ks: Keyspace;
  readonly scripts: ScriptHost;
}

/** One command: Redis' arity (count with the name; negative: at least), and its code. */
export interface CommandSpec {
  readonly arity: number;
  /** Not callable from a script (EVAL in a script, MULTI, …). */
  readonly noScript?: boolean;
  run(ctx: CommandContext, a: readonly string[]): Reply;
}

const OK = new Status("OK");
const I64_MAX = 2n ** 63n - 1n;
const I64_MIN = -(2n ** 63n);
/** Redis' string2ll: no sign on zero, no leading zeros or spaces, at most 19 digits. */
const I64_RE = /^(?:0|-?[1-9][0-9]{0,18})$/;

/** Redis' integer parse, or undefined. */
function toI64(s: string): bigint | undefined {
  if (!I64_RE.test(s)) return undefined;
  const n = BigInt(s);
  return n > I64_MAX || n < I64_MIN ? undefined : n;
}

function intArg(s: string): bigint {
  const n = toI64(s);
  if (n === undefined) throw new RespError(Errors.notInteger);
  return n;
}

/** A small integer argument (counts, indexes) as a number. */
const numArg = (s: string): number => Number(intArg(s));

function incrBy(current: string | undefined, by: bigint, notInt: string): bigint {
  const base = current === undefined ? 0n : toI64(current);
  if (base === undefined) throw new RespError(notInt);
  const next = base + by;
  if (next > I64_MAX || next < I64_MIN) throw new RespError(Errors.overflow);
  return next;
}

/** An integer reply: exact below 2^53, as lossy as ioredis' own parse beyond. */
const int = (n: bigint): number => Number(n);

/** Absolute expiry from a relative or absolute argument, as Redis checks it. */
function expiryFrom(arg: string, unitMs: number, relative: boolean, now: number, cmd: string): number {
  const n = intArg(arg);
  const ms = n * BigInt(unitMs);
  const at = relative ? ms + BigInt(now) : ms;
  if (ms > I64_MAX || ms < I64_MIN || at > I64_MAX || at < I64_MIN)
    throw new RespError(Errors.expireTime(cmd));
  return Number(at);
}

function hashFor(ks: Keyspace, key: string): Extract<Entry, { t: "hash" }> {
  const h = ks.typed(key, "hash");
  if (h !== undefined) return h;
  const e: Entry = { t: "hash", v: new Map(), at: 0 };
  ks.put(key, e);
  return e;
}

function setFor(ks: Keyspace, key: string): Extract<Entry, { t: "set" }> {
  const s = ks.typed(key, "set");
  if (s !== undefined) return s;
  const e: Entry = { t: "set", v: new Set(), at: 0 };
  ks.put(key, e);
  return e;
}

function listFor(ks: Keyspace, key: string): Extract<Entry, { t: "list" }> {
  const l = ks.typed(key, "list");
  if (l !== undefined) return l;
  const e: Entry = { t: "list", v: [], at: 0 };
  ks.put(key, e);
  return e;
}

/** Redis deletes a hash, set or list when its last element goes. */
function dropIfEmpty(ks: Keyspace, key: string, e: Entry): void {
  if (e.t !== "string" && (e.t === "list" ? e.v.length : e.v.size) === 0) ks.remove(key);
}

function set({ ks }: CommandContext, a: readonly string[]): Reply {
  const [key, value] = a as [string, string];
  let cond: "NX" | "XX" | undefined;
  let get = false;
  let keepTtl = false;
  let at: number | undefined;
  for (let i = 2; i < a.length; i++) {
    const opt = (a[i] as string).toUpperCase();
    const hasNext = i + 1 < a.length;
    if ((opt === "NX" || opt === "XX") && cond === undefined) cond = opt;
    else if (opt === "GET" && !get) get = true;
    else if (opt === "KEEPTTL" && at === undefined && !keepTtl) keepTtl = true;
    else if (
      (opt === "EX" || opt === "PX" || opt === "EXAT" || opt === "PXAT") &&
      hasNext &&
      at === undefined
    ) {
      if (keepTtl) throw new RespError(Errors.syntax);
      const arg = a[++i] as string;
      const n = intArg(arg);
      if (n <= 0n) throw new RespError(Errors.expireTime("set"));
      const unit = opt === "EX" || opt === "EXAT" ? 1000 : 1;
      at = expiryFrom(arg, unit, opt === "EX" || opt === "PX", ks.now, "set");
    } else throw new RespError(Errors.syntax);
  }
  const prev = ks.lookup(key);
  if (get && prev !== undefined && prev.t !== "string") throw new RespError(Errors.wrongType);
  const old = get ? ((prev?.v as string | undefined) ?? null) : null;
  if ((cond === "NX" && prev !== undefined) || (cond === "XX" && prev === undefined)) return get ? old : null;
  const expiry = at ?? (keepTtl && prev !== undefined ? prev.at : 0);
  if (expiry !== 0 && expiry <= ks.now) {
    // EXAT/PXAT in the past: Redis stores nothing, and deletes what was there.
    ks.remove(key);
  } else ks.put(key, { t: "string", v: value, at: expiry });
  return get ? old : OK;
}

function incr(ks: Keyspace, key: string, by: bigint): Reply {
  const e = ks.typed(key, "string");
  const next = incrBy(e?.v, by, Errors.notInteger);
  if (e === undefined) ks.put(key, { t: "string", v: next.toString(), at: 0 });
  else ks.setString(e, next.toString());
  return int(next);
}

function expire(ks: Keyspace, a: readonly string[], unitMs: number, relative: boolean, cmd: string): Reply {
  const [key, arg] = a as [string, string];
  const at = expiryFrom(arg, unitMs, relative, ks.now, cmd);
  let flag: string | undefined;
  for (let i = 2; i < a.length; i++) {
    const f = (a[i] as string).toUpperCase();
    if (!["NX", "XX", "GT", "LT"].includes(f)) throw new RespError(`ERR Unsupported option ${a[i]}`);
    if (flag !== undefined && flag !== f)
      throw new RespError("ERR NX and XX, GT or LT options at the same time are not compatible");
    flag = f;
  }
  const e = ks.lookup(key);
  if (e === undefined) return 0;
  const cur = e.at === 0 ? Number.POSITIVE_INFINITY : e.at;
  if (
    (flag === "NX" && e.at !== 0) ||
    (flag === "XX" && e.at === 0) ||
    (flag === "GT" && at <= cur) ||
    (flag === "LT" && at >= cur)
  )
    return 0;
  if (at <= ks.now) ks.remove(key);
  else ks.expireAt(e, at);
  return 1;
}

function ttl(ks: Keyspace, key: string, unitMs: number): Reply {
  const e = ks.lookup(key);
  if (e === undefined) return -2;
  if (e.at === 0) return -1;
  const left = e.at - ks.now;
  return unitMs === 1 ? left : Math.floor((left + 500) / 1000);
}

function scan({ ks }: CommandContext, a: readonly string[]): Reply {
  const cursor = toI64(a[0] as string);
  if (cursor === undefined || cursor < 0n) throw new RespError("ERR invalid cursor");
  let match: RegExp | undefined;
  let type: string | undefined;
  for (let i = 1; i < a.length; i += 2) {
    const opt = (a[i] as string).toUpperCase();
    const v = a[i + 1];
    if (v === undefined) throw new RespError(Errors.syntax);
    if (opt === "MATCH") match = globMatcher(v);
    else if (opt === "COUNT") {
      if (numArg(v) < 1) throw new RespError(Errors.syntax);
    } else if (opt === "TYPE") type = v.toLowerCase();
    else throw new RespError(Errors.syntax);
  }
  // One pass returns every key, cursor 0: a SCAN is allowed to return more than COUNT.
  const out: string[] = [];
  if (cursor === 0n)
    for (const k of ks.keys())
      if ((match === undefined || match.test(k)) && (type === undefined || ks.lookup(k)?.t === type))
        out.push(k);
  return ["0", out];
}

const script: CommandSpec["run"] = ({ scripts }, a) => {
  const sub = (a[0] as string).toUpperCase();
  if (sub === "LOAD" && a.length === 2) return scripts.load(a[1] as string);
  if (sub === "EXISTS" && a.length >= 2) return a.slice(1).map((sha) => (scripts.exists(sha) ? 1 : 0));
  if (sub === "FLUSH" && a.length <= 2) {
    scripts.flush();
    return OK;
  }
  throw new RespError(`ERR unknown subcommand or wrong number of arguments for '${a[0]}'. Try SCRIPT HELP.`);
};

const spec = (arity: number, run: CommandSpec["run"], noScript = false): CommandSpec => ({
  arity,
  run,
  noScript,
});

/**
 * The commands the simulated Redis knows: those the project's code sends (directly, in
 * MULTI, in pipelines and from its Lua scripts) and those its tests and tools read with.
 * Keyed by upper-case name.
 */
export const COMMANDS: ReadonlyMap<string, CommandSpec> = new Map<string, CommandSpec>([
  // strings
  ["GET", spec(2, ({ ks }, a) => ks.typed(a[0] as string, "string")?.v ?? null)],
  ["SET", spec(-3, set)],
  ["SETNX", spec(3, (ctx, a) => (set(ctx, [a[0] as string, a[1] as string, "NX"]) === null ? 0 : 1))],
  [
    "MGET",
    spec(-2, ({ ks }, a) =>
      a.map((k) => {
        const e = ks.lookup(k);
        return e?.t === "string" ? e.v : null;
      }),
    ),
  ],
  [
    "MSET",
    spec(-3, ({ ks }, a) => {
      if (a.length % 2 !== 0) throw new RespError(Errors.arity("mset"));
      for (let i = 0; i < a.length; i += 2)
        ks.put(a[i] as string, { t: "string", v: a[i + 1] as string, at: 0 });
      return OK;
    }),
  ],
  ["INCR", spec(2, ({ ks }, a) => incr(ks, a[0] as string, 1n))],
  ["DECR", spec(2, ({ ks }, a) => incr(ks, a[0] as string, -1n))],
  ["INCRBY", spec(3, ({ ks }, a) => incr(ks, a[0] as string, intArg(a[1] as string)))],
  ["DECRBY", spec(3, ({ ks }, a) => incr(ks, a[0] as string, -intArg(a[1] as string)))],
  // keys
  ["DEL", spec(-2, ({ ks }, a) => a.reduce((n, k) => n + (ks.remove(k) ? 1 : 0), 0))],
  ["UNLINK", spec(-2, ({ ks }, a) => a.reduce((n, k) => n + (ks.remove(k) ? 1 : 0), 0))],
  ["EXISTS", spec(-2, ({ ks }, a) => a.reduce((n, k) => n + (ks.lookup(k) ? 1 : 0), 0))],
  ["EXPIRE", spec(-3, ({ ks }, a) => expire(ks, a, 1000, true, "expire"))],
  ["PEXPIRE", spec(-3, ({ ks }, a) => expire(ks, a, 1, true, "pexpire"))],
  ["EXPIREAT", spec(-3, ({ ks }, a) => expire(ks, a, 1000, false, "expireat"))],
  ["PEXPIREAT", spec(-3, ({ ks }, a) => expire(ks, a, 1, false, "pexpireat"))],
  ["TTL", spec(2, ({ ks }, a) => ttl(ks, a[0] as string, 1000))],
  ["PTTL", spec(2, ({ ks }, a) => ttl(ks, a[0] as string, 1))],
  [
    "PERSIST",
    spec(2, ({ ks }, a) => {
      const e = ks.lookup(a[0] as string);
      if (e === undefined || e.at === 0) return 0;
      ks.expireAt(e, 0);
      return 1;
    }),
  ],
  ["TYPE", spec(2, ({ ks }, a) => new Status(ks.lookup(a[0] as string)?.t ?? "none"))],
  [
    "KEYS",
    spec(2, ({ ks }, a) => {
      const m = globMatcher(a[0] as string);
      return [...ks.keys()].filter((k) => m.test(k));
    }),
  ],
  ["SCAN", spec(-2, scan)],
  ["DBSIZE", spec(1, ({ ks }) => ks.size)],
  [
    "FLUSHALL",
    spec(-1, ({ ks }) => {
      ks.flush();
      return OK;
    }),
  ],
  [
    "FLUSHDB",
    spec(-1, ({ ks }) => {
      ks.flush();
      return OK;
    }),
  ],
  // hashes
  [
    "HSET",
    spec(-4, ({ ks }, a) => {
      if (a.length % 2 !== 1) throw new RespError(Errors.arity("hset"));
      const h = hashFor(ks, a[0] as string);
      let added = 0;
      for (let i = 1; i < a.length; i += 2) if (ks.hset(h, a[i] as string, a[i + 1] as string)) added++;
      return added;
    }),
  ],
  [
    "HMSET",
    spec(-4, ({ ks }, a) => {
      if (a.length % 2 !== 1) throw new RespError(Errors.arity("hmset"));
      const h = hashFor(ks, a[0] as string);
      for (let i = 1; i < a.length; i += 2) ks.hset(h, a[i] as string, a[i + 1] as string);
      return OK;
    }),
  ],
  [
    "HSETNX",
    spec(4, ({ ks }, a) => {
      const h = hashFor(ks, a[0] as string);
      if (h.v.has(a[1] as string)) return 0;
      ks.hset(h, a[1] as string, a[2] as string);
      return 1;
    }),
  ],
  ["HGET", spec(3, ({ ks }, a) => ks.typed(a[0] as string, "hash")?.v.get(a[1] as string) ?? null)],
  [
    "HMGET",
    spec(-3, ({ ks }, a) => {
      const h = ks.typed(a[0] as string, "hash");
      return a.slice(1).map((f) => h?.v.get(f) ?? null);
    }),
  ],
  [
    "HGETALL",
    spec(2, ({ ks }, a) => {
      const out: string[] = [];
      for (const [f, v] of ks.typed(a[0] as string, "hash")?.v ?? []) out.push(f, v);
      return out;
    }),
  ],
  ["HKEYS", spec(2, ({ ks }, a) => [...(ks.typed(a[0] as string, "hash")?.v.keys() ?? [])])],
  ["HVALS", spec(2, ({ ks }, a) => [...(ks.typed(a[0] as string, "hash")?.v.values() ?? [])])],
  ["HLEN", spec(2, ({ ks }, a) => ks.typed(a[0] as string, "hash")?.v.size ?? 0)],
  ["HEXISTS", spec(3, ({ ks }, a) => (ks.typed(a[0] as string, "hash")?.v.has(a[1] as string) ? 1 : 0))],
  [
    "HDEL",
    spec(-3, ({ ks }, a) => {
      const h = ks.typed(a[0] as string, "hash");
      if (h === undefined) return 0;
      let n = 0;
      for (const f of a.slice(1)) if (ks.hdel(h, f)) n++;
      dropIfEmpty(ks, a[0] as string, h);
      return n;
    }),
  ],
  [
    "HINCRBY",
    spec(4, ({ ks }, a) => {
      const by = intArg(a[2] as string);
      const existing = ks.typed(a[0] as string, "hash");
      const next = incrBy(existing?.v.get(a[1] as string), by, Errors.hashNotInteger);
      ks.hset(existing ?? hashFor(ks, a[0] as string), a[1] as string, next.toString());
      return int(next);
    }),
  ],
  // sets
  [
    "SADD",
    spec(-3, ({ ks }, a) => {
      const s = setFor(ks, a[0] as string);
      let n = 0;
      for (const m of a.slice(1)) if (ks.sadd(s, m)) n++;
      return n;
    }),
  ],
  [
    "SREM",
    spec(-3, ({ ks }, a) => {
      const s = ks.typed(a[0] as string, "set");
      if (s === undefined) return 0;
      let n = 0;
      for (const m of a.slice(1)) if (ks.srem(s, m)) n++;
      dropIfEmpty(ks, a[0] as string, s);
      return n;
    }),
  ],
  ["SMEMBERS", spec(2, ({ ks }, a) => [...(ks.typed(a[0] as string, "set")?.v ?? [])])],
  ["SISMEMBER", spec(3, ({ ks }, a) => (ks.typed(a[0] as string, "set")?.v.has(a[1] as string) ? 1 : 0))],
  ["SCARD", spec(2, ({ ks }, a) => ks.typed(a[0] as string, "set")?.v.size ?? 0)],
  // lists (the runtime's test stages record deliveries in one)
  [
    "RPUSH",
    spec(-3, ({ ks }, a) => {
      const l = listFor(ks, a[0] as string);
      ks.setList(l, [...l.v, ...a.slice(1)]);
      return l.v.length;
    }),
  ],
  [
    "LPUSH",
    spec(-3, ({ ks }, a) => {
      const l = listFor(ks, a[0] as string);
      ks.setList(l, [...a.slice(1).reverse(), ...l.v]);
      return l.v.length;
    }),
  ],
  ["LLEN", spec(2, ({ ks }, a) => ks.typed(a[0] as string, "list")?.v.length ?? 0)],
  [
    "LRANGE",
    spec(4, ({ ks }, a) => {
      const v = ks.typed(a[0] as string, "list")?.v ?? [];
      let start = numArg(a[1] as string);
      let stop = numArg(a[2] as string);
      if (start < 0) start = Math.max(0, v.length + start);
      if (stop < 0) stop = v.length + stop;
      return start > stop ? [] : v.slice(start, stop + 1);
    }),
  ],
  // scripts
  ["EVAL", spec(-3, ({ scripts }, a) => scripts.eval(a[0] as string, a.slice(1)), true)],
  ["EVALSHA", spec(-3, ({ scripts }, a) => scripts.evalsha(a[0] as string, a.slice(1)), true)],
  ["SCRIPT", spec(-2, script, true)],
  // server
  ["PING", spec(-1, (_, a) => (a.length === 0 ? new Status("PONG") : (a[0] as string)))],
  ["ECHO", spec(2, (_, a) => a[0] as string)],
  ["TIME", spec(1, ({ ks }) => [String(Math.floor(ks.now / 1000)), String((ks.now % 1000) * 1000)])],
  [
    "SELECT",
    spec(
      2,
      (_, a) => {
        if (a[0] !== "0") throw new RespError("ERR DB index is out of range");
        return OK;
      },
      true,
    ),
  ],
  [
    "CONFIG",
    spec(
      -2,
      (_, a) => {
        const sub = (a[0] as string).toUpperCase();
        if (sub === "GET") return [];
        if (sub === "SET" || sub === "RESETSTAT") return OK;
        throw new RespError(`ERR unknown subcommand '${a[0]}'. Try CONFIG HELP.`);
      },
      true,
    ),
  ],
  ["INFO", spec(-1, () => "# Server\r\nredis_version:7.0.15\r\nredis_mode:standalone\r\n", true)],
]);

/** A thrown error reply as a value; anything else (a bug in the simulator) is rethrown. */
export function asReply(err: unknown): RespError {
  if (err instanceof RespError) return err;
  throw err;
}
