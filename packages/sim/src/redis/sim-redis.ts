import type { Redis } from "ioredis";
import type { Entry, KeyspaceCopy } from "./keyspace.ts";
import { type ClientSettings, SimClient } from "./sim-client.ts";
import { SimServer } from "./sim-server.ts";

/** Options of {@link createSimRedis}. */
export interface SimRedisOptions {
  /**
   * Latency of each command (a pipeline or a transaction counts as one), in virtual ms,
   * drawn per command; commands of one client never overtake each other. Default: answered
   * after a microtask.
   */
  readonly delayMs?: () => number;
  /** Write steps {@link SimRedisControl.loseLastWrites} can take back (default 10 000). */
  readonly undoLimit?: number;
  /**
   * The client's `maxRetriesPerRequest`, named in the error commands fail with while the
   * server is down (default 1, as the runtime's createRedis sets it).
   */
  readonly maxRetriesPerRequest?: number;
}

/** A saved state of a simulated Redis, for {@link SimRedisControl.rollback}. */
export interface SimRedisSnapshot {
  /** Virtual time it was taken at, ms since the epoch. */
  readonly atMs: number;
  /** Keys it holds. */
  readonly keys: number;
}

/** One key as {@link SimRedisControl.dump} shows it; `expiresAt` in ms since the epoch. */
export type SimRedisDumpEntry =
  | { readonly type: "string"; readonly value: string; readonly expiresAt?: number }
  | { readonly type: "hash"; readonly value: Readonly<Record<string, string>>; readonly expiresAt?: number }
  | { readonly type: "set"; readonly value: readonly string[]; readonly expiresAt?: number }
  | { readonly type: "list"; readonly value: readonly string[]; readonly expiresAt?: number };

/**
 * The faults of a simulated Redis, and a look inside. They act on the server, so on every
 * client of it (see `duplicate()`); each takes effect at once, between two atomic steps.
 * The restarts (`wipe`, `rollback`, `loseLastWrites`) also empty the script cache, as a
 * new redis-server process has it (EVALSHA answers NOSCRIPT until EVAL runs again); they
 * do not drop connections: combine them with `setDown` for the outage itself.
 */
export interface SimRedisControl {
  /** Restart that kept nothing (no persistence, or FLUSHALL): every key and script is gone. */
  wipe(): void;
  /** Saves every key now (an RDB file, or what a replica holds). */
  snapshot(): SimRedisSnapshot;
  /**
   * Back to `snapshot`: every write after it is lost, as after a failover to a lagging
   * replica or a restore from a backup. Keys whose time passed since are expired.
   * @throws when `snapshot` is not one of this server's.
   */
  rollback(snapshot: SimRedisSnapshot): void;
  /**
   * Undoes the latest `n` steps that wrote (a command, a script or a transaction each; steps
   * that changed nothing do not count), as a lost AOF tail or an asynchronous replica that
   * had not received them. @returns how many were undone (fewer when the bounded log ends).
   */
  loseLastWrites(n: number): number;
  /**
   * Makes the server unreachable (true) or reachable again (false). While down, every
   * command fails as the runtime's ioredis client fails it (MaxRetriesPerRequestError),
   * `status` is "reconnecting", and the clients emit `error` (when listened to), `close` and
   * `reconnecting`; coming back they emit `connect` and `ready`. Data is kept.
   */
  setDown(down: boolean): void;
  /** Whether the server is down. */
  readonly isDown: boolean;
  /**
   * Holds this client's commands (not the server's other clients') for `ms`: what it sends
   * now or during the freeze reaches the server when it ends, in order, as from a stopped
   * process.
   */
  freeze(ms: number): void;
  /** Every live key, sorted by name (for tests and invariant checks). */
  dump(): Record<string, SimRedisDumpEntry>;
}

/**
 * A simulated Redis client: usable wherever the project's code takes an ioredis `Redis`
 * (the commands, scripts, MULTI, pipelines, scanStream, defineCommand and events it uses;
 * see the conformance test), plus the {@link SimRedisControl} faults. `duplicate()` gives
 * another client of the same server. Other ioredis commands are absent.
 */
export type SimRedis = Redis & SimRedisControl;

const snapshots = new WeakMap<SimRedisSnapshot, { server: SimServer; data: KeyspaceCopy }>();

class ControlledClient extends SimClient implements SimRedisControl {
  wipe(): void {
    this.server.restarted(undefined);
  }

  snapshot(): SimRedisSnapshot {
    const data = this.server.ks.copy();
    const token: SimRedisSnapshot = Object.freeze({ atMs: Date.now(), keys: data.size });
    snapshots.set(token, { server: this.server, data });
    return token;
  }

  rollback(snapshot: SimRedisSnapshot): void {
    const saved = snapshots.get(snapshot);
    if (saved === undefined || saved.server !== this.server)
      throw new Error("simulated redis: rollback to a snapshot of another server");
    this.server.restarted(saved.data);
  }

  loseLastWrites(n: number): number {
    const undone = this.server.ks.undoLast(n);
    this.server.forgetScripts();
    return undone;
  }

  setDown(down: boolean): void {
    this.server.setDown(down);
  }

  get isDown(): boolean {
    return this.server.down;
  }

  dump(): Record<string, SimRedisDumpEntry> {
    const data = this.server.ks.copy();
    const out: Record<string, SimRedisDumpEntry> = {};
    for (const key of [...data.keys()].sort()) out[key] = dumpEntry(data.get(key) as Entry);
    return out;
  }

  override duplicate(): SimClient {
    return new ControlledClient(this.server, this.settings);
  }
}

function dumpEntry(e: Entry): SimRedisDumpEntry {
  const exp = e.at === 0 ? {} : { expiresAt: e.at };
  switch (e.t) {
    case "string":
      return { type: "string", value: e.v, ...exp };
    case "hash":
      return {
        type: "hash",
        value: Object.fromEntries([...e.v].sort(([a], [b]) => (a < b ? -1 : 1))),
        ...exp,
      };
    case "set":
      return { type: "set", value: [...e.v].sort(), ...exp };
    case "list":
      return { type: "list", value: [...e.v], ...exp };
  }
}

/**
 * Starts a simulated redis-server (empty, reachable) and returns a client of it. Time is
 * the process clock (`Date.now`, `setTimeout`): virtual under the simulator's fake timers.
 */
export function createSimRedis(opts: SimRedisOptions = {}): SimRedis {
  const settings: ClientSettings = {
    delayMs: opts.delayMs,
    maxRetriesPerRequest: opts.maxRetriesPerRequest ?? 1,
  };
  const client = new ControlledClient(new SimServer(opts.undoLimit ?? 10_000), settings);
  // The one cast: the client implements the part of ioredis' Redis this project uses
  // (its command methods are generated from the command table at load).
  return client as unknown as SimRedis;
}
