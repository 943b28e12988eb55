import { createHash } from "node:crypto";
import fengari, { type LuaState } from "fengari";
// After fengari's index, whose requires load its modules in the order their cycles need; a
// bundle (esbuild) then holds one copy of each, the one patched below.
import lobject from "fengari/src/lobject.js";
import lstring from "fengari/src/lstring.js";
import { type Reply, RespError, Status } from "./replies.ts";

const { lua, lauxlib, lualib, to_luastring } = fengari;

/**
 * C's `%.<p>g`, as Redis' Lua 5.1 prints numbers (`tostring`, `..`: p = 14) and as Redis
 * turns a number argument of `redis.call` into a string (p = 17).
 */
export function formatG(n: number, p: number): string {
  if (Number.isNaN(n)) return "-nan";
  if (!Number.isFinite(n)) return n > 0 ? "inf" : "-inf";
  if (n === 0) return Object.is(n, -0) ? "-0" : "0";
  let [mant, expPart] = n.toExponential(p - 1).split("e") as [string, string];
  const exp = Number(expPart);
  if (Number.isInteger(n) && exp >= p) {
    // toExponential rounds an exact tie up; C rounds it to even (1.2345678901234|5e14 → …234).
    const digits = BigInt(Math.abs(n)).toString();
    const rest = digits.slice(p);
    if (/^50*$/.test(rest) && Number(digits[p - 1]) % 2 === 0)
      mant = `${n < 0 ? "-" : ""}${digits[0]}.${digits.slice(1, p)}`;
  }
  if (exp < -4 || exp >= p) {
    const m = mant.includes(".") ? mant.replace(/\.?0+$/, "") : mant;
    const e = Math.abs(exp);
    return `${m}e${exp < 0 ? "-" : "+"}${e < 10 ? "0" : ""}${e}`;
  }
  const fixed = n.toFixed(Math.max(0, p - 1 - exp));
  return fixed.includes(".") ? fixed.replace(/\.?0+$/, "") : fixed;
}

// Lua 5.1 (Redis' Lua) has only doubles and prints 3.0 as "3"; fengari is Lua 5.3 and would
// print "3.0", into replies and keys. Its number-to-string conversion (tostring, `..`,
// lua_tolstring) goes through this one exported function: print as 5.1 does. Process-wide,
// and fengari is used by nothing else in the simulator.
lobject.luaO_tostring = (L, obj) => {
  const s = obj.ttisinteger() ? String(obj.value) : formatG(obj.value, 14);
  obj.setsvalue(lstring.luaS_bless(L, to_luastring(s)));
};

const encoder = new TextEncoder();
const decoder = new TextDecoder();
// Every key, argument and reply crosses here, most of them short and ASCII: copied byte by
// byte, which costs a fraction of a TextEncoder/TextDecoder call; anything else as UTF-8.
const luaString = (s: string): Uint8Array => {
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c > 127) return encoder.encode(s);
    out[i] = c;
  }
  return out;
};
const jsString = (u: Uint8Array | null): string => {
  if (u === null) return "";
  if (u.length > 1024) return decoder.decode(u);
  for (let i = 0; i < u.length; i++) if ((u[i] as number) > 127) return decoder.decode(u);
  return String.fromCharCode.apply(null, u as unknown as number[]);
};
/** Names pushed on every run. */
const KEYS = luaString("KEYS");
const ARGV = luaString("ARGV");
const ERR_HANDLER = luaString("__redis__err__handler");
const ERR = luaString("err");
const OK = luaString("ok");

/**
 * Runs a command from a script: the reply, or the error reply as a value (never thrown).
 */
export type ScriptDispatch = (name: string, args: string[]) => Reply;

// The sandbox Redis 7.0 gives scripts, on Lua 5.3: 5.1's names (unpack, loadstring,
// math.pow, …), numbers that behave as doubles where the project's scripts could tell
// (tonumber gives floats, so `t * 1000` does not wrap at 2^31 as fengari's integers do;
// %d formats any integral double), the redis table, Redis' error handler, and globals
// that cannot be created or read when absent.
const PRELUDE = `
local dbg = debug
debug = nil
dofile = nil
loadfile = nil
print = nil
unpack = table.unpack
loadstring = load
math.pow = function(a, b) return a ^ b end
math.log10 = function(x) return math.log(x, 10) end
math.mod = math.fmod
table.getn = function(t) return #t end
string.gfind = string.gmatch
local tn = tonumber
local ts = tostring
tostring = function(v)
  if type(v) == 'number' then return v .. '' end
  return ts(v)
end
tonumber = function(...)
  local n = tn(...)
  if n then return n + 0.0 end
  return n
end
local sfmt, sgsub, ssub, stype, sselect = string.format, string.gsub, string.sub, type, select
local toint = __jetmesh_toint
string.format = function(f, ...)
  local n = sselect('#', ...)
  if n == 0 or stype(f) ~= 'string' then return sfmt(f, ...) end
  local args = {...}
  local i = 0
  local f2 = sgsub(f, '%%[-+ #0]*%d*%.?%d*[%a%%]', function(spec)
    if spec == '%%' then return spec end
    i = i + 1
    local c = ssub(spec, -1)
    if (c == 'd' or c == 'i') and stype(args[i]) == 'number' then
      local v = toint(args[i])
      args[i] = v
      if stype(v) == 'string' then return ssub(spec, 1, -2) .. 's' end
    end
    return spec
  end)
  return sfmt(f2, table.unpack(args, 1, n))
end
redis = {
  call = __jetmesh_call,
  pcall = __jetmesh_pcall,
  sha1hex = __jetmesh_sha1hex,
  REDIS_VERSION = '7.0.15',
  REDIS_VERSION_NUM = 0x07000f,
  LOG_DEBUG = 0, LOG_VERBOSE = 1, LOG_NOTICE = 2, LOG_WARNING = 3,
  REPL_NONE = 0, REPL_AOF = 1, REPL_SLAVE = 2, REPL_REPLICA = 2, REPL_ALL = 3,
}
redis.log = function() end
redis.set_repl = function() end
redis.replicate_commands = function() return true end
redis.setresp = function() end
redis.breakpoint = function() return false end
redis.debug = function() end
redis.status_reply = function(s) return {ok = s} end
redis.error_reply = function(e)
  if stype(e) ~= 'string' then error('wrong number or type of arguments', 2) end
  if ssub(e, 1, 1) ~= '-' then e = '-' .. e end
  if string.find(e, ' ', 1, true) then return {err = ssub(e, 2)} end
  return {err = 'ERR ' .. ssub(e, 2)}
end
__jetmesh_call = nil
__jetmesh_pcall = nil
__jetmesh_sha1hex = nil
__jetmesh_toint = nil
__redis__err__handler = function(err)
  -- The script's own frame: past C functions (redis.call, error) and this prelude's wrappers.
  local level = 2
  local i = dbg.getinfo(level, 'nSl')
  while i and (i.what == 'C' or i.what == 'J' or i.source == '=prelude') do
    level = level + 1
    i = dbg.getinfo(level, 'nSl')
  end
  if stype(err) ~= 'table' then err = {err = 'ERR ' .. tostring(err)} end
  if i then
    err['source'] = i.source
    err['line'] = i.currentline
  end
  return err
end
setmetatable(_G, {
  __index = function(_, k)
    error("Script attempted to access nonexistent global variable '" .. tostring(k) .. "'", 2)
  end,
  __newindex = function() error('Attempt to modify a readonly table', 2) end,
})
`;

/** 5.3 words "attempt to index a nil value (local 'x')" where 5.1 says "attempt to index local 'x' (a nil value)". */
const lua51Message = (m: string): string =>
  m.replace(
    /attempt to ([a-z ]+?) an? ([a-z]+) value \((local|global|field|upvalue|method|constant) '([^']*)'\)/,
    (_all, what: string, type: string, kind: string, name: string) =>
      `attempt to ${what} ${kind === "constant" ? "global" : kind} '${name}' (a ${type} value)`,
  );

/** Lua 5.1's `%d`: the double truncated; a 32-bit integer for fengari, else its exact digits. */
const toInt = (n: number): number | string => {
  const t = Math.trunc(n);
  return t >= -2147483648 && t <= 2147483647 ? t : Number.isFinite(t) ? BigInt(t).toString() : "0";
};

/**
 * Redis' scripting on one shared fengari state: scripts compiled once per SHA, KEYS and
 * ARGV set per call, `redis.call` and `redis.pcall` routed to the dispatch of the run in
 * progress, replies converted both ways as Redis converts them. A run is synchronous, so it
 * is one atomic step of whichever simulated Redis asked for it.
 */
class LuaEngine {
  readonly #L: LuaState;
  /** Compiled functions (registry refs) by SHA: pure code, shared by every simulated Redis. */
  readonly #compiled = new Map<string, number>();
  readonly #shaOf = new Map<string, string>();
  #dispatch: ScriptDispatch | undefined;

  constructor() {
    const L = lauxlib.luaL_newstate();
    this.#L = L;
    for (const [name, open] of [
      ["_G", lualib.luaopen_base],
      ["table", lualib.luaopen_table],
      ["string", lualib.luaopen_string],
      ["math", lualib.luaopen_math],
      ["coroutine", lualib.luaopen_coroutine],
      ["debug", lualib.luaopen_debug],
    ] as const) {
      lauxlib.luaL_requiref(L, luaString(name), open, 1);
      lua.lua_pop(L, 1);
    }
    const fn = (name: string, f: (L: LuaState) => number) => {
      lua.lua_pushjsfunction(L, f);
      lua.lua_setglobal(L, luaString(name));
    };
    fn("__jetmesh_call", (s) => this.#call(s, true));
    fn("__jetmesh_pcall", (s) => this.#call(s, false));
    fn("__jetmesh_sha1hex", (s) => {
      lua.lua_pushstring(s, luaString(sha1(jsString(lua.lua_tolstring(s, 1)))));
      return 1;
    });
    fn("__jetmesh_toint", (s) => {
      const v = toInt(lua.lua_tonumber(s, 1));
      if (typeof v === "number") lua.lua_pushinteger(s, v);
      else lua.lua_pushstring(s, luaString(v));
      return 1;
    });
    if (
      lauxlib.luaL_loadbuffer(L, luaString(PRELUDE), null, luaString("=prelude")) !== lua.LUA_OK ||
      lua.lua_pcall(L, 0, 0, 0) !== lua.LUA_OK
    )
      throw new Error(`simulated redis: Lua prelude failed: ${jsString(lua.lua_tolstring(L, -1))}`);
  }

  sha(script: string): string {
    let sha = this.#shaOf.get(script);
    if (sha === undefined) {
      sha = sha1(script);
      if (this.#shaOf.size > 10_000) this.#shaOf.clear();
      this.#shaOf.set(script, sha);
    }
    return sha;
  }

  /** Compiles `script` unless compiled; @returns its SHA. @throws RespError when it does not compile. */
  compile(script: string): string {
    const sha = this.sha(script);
    if (this.#compiled.has(sha)) return sha;
    const L = this.#L;
    if (lauxlib.luaL_loadbuffer(L, luaString(script), null, luaString("@user_script")) !== lua.LUA_OK) {
      const msg = jsString(lua.lua_tolstring(L, -1));
      lua.lua_pop(L, 1);
      throw new RespError(`ERR Error compiling script (new function): ${msg}`);
    }
    this.#compiled.set(sha, lauxlib.luaL_ref(L, lua.LUA_REGISTRYINDEX));
    return sha;
  }

  /** Runs a compiled script: its reply, or its error reply (as a value). */
  run(sha: string, keys: readonly string[], argv: readonly string[], dispatch: ScriptDispatch): Reply {
    const ref = this.#compiled.get(sha);
    if (ref === undefined) throw new Error(`simulated redis: script ${sha} is not compiled`);
    const L = this.#L;
    const base = lua.lua_gettop(L);
    this.#dispatch = dispatch;
    try {
      lua.lua_pushglobaltable(L);
      for (const [name, list] of [
        [KEYS, keys],
        [ARGV, argv],
      ] as const) {
        lua.lua_pushstring(L, name);
        lua.lua_createtable(L, list.length, 0);
        for (let i = 0; i < list.length; i++) {
          lua.lua_pushstring(L, luaString(list[i] as string));
          lua.lua_rawseti(L, -2, i + 1);
        }
        lua.lua_rawset(L, -3);
      }
      lua.lua_pop(L, 1);
      lua.lua_getglobal(L, ERR_HANDLER);
      lua.lua_rawgeti(L, lua.LUA_REGISTRYINDEX, ref);
      if (lua.lua_pcall(L, 0, 1, base + 1) !== lua.LUA_OK) return this.#failure(sha);
      return this.#toReply(-1);
    } finally {
      this.#dispatch = undefined;
      lua.lua_settop(L, base);
    }
  }

  /** The error a script raised, as Redis 7.0 reports it (with the script's SHA and line). */
  #failure(sha: string): RespError {
    const L = this.#L;
    if (lua.lua_type(L, -1) !== lua.LUA_TTABLE) {
      const msg =
        lua.lua_type(L, -1) === lua.LUA_TSTRING ? jsString(lua.lua_tolstring(L, -1)) : "execution failure";
      return new RespError(`ERR Error running script ${sha}, ${msg.slice(0, 100)}`);
    }
    const field = (name: string): string | undefined => {
      lua.lua_pushstring(L, luaString(name));
      const t = lua.lua_rawget(L, -2);
      const v =
        t === lua.LUA_TSTRING || t === lua.LUA_TNUMBER ? jsString(lua.lua_tolstring(L, -1)) : undefined;
      lua.lua_pop(L, 1);
      return v;
    };
    const msg = lua51Message(field("err") ?? "");
    const source = field("source");
    const line = field("line");
    return new RespError(
      source !== undefined && line !== undefined ? `${msg} script: ${sha}, on ${source}:${line}.` : msg,
    );
  }

  #call(L: LuaState, raise: boolean): number {
    const n = lua.lua_gettop(L);
    const args: string[] = [];
    let bad: string | undefined =
      n === 0 ? "Please specify at least one argument for this redis lib call" : undefined;
    for (let i = 1; i <= n && bad === undefined; i++) {
      const t = lua.lua_type(L, i);
      if (t === lua.LUA_TSTRING) args.push(jsString(lua.lua_tolstring(L, i)));
      else if (t === lua.LUA_TNUMBER) args.push(formatG(lua.lua_tonumber(L, i), 17));
      else bad = "Lua redis lib command arguments must be strings or integers";
    }
    const dispatch = this.#dispatch;
    const reply =
      bad !== undefined || dispatch === undefined
        ? new RespError(`ERR ${bad ?? "redis.call outside a script"}`)
        : dispatch((args[0] as string).toUpperCase(), args.slice(1));
    if (reply instanceof RespError) {
      this.#pushError(reply.message);
      if (raise) return lua.lua_error(L);
      return 1;
    }
    this.#push(reply);
    return 1;
  }

  #pushError(message: string): void {
    const L = this.#L;
    lua.lua_createtable(L, 0, 1);
    lua.lua_pushstring(L, luaString(message));
    lua.lua_setfield(L, -2, ERR);
  }

  /** Redis' reply → Lua: integer → number, nil → false, status → {ok=}, error → {err=}. */
  #push(r: Reply): void {
    const L = this.#L;
    if (typeof r === "string") lua.lua_pushstring(L, luaString(r));
    else if (typeof r === "number") lua.lua_pushnumber(L, r);
    else if (r === null) lua.lua_pushboolean(L, false);
    else if (r instanceof Status) {
      lua.lua_createtable(L, 0, 1);
      lua.lua_pushstring(L, luaString(r.value));
      lua.lua_setfield(L, -2, OK);
    } else if (r instanceof RespError) this.#pushError(r.message);
    else {
      lua.lua_createtable(L, r.length, 0);
      for (let i = 0; i < r.length; i++) {
        this.#push(r[i] as Reply);
        lua.lua_rawseti(L, -2, i + 1);
      }
    }
  }

  /**
   * Lua → Redis' reply: numbers truncated to integers, true → 1, false and nil → nil,
   * {err=} → error, {ok=} → status, other tables → arrays up to the first nil.
   */
  #toReply(idx: number): Reply {
    const L = this.#L;
    switch (lua.lua_type(L, idx)) {
      case lua.LUA_TSTRING:
        return jsString(lua.lua_tolstring(L, idx));
      case lua.LUA_TNUMBER:
        return toInteger(lua.lua_tonumber(L, idx));
      case lua.LUA_TBOOLEAN:
        return lua.lua_toboolean(L, idx) ? 1 : null;
      case lua.LUA_TTABLE: {
        const t = idx < 0 ? lua.lua_gettop(L) + idx + 1 : idx;
        for (const [field, make] of [
          [ERR, (s: string) => new RespError(s)],
          [OK, (s: string) => new Status(s)],
        ] as const) {
          lua.lua_pushstring(L, field);
          const type = lua.lua_rawget(L, t);
          if (type === lua.LUA_TSTRING) {
            const s = jsString(lua.lua_tolstring(L, -1));
            lua.lua_pop(L, 1);
            return make(s);
          }
          lua.lua_pop(L, 1);
        }
        const out: Reply[] = [];
        for (let i = 1; ; i++) {
          if (lua.lua_rawgeti(L, t, i) === lua.LUA_TNIL) {
            lua.lua_pop(L, 1);
            return out;
          }
          out.push(this.#toReply(-1));
          lua.lua_pop(L, 1);
        }
      }
      default:
        return null;
    }
  }
}

/** Lua 5.1 number → Redis integer, as C's `(long long)` cast does on x86-64 (out of range: INT64_MIN). */
function toInteger(n: number): number {
  if (!(Math.abs(n) < 2 ** 63)) return -(2 ** 63);
  return Math.trunc(n) || 0;
}

function sha1(s: string): string {
  return createHash("sha1").update(s).digest("hex");
}

let shared: LuaEngine | undefined;

/** The process' Lua engine (created on first use). */
export function luaEngine(): LuaEngine {
  shared ??= new LuaEngine();
  return shared;
}

export type { LuaEngine };
