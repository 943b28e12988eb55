import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { Redis } from "ioredis";
import { ensureBinaries } from "./binaries.ts";
import { type ChildHandle, spawnProcess } from "./child-process.ts";
import { freePort } from "./ports.ts";
import { type RedisServerHandle, type StartRedisOptions, startRedis } from "./redis-server.ts";
import { createTempDir, removeTempDir } from "./temp-dirs.ts";

/** Options of {@link startRedisSentinel}. */
export interface StartRedisSentinelOptions {
  /** The name the sentinels monitor the primary under (default `jetmesh`). */
  readonly name?: string;
  /** Sentinel processes (default 3). */
  readonly sentinels?: number;
  /** Sentinels that must agree the primary is down (default a majority). */
  readonly quorum?: number;
  /** `down-after-milliseconds`: silence before a sentinel thinks the primary is down (default 1000). */
  readonly downAfterMs?: number;
  /** `failover-timeout` (default 3000). */
  readonly failoverTimeoutMs?: number;
  /** How long start-up waits for the replica to sync and the sentinels to see each other (default 30 000 ms). */
  readonly readyTimeoutMs?: number;
  /**
   * How both servers start (the replica then gets `--replicaof` the primary): a redis.conf, an
   * ACL file, more arguments, and `auth`, the user the kit itself authenticates as on them (its
   * INFO, REPLICAOF, CONFIG and CLIENT calls): needed once an ACL turns the `default` user off.
   * Default: none of these, every client is the default user.
   */
  readonly server?: Pick<StartRedisOptions, "configFile" | "aclFile" | "auth" | "extraArgs">;
  /**
   * Lines added to each sentinel's config after `sentinel monitor` and its timings, e.g. an
   * `include` of the sentinels' users and of the credentials they log in to the servers with.
   */
  readonly sentinelConfig?: readonly string[];
  /** The user the kit's own SENTINEL calls authenticate as, once the sentinels' `default` user is off. */
  readonly sentinelAuth?: { readonly username: string; readonly password: string };
}

/** How the primary is made to fail ({@link RedisSentinelHandle.failPrimary}). */
export interface FailPrimaryOptions {
  /** SIGKILL (a crash, the default) or SIGSTOP (a hang: the TCP connections stay open). */
  readonly signal?: "SIGKILL" | "SIGSTOP";
  /**
   * Cut the replica's link for this long before the primary fails, so the writes of that
   * time reach the primary only and the replica promoted after it lacks them: a rolled-back
   * tail, as an asynchronous replica that lags (done with a `requirepass` the replica lacks:
   * connections opened later are refused too). 0 (the default): the link stays up. Not with
   * servers started with `server.auth`, whose replica logs in as a user of their ACL.
   */
  readonly lagMs?: number;
}

/** What {@link RedisSentinelHandle.failPrimary} did. */
export interface FailedPrimary {
  readonly server: RedisServerHandle;
  /** The primary's replication offset just before it failed. */
  readonly offset: number;
}

/** A primary, a replica and sentinels watching them, started by {@link startRedisSentinel}. */
export interface RedisSentinelHandle {
  /** The monitored group's name (REDIS_SENTINEL_NAME). */
  readonly name: string;
  /** `127.0.0.1:p1,127.0.0.1:p2,…` (REDIS_SENTINELS). */
  readonly sentinels: string;
  /** `{ REDIS_SENTINELS, REDIS_SENTINEL_NAME }` for a service's environment. */
  readonly env: Readonly<Record<string, string>>;
  /** The data servers: the first primary, then its replica. */
  readonly servers: readonly RedisServerHandle[];
  /** The server the sentinels name as primary now. @throws when no sentinel answers or it names neither server. */
  primary(): Promise<RedisServerHandle>;
  /** Fails the current primary (see {@link FailPrimaryOptions}). */
  failPrimary(o?: FailPrimaryOptions): Promise<FailedPrimary>;
  /**
   * Waits until every sentinel (but a paused one) names a server other than `from` and that server says
   * `role:master`. @returns it, with the replication offset it had when promoted.
   * @throws after `timeoutMs` (default 30 000), with the sentinels' last log lines.
   */
  waitForFailover(
    from: RedisServerHandle,
    timeoutMs?: number,
  ): Promise<{ readonly server: RedisServerHandle; readonly promotedAtOffset: number }>;
  /**
   * Brings a failed server back as a replica of the current primary, as an operator would:
   * resumed (SIGSTOP) or restarted empty (SIGKILL), then `REPLICAOF` the primary. Resolves
   * once it is in sync and every sentinel counts it as a healthy replica, so it can be
   * promoted at the next failover. @throws after `timeoutMs` (default 30 000).
   */
  rejoin(server: RedisServerHandle, timeoutMs?: number): Promise<void>;
  /**
   * Pauses sentinel `index` (SIGSTOP, in the order of `sentinels`): it keeps its connections
   * and answers nothing, a hung sentinel. @returns what resumes it (SIGCONT).
   */
  pauseSentinel(index: number): () => void;
  /** Sentinel log lines (the last 200 of each), for a failure message. */
  logs(): string[];
  /** Stops the sentinels and both servers (a stopped one is resumed first). Idempotent. */
  stop(): Promise<void>;
}

const LOG_LINES = 200;

/**
 * Starts a Redis primary and one replica (redis-server, each on a free 127.0.0.1 port with
 * its own temp folder) and `sentinels` Sentinel processes (`redis-server <conf> --sentinel`)
 * that monitor the primary with short timeouts, and waits until the replica is in sync and
 * every sentinel sees the replica and a quorum of sentinels (`SENTINEL CKQUORUM`).
 * Every process is registered with the kit: it dies with this one.
 * @throws when a process does not start or the group is not ready in time; what started is stopped.
 */
export async function startRedisSentinel(o: StartRedisSentinelOptions = {}): Promise<RedisSentinelHandle> {
  const name = o.name ?? "jetmesh";
  const count = o.sentinels ?? 3;
  const quorum = o.quorum ?? Math.floor(count / 2) + 1;
  const readyTimeoutMs = o.readyTimeoutMs ?? 30_000;
  const { redisServer } = await ensureBinaries();
  const serverAuth = o.server?.auth;
  const command = (server: RedisServerHandle, ...args: string[]): Promise<string> =>
    call(server.port, args, serverAuth).then(String);
  const sentinelCall = (port: number, ...args: string[]): Promise<unknown> =>
    call(port, ["SENTINEL", ...args], o.sentinelAuth);
  const servers: RedisServerHandle[] = [];
  const children: ChildHandle[] = [];
  const dir = await createTempDir("sentinel");
  const stopped = new Set<RedisServerHandle>();
  const pausedSentinels = new Set<ChildHandle>();
  /** Servers whose replica link was cut with a password (failPrimary's lagMs). */
  const cut = new Set<RedisServerHandle>();
  let done: Promise<void> | undefined;
  const stop = () => {
    done ??= (async () => {
      for (const c of pausedSentinels) if (c.isRunning()) process.kill(c.pid, "SIGCONT");
      await Promise.all(children.map((c) => c.stop(2_000)));
      for (const s of servers) if (s.isRunning()) resume(s);
      await Promise.all(servers.map((s) => s.stop()));
      await removeTempDir(dir);
    })();
    return done;
  };
  try {
    servers.push(await startRedis(o.server));
    const first = servers[0] as RedisServerHandle;
    const replicaOf = ["--replicaof", "127.0.0.1", String(first.port)];
    servers.push(
      await startRedis({ ...o.server, extraArgs: [...(o.server?.extraArgs ?? []), ...replicaOf] }),
    );
    const deadline = Date.now() + readyTimeoutMs;
    await until(deadline, "the replica to sync", async () =>
      /master_link_status:up/.test(await command(servers[1] as RedisServerHandle, "INFO", "replication")),
    );
    const ports: number[] = [];
    for (let i = 0; i < count; i++) {
      const port = await freePort();
      const conf = join(dir, `sentinel-${port}.conf`);
      // Sentinels rewrite their file (what they learn about peers and replicas): a file each.
      await writeFile(
        conf,
        [
          `port ${port}`,
          "bind 127.0.0.1",
          "daemonize no",
          'logfile ""',
          `dir ${dir}`,
          `sentinel monitor ${name} 127.0.0.1 ${first.port} ${quorum}`,
          `sentinel down-after-milliseconds ${name} ${o.downAfterMs ?? 1000}`,
          `sentinel failover-timeout ${name} ${o.failoverTimeoutMs ?? 3000}`,
          `sentinel parallel-syncs ${name} 1`,
          ...(o.sentinelConfig ?? []),
          "",
        ].join("\n"),
      );
      children.push(
        await spawnProcess({
          name: `redis-sentinel:${port}`,
          command: redisServer,
          args: [conf, "--sentinel"],
          maxLines: LOG_LINES,
        }),
      );
      ports.push(port);
    }
    await until(deadline, `${count} sentinels to see the replica and each other`, async () => {
      for (const port of ports) {
        const replicas = (await sentinelCall(port, "REPLICAS", name)) as unknown[];
        const quorumOk = String(await sentinelCall(port, "CKQUORUM", name));
        if (replicas.length < 1 || !quorumOk.startsWith(`OK ${count} usable Sentinels`)) return false;
      }
      return true;
    }).catch(withSentinelLogs);
    const sentinels = ports.map((p) => `127.0.0.1:${p}`).join(",");
    const byPort = (port: number) => servers.find((s) => s.port === port);
    const named = async (port: number): Promise<number> => {
      const addr = (await sentinelCall(port, "GET-MASTER-ADDR-BY-NAME", name)) as [string, string];
      return Number(addr[1]);
    };
    const primary = async (): Promise<RedisServerHandle> => {
      for (const port of ports) {
        const p = await named(port).catch(() => undefined);
        const s = p === undefined ? undefined : byPort(p);
        if (s) return s;
      }
      throw new Error(`no sentinel of ${sentinels} names one of the kit's servers as primary`);
    };
    return {
      name,
      sentinels,
      env: { REDIS_SENTINELS: sentinels, REDIS_SENTINEL_NAME: name },
      servers,
      primary,
      async failPrimary(f = {}) {
        if (f.lagMs && serverAuth)
          throw new Error("failPrimary's lagMs cannot cut a replica that logs in as an ACL user");
        const server = await primary();
        // One connection, open before the cut: new ones are refused once it is in place.
        const client = connection(server.port, serverAuth);
        try {
          await client.connect();
          if (f.lagMs) {
            // The replica is dropped and cannot come back (its resync is refused without the
            // password it does not have): what the primary takes from now on, the replica
            // never sees. Connections already open, the services' too, keep working.
            await client.call("CONFIG", "SET", "requirepass", `cut-${Date.now()}`);
            cut.add(server);
            await client.call("CLIENT", "KILL", "TYPE", "replica");
            await sleep(f.lagMs);
          }
          const offset = offsetIn(String(await client.call("INFO", "replication")));
          stopped.add(server);
          if (f.signal === "SIGSTOP") process.kill(server.pid, "SIGSTOP");
          else await server.kill("SIGKILL");
          return { server, offset };
        } finally {
          client.disconnect();
        }
      },
      async waitForFailover(from, timeoutMs = 30_000) {
        let found: RedisServerHandle | undefined;
        await until(Date.now() + timeoutMs, "the sentinels to promote the replica", async () => {
          const asked = ports.filter((_, i) => !pausedSentinels.has(children[i] as ChildHandle));
          const names = await Promise.all(asked.map((p) => named(p).catch(() => undefined)));
          const s = names[0] === undefined ? undefined : byPort(names[0]);
          if (!s || s === from || names.some((n) => n !== s.port)) return false;
          if (!/role:master/.test(await command(s, "INFO", "replication"))) return false;
          found = s;
          return true;
        }).catch(withSentinelLogs);
        const server = found as RedisServerHandle;
        // A promoted replica starts a new replication history at the offset it had reached.
        const info = await command(server, "INFO", "replication");
        const second = /second_repl_offset:(-?\d+)/.exec(info);
        return { server, promotedAtOffset: second ? Number(second[1]) - 1 : offsetIn(info) };
      },
      async rejoin(server, timeoutMs = 30_000) {
        if (server.isRunning()) resume(server);
        // Cut off with a password it keeps while it runs: restarted (empty) instead.
        if (!server.isRunning() || cut.has(server)) await server.restart();
        stopped.delete(server);
        cut.delete(server);
        const deadline = Date.now() + timeoutMs;
        await until(deadline, `${server.url} to replicate the primary`, async () => {
          const now = await primary();
          if (now === server) throw new Error(`${server.url} is still the primary`);
          await command(server, "REPLICAOF", "127.0.0.1", String(now.port));
          return /master_link_status:up/.test(await command(server, "INFO", "replication"));
        });
        await until(deadline, `every sentinel to count ${server.url} as a healthy replica`, async () => {
          for (const port of ports) {
            const replicas = (await sentinelCall(port, "REPLICAS", name)) as string[][];
            const mine = replicas.map(fields).find((r) => Number(r.port) === server.port);
            if (!mine || /s_down|o_down|disconnected/.test(mine.flags ?? "")) return false;
            if (mine["master-link-status"] !== "ok") return false;
          }
          return true;
        }).catch(withSentinelLogs);
      },
      pauseSentinel(index) {
        const child = children[index];
        if (!child) throw new Error(`no sentinel ${index} (there are ${children.length})`);
        process.kill(child.pid, "SIGSTOP");
        pausedSentinels.add(child);
        return () => {
          if (pausedSentinels.delete(child) && child.isRunning()) process.kill(child.pid, "SIGCONT");
        };
      },
      logs: () => children.flatMap((c) => c.lines()),
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }

  function withSentinelLogs(err: unknown): never {
    const tail = children.flatMap((c) => c.lines()).slice(-40);
    throw new Error(`${(err as Error).message}\n--- sentinel logs ---\n${tail.join("\n")}`);
  }

  function resume(s: RedisServerHandle): void {
    if (!stopped.has(s)) return;
    try {
      process.kill(s.pid, "SIGCONT");
    } catch {
      // exited already
    }
  }
}

/** A sentinel's flat `[key, value, …]` reply as an object. */
function fields(flat: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i + 1 < flat.length; i += 2) out[flat[i] as string] = flat[i + 1] as string;
  return out;
}

function offsetIn(info: string): number {
  const m = /master_repl_offset:(\d+)/.exec(info);
  if (!m) throw new Error(`no master_repl_offset in INFO replication:\n${info}`);
  return Number(m[1]);
}

/** Polls `check` every 100 ms until it is true. @throws naming `what` at the deadline. */
async function until(deadline: number, what: string, check: () => Promise<boolean>): Promise<void> {
  let last = "";
  while (Date.now() < deadline) {
    try {
      if (await check()) return;
    } catch (err) {
      last = ` (last error: ${(err as Error).message})`;
    }
    await sleep(100);
  }
  throw new Error(`timed out waiting for ${what}${last}`);
}

type KitAuth = StartRedisSentinelOptions["sentinelAuth"];

/** A client that fails fast and never reconnects, logged in as `auth` when given. */
function connection(port: number, auth: KitAuth): Redis {
  const client = new Redis({
    host: "127.0.0.1",
    port,
    ...(auth ? { username: auth.username, password: auth.password } : {}),
    lazyConnect: true,
    enableReadyCheck: false,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    connectTimeout: 1000,
    commandTimeout: 1000,
  });
  client.on("error", () => {});
  return client;
}

/** One command on a short-lived connection, failing fast. */
async function call(port: number, args: readonly string[], auth: KitAuth): Promise<unknown> {
  const client = connection(port, auth);
  try {
    await client.connect();
    return await client.call(args[0] as string, ...args.slice(1));
  } finally {
    client.disconnect();
  }
}
