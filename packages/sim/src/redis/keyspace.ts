import { Errors, RespError } from "./replies.ts";

/** One key's value; `at` is when it expires (ms since the epoch), 0 for never. */
export type Entry =
  | { readonly t: "string"; v: string; at: number }
  | { readonly t: "hash"; readonly v: Map<string, string>; at: number }
  | { readonly t: "set"; readonly v: Set<string>; at: number }
  | { readonly t: "list"; v: string[]; at: number };

export type EntryType = Entry["t"];

type Undo = () => void;

/** A saved copy of every key (what `snapshot()` hands out). */
export type KeyspaceCopy = ReadonlyMap<string, Entry>;

/** Expired keys are swept (besides lazily on access) once every this many steps. */
const SWEEP_EVERY = 4096;

/**
 * The data of one simulated Redis: keys with their values and expiry on the process clock
 * (`Date.now`, virtual in a simulation). Expiry is lazy, as Redis' own on access: a key
 * whose time is past is gone for every command, and swept now and then to bound memory.
 *
 * Every change inside a step (one command, script or transaction: `begin` … `end`) records
 * how to undo it; a step that changed something becomes one record of a bounded log, so
 * {@link Keyspace.undoLast} can take back the latest writes as a Redis that lost them would.
 */
export class Keyspace {
  #map = new Map<string, Entry>();
  /** The step's clock: Redis, too, reads the time once per command or script. */
  now = 0;
  #ops: Undo[] = [];
  readonly #log: Undo[][] = [];
  readonly #limit: number;
  #steps = 0;

  constructor(undoLimit: number) {
    this.#limit = undoLimit;
  }

  begin(): void {
    this.now = Date.now();
    this.#ops = [];
  }

  end(): void {
    if (this.#ops.length > 0 && this.#limit > 0) {
      this.#log.push(this.#ops);
      if (this.#log.length > this.#limit) this.#log.shift();
    }
    this.#ops = [];
    if (++this.#steps % SWEEP_EVERY === 0) this.#sweep();
  }

  /** Undoes the latest `n` steps that wrote; @returns how many it could undo (the log is bounded). */
  undoLast(n: number): number {
    let undone = 0;
    for (; undone < n; undone++) {
      const ops = this.#log.pop();
      if (ops === undefined) break;
      for (let i = ops.length - 1; i >= 0; i--) (ops[i] as Undo)();
    }
    return undone;
  }

  /** Steps that wrote and can still be undone. */
  get undoable(): number {
    return this.#log.length;
  }

  /** The live entry of `key`, or undefined (an expired one is dropped on the way). */
  lookup(key: string): Entry | undefined {
    const e = this.#map.get(key);
    if (e === undefined) return undefined;
    if (e.at !== 0 && e.at < this.now) {
      // Not an undoable write: the key was gone for every reader already.
      this.#map.delete(key);
      return undefined;
    }
    return e;
  }

  /** The live entry of `key` when it holds `type`; WRONGTYPE when it holds another. */
  typed<T extends EntryType>(key: string, type: T): Extract<Entry, { t: T }> | undefined {
    const e = this.lookup(key);
    if (e !== undefined && e.t !== type) throw new RespError(Errors.wrongType);
    return e as Extract<Entry, { t: T }> | undefined;
  }

  /** Sets (or replaces) `key` with `e`. */
  put(key: string, e: Entry): void {
    const prev = this.#map.get(key);
    this.#map.set(key, e);
    this.#ops.push(prev === undefined ? () => this.#map.delete(key) : () => this.#map.set(key, prev));
  }

  /** Deletes `key`; @returns whether it existed (live). */
  remove(key: string): boolean {
    const prev = this.lookup(key);
    if (prev === undefined) return false;
    this.#map.delete(key);
    this.#ops.push(() => this.#map.set(key, prev));
    return true;
  }

  expireAt(e: Entry, at: number): void {
    const prev = e.at;
    e.at = at;
    this.#ops.push(() => {
      e.at = prev;
    });
  }

  setString(e: Extract<Entry, { t: "string" }>, v: string): void {
    const prev = e.v;
    e.v = v;
    this.#ops.push(() => {
      e.v = prev;
    });
  }

  hset(e: Extract<Entry, { t: "hash" }>, field: string, value: string): boolean {
    const prev = e.v.get(field);
    e.v.set(field, value);
    this.#ops.push(prev === undefined ? () => e.v.delete(field) : () => e.v.set(field, prev));
    return prev === undefined;
  }

  hdel(e: Extract<Entry, { t: "hash" }>, field: string): boolean {
    const prev = e.v.get(field);
    if (prev === undefined) return false;
    e.v.delete(field);
    // Re-inserted at the end: the order of a small hash after an undo may differ, as after a reload.
    this.#ops.push(() => e.v.set(field, prev));
    return true;
  }

  sadd(e: Extract<Entry, { t: "set" }>, member: string): boolean {
    if (e.v.has(member)) return false;
    e.v.add(member);
    this.#ops.push(() => e.v.delete(member));
    return true;
  }

  srem(e: Extract<Entry, { t: "set" }>, member: string): boolean {
    if (!e.v.delete(member)) return false;
    this.#ops.push(() => e.v.add(member));
    return true;
  }

  setList(e: Extract<Entry, { t: "list" }>, v: string[]): void {
    const prev = e.v;
    e.v = v;
    this.#ops.push(() => {
      e.v = prev;
    });
  }

  /** Drops every key (FLUSHALL), undoably. */
  flush(): void {
    const prev = this.#map;
    this.#map = new Map();
    this.#ops.push(() => {
      this.#map = prev;
    });
  }

  /** Live keys, in insertion order. */
  *keys(): IterableIterator<string> {
    for (const [k, e] of this.#map) if (e.at === 0 || e.at >= this.now) yield k;
  }

  get size(): number {
    let n = 0;
    for (const _ of this.keys()) n++;
    return n;
  }

  /** A deep copy of every live key (for snapshots and dumps). */
  copy(): KeyspaceCopy {
    const now = Date.now();
    const out = new Map<string, Entry>();
    for (const [k, e] of this.#map) if (e.at === 0 || e.at >= now) out.set(k, cloneEntry(e));
    return out;
  }

  /** Replaces every key with a copy of `data`, and forgets the undo log (a restart from a file). */
  restore(data: KeyspaceCopy): void {
    this.#map = new Map();
    for (const [k, e] of data) this.#map.set(k, cloneEntry(e));
    this.#log.length = 0;
    this.#ops = [];
  }

  #sweep(): void {
    const now = Date.now();
    for (const [k, e] of this.#map) if (e.at !== 0 && e.at < now) this.#map.delete(k);
  }
}

function cloneEntry(e: Entry): Entry {
  switch (e.t) {
    case "string":
      return { t: "string", v: e.v, at: e.at };
    case "hash":
      return { t: "hash", v: new Map(e.v), at: e.at };
    case "set":
      return { t: "set", v: new Set(e.v), at: e.at };
    case "list":
      return { t: "list", v: [...e.v], at: e.at };
  }
}
