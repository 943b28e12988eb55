// fengari 0.1.5 ships no types: the little of its C-like API the simulated Redis uses.
declare module "fengari" {
  /** A Lua thread (fengari's lua_State). */
  export interface LuaState {
    readonly __luaState: unique symbol;
  }
  /** A JS function Lua can call: reads its arguments off the stack, returns how many results it pushed. */
  export type LuaJsFunction = (L: LuaState) => number;

  interface Lua {
    readonly LUA_OK: number;
    readonly LUA_MULTRET: number;
    readonly LUA_REGISTRYINDEX: number;
    readonly LUA_TNIL: number;
    readonly LUA_TBOOLEAN: number;
    readonly LUA_TNUMBER: number;
    readonly LUA_TSTRING: number;
    readonly LUA_TTABLE: number;
    lua_gettop(L: LuaState): number;
    lua_settop(L: LuaState, idx: number): void;
    lua_pop(L: LuaState, n: number): void;
    lua_type(L: LuaState, idx: number): number;
    lua_tonumber(L: LuaState, idx: number): number;
    lua_toboolean(L: LuaState, idx: number): boolean;
    lua_tolstring(L: LuaState, idx: number): Uint8Array | null;
    lua_pushnumber(L: LuaState, n: number): void;
    lua_pushinteger(L: LuaState, n: number): void;
    lua_pushboolean(L: LuaState, b: boolean): void;
    lua_pushnil(L: LuaState): void;
    lua_pushstring(L: LuaState, s: Uint8Array): Uint8Array;
    lua_pushvalue(L: LuaState, idx: number): void;
    lua_pushjsfunction(L: LuaState, fn: LuaJsFunction): void;
    lua_pushglobaltable(L: LuaState): void;
    lua_createtable(L: LuaState, narr: number, nrec: number): void;
    lua_rawseti(L: LuaState, idx: number, n: number): void;
    lua_rawgeti(L: LuaState, idx: number, n: number): number;
    lua_rawset(L: LuaState, idx: number): void;
    lua_rawget(L: LuaState, idx: number): number;
    lua_setfield(L: LuaState, idx: number, k: Uint8Array): void;
    lua_getglobal(L: LuaState, name: Uint8Array): number;
    lua_setglobal(L: LuaState, name: Uint8Array): void;
    lua_pcall(L: LuaState, nargs: number, nresults: number, msgh: number): number;
    lua_error(L: LuaState): never;
  }
  interface Lauxlib {
    luaL_newstate(): LuaState;
    luaL_loadbuffer(L: LuaState, s: Uint8Array, sz: number | null, name: Uint8Array): number;
    luaL_requiref(L: LuaState, modname: Uint8Array, openf: LuaJsFunction, glb: number): void;
    luaL_ref(L: LuaState, t: number): number;
  }
  interface Lualib {
    luaopen_base: LuaJsFunction;
    luaopen_table: LuaJsFunction;
    luaopen_string: LuaJsFunction;
    luaopen_math: LuaJsFunction;
    luaopen_coroutine: LuaJsFunction;
    luaopen_debug: LuaJsFunction;
  }
  const fengari: {
    readonly lua: Lua;
    readonly lauxlib: Lauxlib;
    readonly lualib: Lualib;
    to_luastring(s: string, cache?: boolean): Uint8Array;
  };
  export default fengari;
}

// Internals patched once so numbers print as Lua 5.1 prints them (lua-engine.ts says why).
declare module "fengari/src/lobject.js" {
  import type { LuaState } from "fengari";
  /** A Lua value slot on the stack. */
  export interface TValue {
    readonly value: number;
    ttisinteger(): boolean;
    setsvalue(s: unknown): void;
  }
  const lobject: { luaO_tostring: (L: LuaState, obj: TValue) => void };
  export default lobject;
}
declare module "fengari/src/lstring.js" {
  import type { LuaState } from "fengari";
  const lstring: { luaS_bless(L: LuaState, s: Uint8Array): unknown };
  export default lstring;
}
