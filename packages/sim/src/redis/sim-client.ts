import { EventEmitter } from "node:events";
import { Readable } from "node:stream";
import { COMMANDS } from "./commands.ts";
import {
  closedError,
  connectionError,
  Errors,
  type Reply,
  RespError,
  replyError,
  toClientValue,
} from "./replies.ts";
import type { SentCommand, ServerListener, SimServer } from "./sim-server.ts";

/** How the clients of one simulated server answer: latency, and the error they fail with when it is down. */
export interface ClientSettings {
  readonly delayMs: (() => number) | undefined;
  readonly maxRetriesPerRequest: number;
}

type Transform = (v: unknown) => unknown;

/** ioredis' reply transformers for the commands the project uses them with. */
const TRANSFORMS: ReadonlyMap<string, Transform> = new Map([
  [
    "HGETALL",
    (v: unknown) => {
      const a = v as string[];
      const o: Record<string, string> = {};
      for (let i = 0; i < a.length; i += 2) o[a[i] as string] = a[i + 1] as string;
      return o;
    },
  ],
]);

/** ioredis' argument flattening: arrays spread, objects and Maps (HSET, MSET) as field, value pairs. */
function flatten(args: readonly unknown[], out: string[] = []): string[] {
  for (const a of args) {
    if (typeof a === "string") out.push(a);
    else if (Array.isArray(a)) flatten(a, out);
    else if (a instanceof Map) for (const [k, v] of a) out.push(String(k), String(v));
    else if (Buffer.isBuffer(a)) out.push(a.toString());
    else if (a !== null && typeof a === "object")
      for (const [k, v] of Object.entries(a)) out.push(k, String(v));
    else out.push(a === undefined || a === null ? "" : String(a));
  }
  return out;
}

interface ScriptDef {
  readonly lua: string;
  readonly numberOfKeys: number | undefined;
}

/** A defined command as the EVAL ioredis ends up sending (it tries EVALSHA first; the effect is the same). */
const scriptCommand = (def: ScriptDef, args: readonly unknown[]): SentCommand => ({
  name: "EVAL",
  args: [def.lua, ...(def.numberOfKeys === undefined ? [] : [String(def.numberOfKeys)]), ...flatten(args)],
});

/** `[err]` or `[null, value]`, as ioredis' pipelines and transactions report each command. */
type Result = [Error | null, unknown?];

/**
 * A client of a {@link SimServer}, shaped like ioredis' `Redis` as this project uses it:
 * one method per command (lower case), `call`, `eval`/`evalsha`, `defineCommand`,
 * `multi`/`pipeline`, `scanStream`, `duplicate`, events, `status` and `options`, `quit`/`disconnect`.
 * Commands run in the order sent, each one answered after a microtask (or after
 * `delayMs()` virtual ms, never overtaking an earlier one); errors reject as ioredis'.
 */
export class SimClient extends EventEmitter implements ServerListener {
  readonly server: SimServer;
  protected readonly settings: ClientSettings;
  readonly #scripts = new Map<string, ScriptDef>();
  #ended = false;
  /** When the latest delayed command is due; later ones wait for it. */
  #lastDue = 0;
  #delayed = 0;
  /** Virtual time until which this client's commands are held ({@link freeze}). */
  #frozenUntil = 0;

  constructor(server: SimServer, settings: ClientSettings) {
    super();
    this.server = server;
    this.settings = settings;
    server.listeners.add(this);
  }

  /**
   * ioredis' client options as the project reads them: no key prefix (a namespace's prefix,
   * JETMESH_NAMESPACE, is not simulated), which the ledger's SCANs add and strip.
   */
  readonly options: { readonly keyPrefix: string } = { keyPrefix: "" };

  /** ioredis' connection states: `ready`, `reconnecting` while the server is down, `end` once closed. */
  get status(): string {
    return this.#ended ? "end" : this.server.down ? "reconnecting" : "ready";
  }

  serverDown(down: boolean): void {
    if (this.#ended) return;
    queueMicrotask(() => {
      if (this.#ended) return;
      if (down) {
        if (this.listenerCount("error") > 0)
          this.emit(
            "error",
            Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:6379"), {
              code: "ECONNREFUSED",
              syscall: "connect",
            }),
          );
        this.emit("close");
        this.emit("reconnecting", 50);
      } else {
        this.emit("connect");
        this.emit("ready");
      }
    });
  }

  /**
   * Holds this client's commands for `ms`, as a stopped process's connection looks to the
   * server: what it sends now or during the freeze reaches the server when it ends, in order.
   */
  freeze(ms: number): void {
    this.#frozenUntil = Math.max(this.#frozenUntil, Date.now() + ms);
  }

  /** Runs `job` once its turn comes: after a microtask, or after the latency hook's delay. */
  #schedule(job: () => void): void {
    const d = Math.max(this.settings.delayMs?.() ?? 0, this.#frozenUntil - Date.now());
    if (d <= 0 && this.#delayed === 0) {
      queueMicrotask(job);
      return;
    }
    const now = Date.now();
    const due = Math.max(now + Math.max(0, d), this.#lastDue);
    this.#lastDue = due;
    this.#delayed++;
    setTimeout(() => {
      this.#delayed--;
      job();
    }, due - now);
  }

  /** Why a command cannot reach the server now, if it cannot. */
  #unreachable(): Error | undefined {
    if (this.#ended) return closedError();
    if (this.server.down) return connectionError(this.settings.maxRetriesPerRequest);
    return undefined;
  }

  /** Sends one command (upper-case name); resolves with ioredis' value, rejects with its error. */
  send(c: SentCommand): Promise<unknown> {
    if (this.#ended) return Promise.reject(closedError());
    return new Promise((resolve, reject) => {
      this.#schedule(() => {
        const down = this.#unreachable();
        if (down !== undefined) {
          reject(down);
          return;
        }
        const r = this.server.execute(c);
        if (r instanceof RespError) reject(replyError(r.message, c.name, c.args));
        else resolve(clientValue(r, c));
      });
    });
  }

  /** Sends a pipeline (commands one after the other) or a transaction (one atomic step). */
  sendBatch(cmds: readonly SentCommand[], multi: boolean): Promise<Result[]> {
    if (this.#ended) return Promise.reject(closedError());
    return new Promise((resolve, reject) => {
      this.#schedule(() => {
        const down = this.#unreachable();
        if (multi) {
          if (down !== undefined) {
            reject(down);
            return;
          }
          const queued = cmds.map((c) => this.server.check(c));
          if (queued.some((e) => e !== undefined)) {
            const err = replyError(Errors.execAbort, "EXEC", []);
            Object.assign(err, {
              previousErrors: cmds.flatMap((c, i) => {
                const e = queued[i];
                return e === undefined ? [] : [replyError(e.message, c.name, c.args)];
              }),
            });
            reject(err);
            return;
          }
          const replies = this.server.transaction(cmds);
          // Errors inside EXEC's reply come untagged (ioredis tags only top-level error replies).
          resolve(replies.map((r, i) => result(r, cmds[i] as SentCommand, false)));
          return;
        }
        resolve(cmds.map((c) => (down !== undefined ? [down] : result(this.server.execute(c), c, true))));
      });
    });
  }

  call(name: string, ...args: unknown[]): Promise<unknown> {
    return this.send({ name: name.toUpperCase(), args: flatten(args), sentAs: name });
  }

  /** ioredis' other name for {@link SimClient.call}. */
  send_command(name: string, ...args: unknown[]): Promise<unknown> {
    return this.call(name, ...args);
  }

  /** Adds `name` as a method running `lua` (ioredis' custom commands; pipelines get it too). */
  defineCommand(name: string, def: { lua: string; numberOfKeys?: number }): void {
    const d: ScriptDef = { lua: def.lua, numberOfKeys: def.numberOfKeys };
    this.#scripts.set(name, d);
    Object.defineProperty(this, name, {
      value: (...args: unknown[]) => this.send(scriptCommand(d, args)),
      configurable: true,
      writable: true,
    });
  }

  multi(commands?: readonly (readonly unknown[])[]): SimPipeline {
    return new SimPipeline(this, this.#scripts, true, commands);
  }

  pipeline(commands?: readonly (readonly unknown[])[]): SimPipeline {
    return new SimPipeline(this, this.#scripts, false, commands);
  }

  /** ioredis' ScanStream: a Readable of key arrays, one SCAN per read. */
  scanStream(opts: { match?: string; count?: number; type?: string } = {}): Readable {
    let cursor = "0";
    let drained = false;
    const args = [
      ...(opts.match === undefined ? [] : ["MATCH", opts.match]),
      ...(opts.type === undefined ? [] : ["TYPE", opts.type]),
      ...(opts.count === undefined ? [] : ["COUNT", String(opts.count)]),
    ];
    const stream: Readable = new Readable({
      objectMode: true,
      read: () => {
        if (drained) {
          stream.push(null);
          return;
        }
        this.send({ name: "SCAN", args: [cursor, ...args] }).then(
          (r) => {
            const [next, keys] = r as [string, string[]];
            cursor = next;
            if (next === "0") drained = true;
            stream.push(keys);
          },
          (err: Error) => stream.destroy(err),
        );
      },
    });
    return stream;
  }

  /** Another client of the same server (ioredis' duplicate(): a new connection, no custom commands). */
  duplicate(): SimClient {
    return new SimClient(this.server, this.settings);
  }

  connect(): Promise<void> {
    return Promise.resolve();
  }

  quit(): Promise<"OK"> {
    if (this.#ended) return Promise.reject(closedError());
    return new Promise((resolve) => {
      this.#schedule(() => {
        this.#end();
        resolve("OK");
      });
    });
  }

  disconnect(): void {
    this.#end();
  }

  #end(): void {
    if (this.#ended) return;
    this.#ended = true;
    this.server.listeners.delete(this);
    queueMicrotask(() => {
      this.emit("close");
      this.emit("end");
    });
  }
}

function clientValue(r: Reply, c: SentCommand): unknown {
  const v = toClientValue(r, c.name, c.args);
  const t = TRANSFORMS.get(c.name);
  return t === undefined ? v : t(v);
}

function result(r: Reply, c: SentCommand, tagged: boolean): Result {
  if (!(r instanceof RespError)) return [null, clientValue(r, c)];
  return [tagged ? replyError(r.message, c.name, c.args) : replyError(r.message)];
}

/** ioredis' Pipeline (and MULTI): chainable command methods, then `exec()`. */
export class SimPipeline {
  readonly #client: SimClient;
  readonly #multi: boolean;
  readonly #queue: SentCommand[] = [];
  #done = false;

  constructor(
    client: SimClient,
    scripts: ReadonlyMap<string, ScriptDef>,
    multi: boolean,
    commands: readonly (readonly unknown[])[] | undefined,
  ) {
    this.#client = client;
    this.#multi = multi;
    for (const [name, def] of scripts)
      Object.defineProperty(this, name, {
        value: (...args: unknown[]) => this.add(scriptCommand(def, args)),
      });
    for (const [name, ...args] of commands ?? [])
      this.add({ name: String(name).toUpperCase(), args: flatten(args) });
  }

  /** Queues one command. */
  add(c: SentCommand): this {
    this.#queue.push(c);
    return this;
  }

  call(name: string, ...args: unknown[]): this {
    return this.add({ name: name.toUpperCase(), args: flatten(args), sentAs: name });
  }

  get length(): number {
    return this.#queue.length;
  }

  /**
   * Pipeline: `[err]` or `[null, value]` per command, in order. MULTI: the same, run as one
   * atomic step; rejects with EXECABORT (and `previousErrors`) when a command could not be
   * queued, or with the connection error when Redis is down.
   */
  exec(): Promise<Result[]> {
    if (this.#done)
      return Promise.reject(
        new Error("Pipeline cannot be used to send any commands when the `exec()` has been called on it."),
      );
    this.#done = true;
    return this.#client.sendBatch(this.#queue, this.#multi);
  }
}

for (const name of COMMANDS.keys()) {
  const lower = name.toLowerCase();
  if (!(lower in SimClient.prototype))
    Object.defineProperty(SimClient.prototype, lower, {
      value: function (this: SimClient, ...args: unknown[]) {
        return this.send({ name, args: flatten(args) });
      },
    });
  if (!(lower in SimPipeline.prototype))
    Object.defineProperty(SimPipeline.prototype, lower, {
      value: function (this: SimPipeline, ...args: unknown[]) {
        return this.add({ name, args: flatten(args) });
      },
    });
}
