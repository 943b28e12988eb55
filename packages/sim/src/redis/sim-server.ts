import { asReply, COMMANDS, type CommandContext, type CommandSpec, type ScriptHost } from "./commands.ts";
import { Keyspace, type KeyspaceCopy } from "./keyspace.ts";
import { luaEngine } from "./lua-engine.ts";
import { Errors, type Reply, RespError } from "./replies.ts";

/** One command as a client sends it: upper-case name and string arguments. */
export interface SentCommand {
  readonly name: string;
  readonly args: readonly string[];
  /** The name as the caller spelled it (error replies quote it). */
  readonly sentAs?: string;
}

/** Something listening to the server going down or coming back (its clients). */
export interface ServerListener {
  serverDown(down: boolean): void;
}

function arityOk(spec: CommandSpec, argc: number): boolean {
  return spec.arity >= 0 ? argc + 1 === spec.arity : argc + 1 >= -spec.arity;
}

/**
 * The simulated redis-server: one keyspace, the script cache (what EVALSHA finds), and
 * whether it can be reached. Every command, script and transaction runs synchronously, so
 * each is one atomic step, as on Redis' single thread.
 */
export class SimServer implements ScriptHost {
  readonly ks: Keyspace;
  readonly listeners = new Set<ServerListener>();
  #down = false;
  /** The SHAs Redis' script cache holds: lost on a restart, a failover, a SCRIPT FLUSH. */
  readonly #loaded = new Set<string>();
  readonly #ctx: CommandContext;
  readonly #engine = luaEngine();

  constructor(undoLimit: number) {
    this.ks = new Keyspace(undoLimit);
    this.#ctx = { ks: this.ks, scripts: this };
  }

  get down(): boolean {
    return this.#down;
  }

  setDown(down: boolean): void {
    if (down === this.#down) return;
    this.#down = down;
    for (const l of this.listeners) l.serverDown(down);
  }

  /** Errors a command gets before it runs (MULTI queues such a command as an error). */
  check(c: SentCommand): RespError | undefined {
    const spec = COMMANDS.get(c.name);
    if (spec === undefined) return new RespError(Errors.unknown(c.sentAs ?? c.name.toLowerCase(), c.args));
    if (!arityOk(spec, c.args.length)) return new RespError(Errors.arity(c.name));
    return undefined;
  }

  /** One command, one atomic step. */
  execute(c: SentCommand): Reply {
    const bad = this.check(c);
    if (bad !== undefined) return bad;
    this.ks.begin();
    try {
      return (COMMANDS.get(c.name) as CommandSpec).run(this.#ctx, c.args);
    } catch (err) {
      return asReply(err);
    } finally {
      this.ks.end();
    }
  }

  /** MULTI … EXEC: every command in one atomic step; a failing one fails alone. */
  transaction(cmds: readonly SentCommand[]): Reply[] {
    this.ks.begin();
    try {
      return cmds.map((c) => {
        try {
          return (COMMANDS.get(c.name) as CommandSpec).run(this.#ctx, c.args);
        } catch (err) {
          return asReply(err);
        }
      });
    } finally {
      this.ks.end();
    }
  }

  /** A restart that kept nothing, a failover or a restore: the script cache is empty. */
  restarted(data: KeyspaceCopy | undefined): void {
    this.ks.restore(data ?? new Map());
    this.#loaded.clear();
  }

  /** Forgets the script cache only (Redis 7.0 neither persists nor replicates it). */
  forgetScripts(): void {
    this.#loaded.clear();
  }

  // ScriptHost

  eval(script: string, args: readonly string[]): Reply {
    const sha = this.#engine.compile(script);
    this.#loaded.add(sha);
    return this.#run(sha, args);
  }

  evalsha(sha: string, args: readonly string[]): Reply {
    const s = sha.toLowerCase();
    if (!this.#loaded.has(s)) throw new RespError(Errors.noScript);
    return this.#run(s, args);
  }

  load(script: string): string {
    const sha = this.#engine.compile(script);
    this.#loaded.add(sha);
    return sha;
  }

  exists(sha: string): boolean {
    return this.#loaded.has(sha.toLowerCase());
  }

  flush(): void {
    this.#loaded.clear();
  }

  #run(sha: string, args: readonly string[]): Reply {
    const n = Number(args[0]);
    if (!/^-?\d+$/.test(args[0] ?? "") || !Number.isSafeInteger(n)) throw new RespError(Errors.notInteger);
    if (n < 0) throw new RespError("ERR Number of keys can't be negative");
    if (n > args.length - 1) throw new RespError("ERR Number of keys can't be greater than number of args");
    return this.#engine.run(sha, args.slice(1, n + 1), args.slice(n + 1), this.#dispatch);
  }

  /** `redis.call` from a script: inside the script's step, with Redis' script-side errors. */
  readonly #dispatch = (name: string, args: string[]): Reply => {
    const spec = COMMANDS.get(name);
    if (spec === undefined) return new RespError("ERR Unknown Redis command called from script");
    if (!arityOk(spec, args.length))
      return new RespError("ERR Wrong number of args calling Redis command from script");
    if (spec.noScript) return new RespError("ERR This Redis command is not allowed from script");
    try {
      return spec.run(this.#ctx, args);
    } catch (err) {
      return asReply(err);
    }
  };
}
