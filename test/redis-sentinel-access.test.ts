// Redis failing over with least privilege (issue 17): a real primary and replica started with
// the users.acl `jetmesh-access redis` generates, and three real sentinels with its
// sentinel-auth.conf, on loopback. The sentinels log in to the servers and to each other as the
// generated sentinel user; killing the primary, they promote the replica (every command of a
// failover is allowed: no ACL refusal anywhere) and make the old primary, back, its replica; a
// client built by the runtime's createRedis from a service's environment finds the primary
// through the sentinels as the service's own user and follows. What the sentinel user and the
// services' users may not do, on the servers and on the sentinels, is refused. Last, a sentinel
// run as docker-compose.yml runs one (its start script, deploy/redis/sentinel.conf) restarts
// after a rotation with the new credentials (without the script's strip it does not start at
// all: its rewrite copied the include's users into its file, and Redis refuses a user twice).
// And sentinels that hand out host names, as compose's do: a late +switch-master naming by name
// the primary the client is already on leaves it alone (it reconnected without a lookup).
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type RedisAccess, REDIS_USERS, redisAccess } from "@jetmesh/access";
import {
  ConfigError,
  createRedis,
  loadRedisSentinel,
  loadStageConfig,
  type Redis,
  readSecretFile,
} from "@jetmesh/stage";
import {
  ensureBinaries,
  freePort,
  type RedisServerHandle,
  type RedisSentinelHandle,
  spawnProcess,
  startRedis,
  startRedisSentinel,
  stopAllProcesses,
  waitFor,
} from "@jetmesh/testkit";
import { Redis as IORedis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";

const NOPERM = /NOPERM/;

let dir: string;
let access: RedisAccess;
let group: RedisSentinelHandle;
const groups: RedisSentinelHandle[] = [];
const clients: IORedis[] = [];

const passwordOf = (a: RedisAccess, user: string): string =>
  readSecretFile(a.passwordFiles[user]!, `${user} password`);

/**
 * The servers as deploy/redis/*.conf set them up (the ACL file, the replica's credentials
 * included), and sentinels that include the generated sentinel-auth.conf; the kit itself
 * logs in as admin on both.
 */
async function startGroup(
  a: RedisAccess,
  more: { serverArgs?: readonly string[]; sentinelConfig?: readonly string[] } = {},
): Promise<RedisSentinelHandle> {
  const admin = { username: "admin", password: passwordOf(a, "admin") };
  const g = await startRedisSentinel({
    server: {
      aclFile: a.aclFile,
      auth: admin,
      // Redis 7.0 waits 5 s for more replicas before a diskless full sync; one is enough here.
      extraArgs: [
        "--include",
        a.replicaAuthFile,
        "--repl-diskless-sync-delay",
        "0",
        ...(more.serverArgs ?? []),
      ],
    },
    sentinelConfig: [...(more.sentinelConfig ?? []), `include ${a.sentinelAuthFile}`],
    sentinelAuth: admin,
  });
  groups.push(g);
  return g;
}

type Credentials = { readonly username: string; readonly password: string };

/**
 * The runtime's client as a service builds it from its environment in docker-compose.yml: its
 * Redis user, and the same user and password on the sentinels.
 */
function serviceClient(g: RedisSentinelHandle, a: RedisAccess, user: string): Redis {
  const passwordFile = a.passwordFiles[user]!;
  const config = loadStageConfig({
    // REDIS_URL's host is never used with sentinels: port 1 would refuse every connection.
    REDIS_URL: "redis://127.0.0.1:1",
    REDIS_USERNAME: user,
    REDIS_PASSWORD_FILE: passwordFile,
    ...g.env,
    REDIS_SENTINEL_USERNAME: user,
    REDIS_SENTINEL_PASSWORD_FILE: passwordFile,
  });
  expect(config.redisSentinel?.username).toBe(user);
  const redis = createRedis({
    url: config.redisUrl,
    name: "sentinel-access-test",
    commandTimeoutMs: 1000,
    auth: config.redisAuth,
    ...(config.redisSentinel ? { sentinel: config.redisSentinel } : {}),
    onError: () => {},
  });
  clients.push(redis);
  return redis;
}

/** The port of the server `redis` is connected to, from its own INFO. */
const connectedPort = async (redis: Redis) =>
  Number(/tcp_port:(\d+)/.exec(String(await redis.info("server")))?.[1]);

/**
 * A plain client of one server or sentinel, logged in with `creds`. None: no AUTH at all, and
 * RESP2 (a RESP3 client's HELLO would be refused before its first command). @throws the refusal.
 */
async function connectAs(port: number, creds?: Credentials): Promise<IORedis> {
  const c = new IORedis({
    host: "127.0.0.1",
    port,
    ...(creds ?? { protocol: 2 }),
    lazyConnect: true,
    enableReadyCheck: false,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    commandTimeout: 3000,
  });
  let refused: Error | undefined;
  c.on("error", (err: Error) => {
    refused ??= err;
  });
  clients.push(c);
  await c.connect().catch((err: Error) => {
    throw refused ?? err;
  });
  return c;
}

/** {@link connectAs} the generated `user` of `a` (none: no login). */
const login = (port: number, a: RedisAccess, user?: string): Promise<IORedis> =>
  connectAs(port, user ? { username: user, password: passwordOf(a, user) } : undefined);

/** The reply or the error's message: refusals are what these tests look at. */
const outcome = (p: Promise<unknown>): Promise<string> =>
  p.then(
    (v) => `ok: ${JSON.stringify(v)}`,
    (err: Error) => err.message,
  );

/** ACL LOG of a server or sentinel, as admin: every refusal it logged since it started. */
async function aclLog(port: number, a: RedisAccess): Promise<{ username: string; object: string }[]> {
  const admin = await login(port, a, "admin");
  const entries = (await admin.call("ACL", "LOG")) as unknown[][];
  return entries.map((e) => {
    const f: Record<string, unknown> = {};
    for (let i = 0; i + 1 < e.length; i += 2) f[String(e[i])] = e[i + 1];
    return { username: String(f.username), object: String(f.object) };
  });
}

const portsOf = (g: RedisSentinelHandle): number[] =>
  g.sentinels.split(",").map((hp) => Number(hp.split(":")[1]));

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "jetmesh-sentinel-acl-"));
  access = await redisAccess({ out: join(dir, "secrets") });
  group = await startGroup(access);
}, 60_000);

afterAll(async () => {
  for (const c of clients) c.disconnect();
  await Promise.all(groups.map((g) => g.stop()));
  await stopAllProcesses();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe("redis sentinel access", () => {
  it("sentinel access - the sentinels are logged in to both servers as the sentinel user, each link named by its sentinel", async () => {
    for (const server of group.servers) {
      const admin = await login(server.port, access, "admin");
      const list = String(await admin.call("CLIENT", "LIST"));
      const sentinels = list.split("\n").filter((l) => / name=sentinel-[0-9a-f]{8}-(cmd|pubsub) /.test(l));
      // three sentinels, each with a command link and a pub/sub link
      expect(sentinels, list).toHaveLength(6);
      for (const l of sentinels) expect(l).toContain(" user=sentinel ");
    }
  });

  it("sentinel access - on the servers the sentinel user reads and writes no key, flushes nothing, reconfigures nothing but by failover", async () => {
    const primary = await group.primary();
    const sentinel = await login(primary.port, access, "sentinel");
    const attempts: Record<string, Promise<unknown>> = {
      get: sentinel.get("validator:x"),
      set: sentinel.set("validator:x", "1"),
      del: sentinel.del("ledger:bal:acc-1"),
      flushall: sentinel.flushall(),
      keys: sentinel.keys("*"),
      scan: sentinel.scan("0"),
      eval: sentinel.eval("return 1", 0),
      "config get": sentinel.config("GET", "requirepass"),
      "config set": sentinel.config("SET", "appendonly", "no"),
      acl: sentinel.call("ACL", "LIST"),
      replicaof: sentinel.call("REPLICAOF", "127.0.0.1", "1"),
      "client list": sentinel.call("CLIENT", "LIST"),
      shutdown: sentinel.call("SHUTDOWN", "NOSAVE"),
      "publish elsewhere": sentinel.publish("+switch-master", "x"),
    };
    for (const [what, p] of Object.entries(attempts)) expect(await outcome(p), what).toMatch(NOPERM);
    // the hello channel, and nothing else, is its to publish on
    expect(await outcome(sentinel.publish("__sentinel__:hello", "x"))).toMatch(/^ok/);
    const sub = await login(primary.port, access, "sentinel");
    expect(await outcome(sub.subscribe("other"))).toMatch(NOPERM);
  });

  it("sentinel access - on the sentinels a service's user finds the primary and hears of failovers, and may change nothing", async () => {
    const [port] = portsOf(group) as [number];
    const validator = await login(port, access, "validator");
    const primary = await group.primary();
    expect(await validator.call("SENTINEL", "GET-MASTER-ADDR-BY-NAME", group.name)).toEqual([
      "127.0.0.1",
      String(primary.port),
    ]);
    expect(await outcome(validator.call("SENTINEL", "SENTINELS", group.name))).toMatch(/^ok/);
    const attempts: Record<string, Promise<unknown>> = {
      failover: validator.call("SENTINEL", "FAILOVER", group.name),
      set: validator.call("SENTINEL", "SET", group.name, "quorum", "1"),
      remove: validator.call("SENTINEL", "REMOVE", group.name),
      monitor: validator.call("SENTINEL", "MONITOR", "evil", "127.0.0.1", "1", "1"),
      reset: validator.call("SENTINEL", "RESET", "*"),
      "config set": validator.call("SENTINEL", "CONFIG", "SET", "resolve-hostnames", "yes"),
      replicas: validator.call("SENTINEL", "REPLICAS", group.name),
      acl: validator.call("ACL", "LIST"),
      "client kill": validator.call("CLIENT", "KILL", "TYPE", "normal"),
      "publish hello": validator.publish("__sentinel__:hello", "x"),
    };
    for (const [what, p] of Object.entries(attempts)) expect(await outcome(p), what).toMatch(NOPERM);
    const sub = await login(port, access, "validator");
    expect(await outcome(sub.subscribe("+switch-master"))).toMatch(/^ok/);
    const other = await login(port, access, "validator");
    expect(await outcome(other.subscribe("+sdown"))).toMatch(NOPERM);
    // the sentinels' own user talks to its peers, and cannot fail over either
    const peer = await login(port, access, "sentinel");
    expect(await outcome(peer.call("SENTINEL", "FAILOVER", group.name))).toMatch(NOPERM);
    expect(await outcome(peer.call("SENTINEL", "GET-MASTER-ADDR-BY-NAME", group.name))).toMatch(NOPERM);
    // without a login, nothing; the replica's user does not exist on the sentinels
    const anonymous = await login(port, access);
    expect(await outcome(anonymous.call("SENTINEL", "GET-MASTER-ADDR-BY-NAME", group.name))).toMatch(
      /NOAUTH/,
    );
    expect(await outcome(login(port, access, "replica"))).toMatch(/WRONGPASS/);
  });

  it("sentinel access - the primary killed, the sentinels promote the replica and repoint the old primary, with no ACL refusal; a service's client follows as its own user", async () => {
    const redis = serviceClient(group, access, "validator");
    // the tests above provoked refusals on purpose: start from empty logs
    for (const port of [...group.servers.map((s) => s.port), ...portsOf(group)])
      expect(await (await login(port, access, "admin")).call("ACL", "LOG", "RESET")).toBe("OK");
    const first = await group.primary();
    await redis.set("validator:before", "1");
    expect(await connectedPort(redis)).toBe(first.port);

    const failed = await group.failPrimary();
    const { server: promoted } = await group.waitForFailover(failed.server);
    expect(promoted).not.toBe(first);
    await waitFor(() => redis.set("validator:after", "1").then((r) => r === "OK"), {
      timeoutMs: 20_000,
      intervalMs: 100,
      what: "the client to write on the promoted replica",
    });
    expect(await connectedPort(redis)).toBe(promoted.port);
    expect(await redis.get("validator:before")).toBe("1");

    // the old primary, restarted (empty, a master by its config): the sentinels make it a
    // replica of the new one themselves (SLAVEOF as the sentinel user; the kit sends nothing)
    await failed.server.restart();
    await waitFor(
      async () => {
        const admin = await login(failed.server.port, access, "admin");
        const info = String(await admin.info("replication"));
        admin.disconnect();
        return (
          info.includes("role:slave") &&
          info.includes(`master_port:${promoted.port}`) &&
          info.includes("master_link_status:up")
        );
      },
      { timeoutMs: 30_000, intervalMs: 250, what: "the sentinels to repoint the old primary" },
    ).catch((err: Error) => {
      throw new Error(`${err.message}\n${group.logs().slice(-30).join("\n")}`);
    });

    // nothing was refused since the logs were cleared: not the sentinels on either server
    // (the restarted one's log began with it), not a peer or the client on a sentinel
    const refused = [
      ...(await aclLog(promoted.port, access)),
      ...(await aclLog(failed.server.port, access)),
      ...(await Promise.all(portsOf(group).map((p) => aclLog(p, access)))).flat(),
    ];
    expect(refused).toEqual([]);
  }, 120_000);
});

describe("redis sentinel access: the test can fail", () => {
  it("sentinel access - a sentinel user without SLAVEOF cannot promote the replica: the failover never completes, and the replica's ACL log says why", async () => {
    const narrowed = REDIS_USERS.map((u) =>
      u.user === "sentinel" ? { ...u, commands: u.commands.filter((c) => c !== "+slaveof") } : u,
    );
    const a = await redisAccess({ out: join(dir, "narrowed"), users: narrowed });
    const g = await startGroup(a);
    const failed = await g.failPrimary();
    await expect(g.waitForFailover(failed.server, 10_000)).rejects.toThrow(/timed out/);
    const replica = g.servers.find((s: RedisServerHandle) => s !== failed.server)!;
    const refused = await aclLog(replica.port, a);
    expect(refused).toEqual(expect.arrayContaining([{ username: "sentinel", object: "slaveof" }]));
  }, 90_000);
});

describe("redis sentinel access: docker-compose's sentinel", () => {
  it("sentinel access - compose's start script on deploy/redis/sentinel.conf: the sentinel logs in with the include, and after a rotation with the new passwords, not those its rewrite copied", async () => {
    const a = await redisAccess({ out: join(dir, "compose") });
    const oldAdmin = { username: "admin", password: passwordOf(a, "admin") };
    const server = { aclFile: a.aclFile, auth: oldAdmin, extraArgs: ["--include", a.replicaAuthFile] };
    const primary = await startRedis(server);
    const replica = await startRedis({
      ...server,
      extraArgs: [...server.extraArgs, "--replicaof", "127.0.0.1", String(primary.port)],
    });
    // deploy/redis/sentinel.conf with the compose names and the secret's mount pointed here
    const port = await freePort();
    const template = join(dir, "compose-sentinel.conf");
    const state = join(dir, "compose-sentinel-state.conf");
    const conf = await readFile(new URL("../deploy/redis/sentinel.conf", import.meta.url), "utf8");
    await writeFile(
      template,
      conf
        .replace(/^port 26379$/m, `port ${port}\nbind 127.0.0.1`)
        .replace(
          "sentinel monitor jetmesh redis-primary 6379",
          `sentinel monitor jetmesh 127.0.0.1 ${primary.port}`,
        )
        .replace("/run/secrets/redis-sentinel-auth", a.sentinelAuthFile),
    );
    // compose's command for a sentinel, its paths pointed here, Redis's entrypoint replaced by the binary
    const compose = parse(await readFile(new URL("../docker-compose.yml", import.meta.url), "utf8"), {
      merge: true,
    }) as { services: Record<string, { command: string[] }> };
    const { redisServer } = await ensureBinaries();
    const script = compose.services["redis-sentinel-1"]!.command.join(" ")
      .replaceAll("/etc/redis/sentinel.conf", template)
      .replaceAll("/data/sentinel.conf", state)
      .replace("docker-entrypoint.sh redis-server", redisServer);
    expect(script).toContain(`exec ${redisServer} ${state} --sentinel`);
    const start = () =>
      spawnProcess({ name: "compose-sentinel", command: "sh", args: ["-c", script], maxLines: 200 });

    /** Waits for the sentinel's command link on the primary, logged in as the sentinel user. */
    const linked = (admin: Credentials, what: string) =>
      waitFor(
        async () => {
          const myid = /^sentinel myid ([0-9a-f]{8})/m.exec(
            await readFile(state, "utf8").catch(() => ""),
          )?.[1];
          const c = await connectAs(primary.port, admin);
          const list = String(await c.call("CLIENT", "LIST"));
          c.disconnect();
          return list
            .split("\n")
            .some((l) => l.includes(` name=sentinel-${myid}-cmd `) && l.includes(" user=sentinel "));
        },
        { timeoutMs: 20_000, intervalMs: 200, what },
      ).catch((err: Error) => {
        throw new Error(`${err.message}\n${sentinel.lines().slice(-20).join("\n")}`);
      });
    let sentinel = await start();
    await linked(oldAdmin, "the sentinel's link");
    // its rewrite copied the users and the credentials into its file, after the include
    await waitFor(async () => /^sentinel auth-pass jetmesh /m.test(await readFile(state, "utf8")), {
      what: "the rewrite",
    });

    // every password rotated; the servers load the new ACL; the sentinel restarts as compose restarts it
    await redisAccess({ out: join(dir, "compose"), rotate: true });
    const newAdmin = { username: "admin", password: passwordOf(a, "admin") };
    expect(newAdmin.password).not.toBe(oldAdmin.password);
    for (const p of [primary.port, replica.port])
      expect(await (await connectAs(p, oldAdmin)).call("ACL", "LOAD")).toBe("OK");
    await sentinel.stop();
    sentinel = await start();
    await linked(newAdmin, "the sentinel's link after the rotation");
    expect(await (await connectAs(port, newAdmin)).ping()).toBe("PONG");
    expect(await outcome((await connectAs(port)).ping())).toMatch(/NOAUTH/);
    expect(await outcome(connectAs(port, oldAdmin))).toMatch(/WRONGPASS/);
    // what it learned stays: the include, the group, its replica
    const kept = await readFile(state, "utf8");
    expect(kept).toContain(`include ${a.sentinelAuthFile}`);
    expect(kept).toMatch(new RegExp(`^sentinel monitor jetmesh 127\\.0\\.0\\.1 ${primary.port} 2$`, "m"));
    expect(kept).toMatch(/^sentinel known-replica jetmesh /m);
    await sentinel.stop();
  }, 90_000);
});

describe("redis sentinel access: names announced", () => {
  it("sentinel access - sentinels announcing host names (compose's announce-hostnames): a late +switch-master naming the primary the client is on, by name, leaves its connection alone", async () => {
    // As deploy/redis/*.conf: the servers announce a name as replicas and the sentinels hand
    // names out. On loopback the name is localhost; the client's socket knows only addresses.
    const g = await startGroup(access, {
      serverArgs: ["--replica-announce-ip", "localhost"],
      sentinelConfig: ["sentinel resolve-hostnames yes", "sentinel announce-hostnames yes"],
    });
    const redis = serviceClient(g, access, "validator");
    await redis.set("validator:named", "0");
    // one sentinel hangs through the failover, and announces it when it learns of it, late
    const resume = g.pauseSentinel(0);
    const failed = await g.failPrimary();
    const { server: promoted } = await g.waitForFailover(failed.server);
    await waitFor(() => redis.set("validator:named", "1").then((r) => r === "OK"), {
      timeoutMs: 20_000,
      intervalMs: 100,
      what: "writes on the promoted replica",
    });
    expect(await connectedPort(redis)).toBe(promoted.port);
    let reconnects = 0;
    redis.on("reconnecting", () => reconnects++);
    resume();
    const [sentinel0] = portsOf(g) as [number];
    const asked = await connectAs(sentinel0, { username: "admin", password: passwordOf(access, "admin") });
    await waitFor(
      async () => {
        const addr = (await asked.call("SENTINEL", "GET-MASTER-ADDR-BY-NAME", g.name)) as string[];
        return Number(addr[1]) === promoted.port ? addr : undefined;
      },
      { timeoutMs: 20_000, intervalMs: 100, what: "the resumed sentinel knowing the new primary" },
    ).then((addr) => expect(addr[0], "the sentinels hand out a name").toBe("localhost"));
    await new Promise((r) => setTimeout(r, 1000));
    expect(reconnects).toBe(0);
    expect(redis.status).toBe("ready");
    expect(await connectedPort(redis)).toBe(promoted.port);
  }, 90_000);
});

describe("redis sentinel access: configuration", () => {
  it("sentinel access - REDIS_SENTINEL_USERNAME needs the sentinels and a password file; with both, the client logs in as it", () => {
    const sentinels = { REDIS_SENTINELS: "127.0.0.1:26379", REDIS_SENTINEL_NAME: "jetmesh" };
    const file = access.passwordFiles.gateway!;
    expect(
      loadRedisSentinel({
        ...sentinels,
        REDIS_SENTINEL_USERNAME: "gateway",
        REDIS_SENTINEL_PASSWORD_FILE: file,
      }),
    ).toEqual({
      sentinels: [{ host: "127.0.0.1", port: 26379 }],
      name: "jetmesh",
      username: "gateway",
      password: passwordOf(access, "gateway"),
    });
    expect(() => loadRedisSentinel({ ...sentinels, REDIS_SENTINEL_USERNAME: "gateway" })).toThrow(
      /REDIS_SENTINEL_USERNAME needs REDIS_SENTINEL_PASSWORD_FILE/,
    );
    expect(() => loadRedisSentinel({ REDIS_SENTINEL_USERNAME: "gateway" })).toThrow(ConfigError);
    expect(() => loadRedisSentinel({ REDIS_SENTINEL_USERNAME: "gateway" })).toThrow(
      /REDIS_SENTINEL_USERNAME needs REDIS_SENTINELS/,
    );
  });
});
