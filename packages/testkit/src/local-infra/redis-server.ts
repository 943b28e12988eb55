import { copyFile, rm } from "node:fs/promises";
import { connect as tcpConnect } from "node:net";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { ensureBinaries } from "./binaries.ts";
import type { ChildHandle } from "./child-process.ts";
import { spawnProcess, waitUntilReady } from "./child-process.ts";
import { freePort } from "./ports.ts";
import { createTempDir, removeTempDir } from "./temp-dirs.ts";

/** Options of {@link startRedis}. */
export interface StartRedisOptions {
  /** Port on 127.0.0.1 (default: a free port). */
  port?: number;
  /**
   * Persist data (default false: `--save "" --appendonly no`, nothing survives a restart).
   * When true: append-only file with `appendfsync always`, so every acknowledged write
   * survives even a SIGKILL.
   */
  persistence?: boolean;
  /** Working folder for RDB/AOF files (default: a temp folder the kit creates and removes). */
  dir?: string;
  /** How long start and restart wait for PONG (default 10 000 ms). */
  readyTimeoutMs?: number;
  /**
   * A redis.conf to start from (the first argument of redis-server); the kit's own settings
   * (port, bind 127.0.0.1, folder, persistence, then `extraArgs`) come after it and win.
   */
  configFile?: string;
  /** An ACL file to load (`--aclfile`), e.g. one that turns the `default` user off. */
  aclFile?: string;
  /**
   * The user the kit itself authenticates as (AUTH before its PING, FLUSHALL, SAVE, CONFIG):
   * needed once an ACL file turns the `default` user off. Clients of the test pass their own.
   */
  auth?: { readonly username: string; readonly password: string };
  /** More redis-server arguments, after the kit's (`["--replicaof", "127.0.0.1", "6390"]`). */
  extraArgs?: readonly string[];
}

/** A redis-server process started by {@link startRedis}. */
export interface RedisServerHandle {
  /** `redis://127.0.0.1:PORT`. */
  readonly url: string;
  /** Port; kept across restarts. */
  readonly port: number;
  /** Working folder; kept across restarts. */
  readonly dir: string;
  /** PID of the current process (changes on restart). */
  readonly pid: number;
  /** Sends `signal` (default SIGKILL, a crash) and waits for the process to exit. No-op when not running. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /**
   * Stops the process if it runs (SIGTERM, SIGKILL after 5 s), starts it again on the same
   * port and folder, and waits for PONG.
   * @throws when the server was stopped with {@link RedisServerHandle.stop} or is not ready in time.
   */
  restart(): Promise<void>;
  /** SIGTERM, SIGKILL after 5 s, then removes the temp folder the kit created. Idempotent; final. */
  stop(): Promise<void>;
  /** Runs FLUSHALL (every database). @throws when the server does not answer OK. */
  flushAll(): Promise<void>;
  /**
   * Saves the whole dataset now (SAVE) and keeps the file aside: a backup, or what a lagging
   * replica holds. @returns the snapshot, for {@link RedisServerHandle.rollbackTo}.
   */
  snapshot(): Promise<RedisSnapshot>;
  /**
   * Rolls the server back to `snapshot`: kills it (SIGKILL), drops what it persisted since,
   * and starts it from the snapshot on the same port. Every write after the snapshot is lost,
   * as after a failover to a lagging replica, a lost AOF tail or a restore from a backup.
   */
  rollbackTo(snapshot: RedisSnapshot): Promise<void>;
  /** True while the current process has not exited. */
  isRunning(): boolean;
  /** The last 200 lines the server printed, across restarts. */
  logs(): string[];
}

/** A saved dataset of a redis-server started by the kit. */
export interface RedisSnapshot {
  /** The RDB file, in the server's folder. */
  readonly file: string;
  /** When it was taken, ms since the epoch. */
  readonly atMs: number;
}

const LOG_LINES = 200;
const STOP_GRACE_MS = 5_000;

/**
 * Starts redis-server bound to 127.0.0.1 only (protected mode on, no daemon), with a temp
 * working folder, and waits until PING answers PONG.
 *
 * @throws when the binary is missing, or the server exits or does not answer in time;
 *   the error carries the server's last log lines.
 */
export async function startRedis(opts: StartRedisOptions = {}): Promise<RedisServerHandle> {
  const { redisServer } = await ensureBinaries();
  const tempDir = opts.dir === undefined ? await createTempDir("redis") : undefined;
  const server = new RedisServer(redisServer, {
    ...opts,
    port: opts.port ?? (await freePort()),
    dir: opts.dir ?? (tempDir as string),
    tempDir,
  });
  try {
    await server.start();
  } catch (err) {
    await server.stop();
    throw err;
  }
  return server;
}

type ResolvedOptions = StartRedisOptions & { port: number; dir: string; tempDir: string | undefined };

class RedisServer implements RedisServerHandle {
  readonly url: string;
  readonly port: number;
  readonly dir: string;
  readonly #binary: string;
  readonly #opts: ResolvedOptions;
  #child: ChildHandle | undefined;
  #previousLogs: string[] = [];
  #stopped = false;

  constructor(binary: string, opts: ResolvedOptions) {
    this.#binary = binary;
    this.#opts = opts;
    this.port = opts.port;
    this.dir = opts.dir;
    this.url = `redis://127.0.0.1:${opts.port}`;
  }

  get pid(): number {
    return this.#child?.pid ?? -1;
  }

  isRunning(): boolean {
    return this.#child?.isRunning() ?? false;
  }

  logs(): string[] {
    return [...this.#previousLogs, ...(this.#child?.lines() ?? [])].slice(-LOG_LINES);
  }

  /** `fromRdb`: load dump.rdb even when persistence keeps an AOF (turned on after loading). */
  async start(fromRdb = false): Promise<void> {
    const persistence =
      this.#opts.persistence && !fromRdb
        ? ["--appendonly", "yes", "--appendfsync", "always"]
        : ["--save", "", "--appendonly", "no"];
    this.#child = await spawnProcess({
      name: `redis-server:${this.port}`,
      command: this.#binary,
      args: [
        ...(this.#opts.configFile === undefined ? [] : [this.#opts.configFile]),
        "--port",
        String(this.port),
        "--bind",
        "127.0.0.1",
        "--protected-mode",
        "yes",
        "--daemonize",
        "no",
        "--dir",
        this.dir,
        "--logfile",
        "",
        ...persistence,
        ...(this.#opts.aclFile === undefined ? [] : ["--aclfile", this.#opts.aclFile]),
        ...(this.#opts.extraArgs ?? []),
      ],
      maxLines: LOG_LINES,
    });
    await this.#waitReady(this.#child);
  }

  async kill(signal: NodeJS.Signals = "SIGKILL"): Promise<void> {
    await this.#child?.kill(signal);
  }

  async restart(): Promise<void> {
    if (this.#stopped) throw new Error(`redis-server ${this.url} was stopped and cannot be restarted`);
    await this.#child?.stop(STOP_GRACE_MS);
    this.#previousLogs = [...this.logs(), `--- testkit: restarting redis-server on port ${this.port} ---`];
    await this.start();
  }

  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    await this.#child?.stop(STOP_GRACE_MS);
    if (this.#opts.tempDir !== undefined) await removeTempDir(this.#opts.tempDir);
  }

  async flushAll(): Promise<void> {
    const reply = await redisCommand(this.port, ["FLUSHALL"], this.#opts.auth);
    if (reply !== "+OK") throw new Error(`FLUSHALL on ${this.url} answered ${reply}`);
  }

  #snapshots = 0;

  async snapshot(): Promise<RedisSnapshot> {
    const atMs = Date.now();
    const reply = await redisCommand(this.port, ["SAVE"], this.#opts.auth, 30_000);
    if (reply !== "+OK") throw new Error(`SAVE on ${this.url} answered ${reply}`);
    const file = join(this.dir, `snapshot-${++this.#snapshots}.rdb`);
    await copyFile(join(this.dir, "dump.rdb"), file);
    return { file, atMs };
  }

  async rollbackTo(snapshot: RedisSnapshot): Promise<void> {
    if (this.#stopped) throw new Error(`redis-server ${this.url} was stopped and cannot be rolled back`);
    await this.#child?.kill("SIGKILL");
    // Redis loads the AOF when it has one: drop it, so the server starts from the snapshot.
    await rm(join(this.dir, "appendonlydir"), { recursive: true, force: true });
    await copyFile(snapshot.file, join(this.dir, "dump.rdb"));
    this.#previousLogs = [
      ...this.logs(),
      `--- testkit: rolling redis-server on port ${this.port} back to ${snapshot.file} ---`,
    ];
    // With an AOF configured, Redis would start empty rather than read the RDB: start from the
    // RDB, then turn the AOF on, which rewrites it from the loaded data (Redis's documented switch).
    await this.start(true);
    if (this.#opts.persistence) {
      for (const args of [
        ["CONFIG", "SET", "appendfsync", "always"],
        ["CONFIG", "SET", "appendonly", "yes"],
      ]) {
        const reply = await redisCommand(this.port, args, this.#opts.auth);
        if (reply !== "+OK") throw new Error(`${args.join(" ")} on ${this.url} answered ${reply}`);
      }
      const deadline = Date.now() + 10_000;
      while (
        !/aof_rewrite_in_progress:0[\s\S]*aof_rewrite_scheduled:0/.test(
          await redisInfo(this.port, this.#opts.auth),
        )
      ) {
        if (Date.now() > deadline) throw new Error(`redis-server ${this.url}: AOF rewrite did not finish`);
        await sleep(25);
      }
    }
  }

  async #waitReady(child: ChildHandle): Promise<void> {
    await waitUntilReady(
      child,
      this.#opts.readyTimeoutMs ?? 10_000,
      async () => {
        const reply = await redisCommand(this.port, ["PING"], this.#opts.auth);
        // While loading the AOF the server answers "-LOADING ...": not ready yet.
        return reply === "+PONG" ? undefined : `PING answered ${reply}`;
      },
      (why) => this.#startError(why),
    );
  }

  #startError(why: string): Error {
    const tail = this.logs().slice(-30).join("\n");
    return new Error(`redis-server on 127.0.0.1:${this.port} ${why}\n--- last log lines ---\n${tail}`);
  }
}

type KitAuth = StartRedisOptions["auth"];

/** RESP for `args`, preceded by `AUTH user password` when the kit authenticates. */
function request(args: readonly string[], auth: KitAuth): string {
  const one = (a: readonly string[]) =>
    `*${a.length}\r\n${a.map((x) => `$${Buffer.byteLength(x)}\r\n${x}\r\n`).join("")}`;
  return (auth ? one(["AUTH", auth.username, auth.password]) : "") + one(args);
}

/**
 * What follows AUTH's `+OK` line when the kit authenticates: undefined while AUTH's reply is
 * incomplete; AUTH's own error line when it was refused (the caller reports it as the reply).
 */
function afterAuth(received: string, auth: KitAuth): string | undefined {
  if (!auth) return received;
  const end = received.indexOf("\r\n");
  if (end < 0) return undefined;
  const line = received.slice(0, end);
  return line === "+OK" ? received.slice(end + 2) : `${line}\r\n`;
}

/** `INFO persistence` as text (a bulk reply, read whole). */
function redisInfo(port: number, auth: KitAuth, timeoutMs = 2_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tcpConnect({ host: "127.0.0.1", port });
    let received = "";
    socket.setTimeout(timeoutMs, () => socket.destroy(new Error(`redis on port ${port} did not answer`)));
    socket.once("connect", () => socket.write(request(["INFO", "persistence"], auth)));
    socket.on("data", (chunk: Buffer) => {
      received += chunk.toString("utf8");
      const reply = afterAuth(received, auth);
      if (reply === undefined) return;
      if (reply.startsWith("-")) {
        socket.destroy();
        reject(new Error(`INFO on port ${port} answered ${reply.trim()}`));
        return;
      }
      const m = /^\$(\d+)\r\n/.exec(reply);
      if (m && Buffer.byteLength(reply) >= m[0].length + Number(m[1])) {
        socket.destroy();
        resolve(reply.slice(m[0].length));
      }
    });
    socket.once("error", reject);
  });
}

/**
 * Sends one command in RESP on a fresh connection (after AUTH when `auth` is given) and
 * returns the first reply line (`+PONG`, `+OK`, `-ERR …`; AUTH's error line when it was
 * refused). Enough for readiness and FLUSHALL without a client library.
 */
function redisCommand(port: number, args: string[], auth: KitAuth, timeoutMs = 2_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tcpConnect({ host: "127.0.0.1", port });
    let received = "";
    socket.setTimeout(timeoutMs, () =>
      socket.destroy(new Error(`redis on port ${port} did not answer in ${timeoutMs} ms`)),
    );
    socket.once("connect", () => socket.write(request(args, auth)));
    socket.on("data", (chunk: Buffer) => {
      received += chunk.toString("utf8");
      const reply = afterAuth(received, auth);
      const end = reply?.indexOf("\r\n") ?? -1;
      if (reply === undefined || end < 0) return;
      socket.destroy();
      resolve(reply.slice(0, end));
    });
    socket.once("error", reject);
    socket.once("close", () =>
      reject(new Error(`redis on port ${port} closed the connection without a reply`)),
    );
  });
}
