// Redis least privilege (packages/access) against a real redis-server started from
// deploy/redis/*.conf with the generated ACL: each service's user runs its own code paths
// (the runtime's idempotency store, the ledger's projection and restore, risk's velocity,
// the gateway's records, status and balance reads) and is refused everywhere else; the
// default user and clients without a password get nothing; the replica authenticates with
// the generated credentials; the commented TLS settings work with the runtime's client.
import { execFile } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { connect as tcpConnect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { createRedis, type Redis, readSecretFile } from "@jetmesh/stage";
import { createIdempotencyStore } from "@jetmesh/stage/internal";
import { freePort, type RedisServerHandle, startRedis, stopAllProcesses, waitFor } from "@jetmesh/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RedisAccess, redisAccess } from "@jetmesh/access";
import { readAccount } from "@jetmesh/gateway/balances";
import { createRateLimiter } from "@jetmesh/gateway/rate-limit";
import { createStatusStore } from "@jetmesh/gateway/status-store";
import { createIdempotencyRecords } from "@jetmesh/gateway/idempotency";
import { applyLedgerEvent, emptyFold } from "@jetmesh/ledger/fold";
import { createLedgerStore } from "@jetmesh/ledger/store";
import { posted, reversed } from "@jetmesh/ledger/test-support";
import { createVelocityStore } from "@jetmesh/risk/velocity";
import { LedgerFold } from "@jetmesh/reconciler/fold";
import { compareAccounts, servedAccounts } from "@jetmesh/reconciler/projection";
import { readRedisHealth } from "@jetmesh/reconciler/redis-health";

const SERVICES = [
  "validator",
  "risk",
  "ledger",
  "payout",
  "gateway",
  "reconciler",
  "ops",
  "replica",
] as const;
const NOPERM = /NOPERM/;
/** How Redis 7.0 words a refusal inside a script (7.2+ says NOPERM there too). */
const SCRIPT_REFUSED = /NOPERM|can't run this command|can't access at least one of the keys/;
const TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

let dir: string;
let access: RedisAccess;
let primary: RedisServerHandle;
const clients: Redis[] = [];

const passwordOf = (user: string): string => readSecretFile(access.passwordFiles[user]!, `${user} password`);

/** The runtime's client (createRedis) logged in as `user`, as a service's main.ts builds it. */
function connectAs(user: string, server: { url: string } = primary, tlsCaFile?: string): Redis {
  const redis = createRedis({
    url: server.url,
    name: `acl-test-${user}`,
    commandTimeoutMs: 3000,
    auth: { username: user, password: passwordOf(user), ...(tlsCaFile ? { tlsCaFile } : {}) },
  });
  clients.push(redis);
  return redis;
}

/**
 * A deploy/redis conf as a deployment mounts it: its /run/secrets paths pointed at the
 * generated files; `uncommentTls` turns the commented TLS block on with `tlsFiles`.
 */
async function deployConf(
  name: string,
  opts: { uncommentTls?: boolean; tlsFiles?: Record<string, string> } = {},
): Promise<string> {
  let text = await readFile(new URL(`../deploy/redis/${name}`, import.meta.url), "utf8");
  text = text
    .replaceAll("/run/secrets/redis-acl", access.aclFile)
    .replaceAll("/run/secrets/redis-replica-auth", access.replicaAuthFile);
  if (opts.uncommentTls) {
    text = text.replace(/^# ((?:port|tls-[a-z-]+) .*)$/gm, "$1");
    for (const [from, to] of Object.entries(opts.tlsFiles ?? {})) text = text.replaceAll(from, to);
  }
  const file = join(dir, `${randomUUID()}-${name}`);
  await writeFile(file, text);
  return file;
}

/**
 * Sends commands on one raw connection and returns one reply line each: what a client
 * without credentials (or with the default user's) gets, free of any client library's retries.
 */
function rawReplies(port: number, commands: readonly (readonly string[])[]): Promise<string[]> {
  const resp = commands
    .map((args) => `*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join("")}`)
    .join("");
  return new Promise((resolve, reject) => {
    const socket = tcpConnect({ host: "127.0.0.1", port });
    let received = "";
    socket.setTimeout(3000, () => socket.destroy(new Error("redis did not answer")));
    socket.once("connect", () => socket.write(resp));
    socket.on("data", (chunk: Buffer) => {
      received += chunk.toString("utf8");
      const lines = received.split("\r\n").slice(0, -1);
      if (lines.length < commands.length) return;
      socket.destroy();
      resolve(lines.slice(0, commands.length));
    });
    socket.once("error", reject);
  });
}

/** A CA and a certificate for 127.0.0.1 signed by it, in `folder` (openssl, EC keys: fast). */
async function makeCertificates(folder: string): Promise<void> {
  await mkdir(folder);
  const key = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
  const script = [
    `openssl req -x509 ${key} -days 1 -subj '/CN=jetmesh test CA' -keyout ca.key -out ca.crt`,
    `openssl req ${key} -subj /CN=127.0.0.1 -keyout redis.key -out redis.csr`,
    "echo subjectAltName=IP:127.0.0.1 > san.ext",
    "openssl x509 -req -days 1 -in redis.csr -CA ca.crt -CAkey ca.key -CAcreateserial -extfile san.ext -out redis.crt",
  ].join(" && ");
  await promisify(execFile)("sh", ["-c", script], { cwd: folder });
}

const newEventId = () => `evt-${randomUUID()}`;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "jetmesh-redis-acl-"));
  access = await redisAccess({ out: join(dir, "secrets") });
  primary = await startRedis({
    configFile: await deployConf("redis-primary.conf"),
    // The kit's own PING and FLUSHALL go through the admin user: the default user is off.
    auth: { username: "admin", password: passwordOf("admin") },
    // Redis 7.0 waits 5 s for more replicas before a diskless full sync; one is enough here.
    extraArgs: ["--repl-diskless-sync-delay", "0"],
  });
});

afterAll(async () => {
  for (const c of clients) c.disconnect();
  await stopAllProcesses();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe("redis access: each service does what its code does", () => {
  it("redis access - every stage's user claims, renews, marks done and releases its own idempotency keys", async () => {
    for (const [user, stage] of [
      ["validator", "validator"],
      ["risk", "risk"],
      ["ledger", "ledger"],
      ["payout", "payout"],
      ["gateway", "gateway-status"],
    ] as const) {
      const store = createIdempotencyStore(connectAs(user));
      const key = `${stage}:${newEventId()}`;
      expect(await store.claim(key, "a1", 5000, TRACEPARENT), user).toEqual({ state: "claimed" });
      expect(await store.extend(key, "a1", 5000), user).toBe(true);
      expect(await store.markDone(key, "a1", "result-1", 60_000), user).toBe(true);
      expect(await store.claim(key, "a2", 5000, TRACEPARENT), user).toEqual({
        state: "done",
        result: "result-1",
      });
      const retried = `${stage}:${newEventId()}`;
      expect(await store.claim(retried, "a1", 5000, TRACEPARENT)).toEqual({ state: "claimed" });
      expect(await store.release(retried, "a1", TRACEPARENT, 60_000), user).toBe(true);
      expect(await store.claim(retried, "a2", 5000, TRACEPARENT)).toEqual({
        state: "claimed",
        previousAttempt: TRACEPARENT,
      });
    }
  });

  it("redis access - the ledger's user restores the projection under its lock, applies events and reads it back", async () => {
    const store = createLedgerStore(connectAs("ledger"));
    const account = `acc-${randomUUID().slice(0, 8)}`;
    const fund = posted({
      transferId: `t-${account}`,
      from: "external",
      to: account,
      amountMinor: 1000,
      currency: "EUR",
    });
    const fold = emptyFold();
    applyLedgerEvent(fold, 1, fund);
    // A restore: lock, renew, fenced wipe (SCAN + DEL) and writes, then the commit that sets the epoch.
    expect(await store.acquireRestoreLock("restorer-1", 10_000)).toBe(true);
    expect(await store.restoreLockHeld()).toBe(true);
    expect(await store.renewRestoreLock("restorer-1", 10_000)).toBe(true);
    expect(await store.writeRestore("restorer-1", fold, "epoch-1")).toBe(true);
    expect(await store.isReady()).toBe(true);
    expect(await store.restoreLockHeld()).toBe(false);
    const pay = {
      transferId: `p-${account}`,
      from: account,
      to: "bank:acl",
      amountMinor: 300,
      currency: "EUR",
    };
    expect(await store.apply(2, posted(pay))).toEqual({ kind: "applied" });
    expect(await store.apply(3, reversed(pay))).toEqual({ kind: "applied" });
    expect(await store.apply(3, reversed(pay))).toEqual({ kind: "duplicate" });
    expect(await store.marks()).toMatchObject({ appliedSeq: 3, epoch: "epoch-1" });
    const view = await store.read();
    expect(view.balances.get(account)).toEqual(new Map([["EUR", 1000n]]));
    expect(view.outcomes.get(pay.transferId)?.reversal?.reason).toBe("bank refused");
    // The lock's release script, as a restore that gives up runs it.
    expect(await store.acquireRestoreLock("restorer-2", 10_000)).toBe(true);
    await store.releaseRestoreLock("restorer-2");
    expect(await store.restoreLockHeld()).toBe(false);
    // `ledger rebuild` run by an operator: the ops user reads the same projection.
    expect(await createLedgerStore(connectAs("ops")).read()).toEqual(view);
  });

  it("redis access - the risk user bumps a velocity window once per event", async () => {
    const velocity = createVelocityStore(connectAs("risk"), { windowMs: 60_000, retentionMs: 120_000 });
    const account = `acc-${randomUUID().slice(0, 8)}`;
    const first = { account, eventId: newEventId(), amountMinor: 500, atMs: Date.now() };
    expect(await velocity.bump(first)).toEqual({ count: 1, sumMinor: 500 });
    expect(await velocity.bump({ ...first, eventId: newEventId(), amountMinor: 200 })).toEqual({
      count: 2,
      sumMinor: 700,
    });
    expect(await velocity.bump(first)).toEqual({ count: 1, sumMinor: 500 });
  });

  it("redis access - the gateway's user keeps its idempotency records, rate limits and status, and reads balances", async () => {
    const redis = connectAs("gateway");
    const records = createIdempotencyRecords(redis, { leaseMs: 5000, ttlMs: 60_000 });
    const key = randomUUID();
    const claim = await records.claim(key, "body-1");
    expect(claim.kind).toBe("claimed");
    if (claim.kind !== "claimed") return;
    const answer = { transferId: "t-1", eventId: "e-1", traceId: "tr-1" };
    expect(await records.complete(key, claim.owner, "body-1", answer)).toBe(true);
    expect(await records.claim(key, "body-1")).toEqual({ kind: "done", answer });
    expect(await records.claim(key, "body-2")).toEqual({ kind: "conflict" });
    // A publish that went unanswered keeps the key bound to its body.
    const maybeStored = randomUUID();
    const unanswered = await records.claim(maybeStored, "body-1");
    expect(unanswered.kind).toBe("claimed");
    if (unanswered.kind === "claimed") await records.unsure(maybeStored, unanswered.owner);
    expect(await records.claim(maybeStored, "body-2")).toEqual({ kind: "conflict" });
    // A publish the stream refused forgets the key.
    const refused = randomUUID();
    const lease = await records.claim(refused, "body-1");
    expect(lease.kind).toBe("claimed");
    if (lease.kind === "claimed") await records.release(refused, lease.owner);
    expect(await records.claim(refused, "body-2")).toMatchObject({ kind: "claimed" });

    const status = createStatusStore(redis, { ttlMs: 60_000 });
    const entry = {
      type: "transfers.requested",
      eventId: newEventId(),
      causationId: `idempotency-key:${key}`,
      transferId: `t-${randomUUID()}`,
      stream: "INGRESS",
      sequence: 1,
      occurredAt: new Date().toISOString(),
    };
    await status.record(entry, { kind: "accepted", atMs: 1000 });
    expect(await status.read(entry.transferId)).toEqual([entry]);
    // the latency's one observation: HMGET, then HSETNX
    await status.record(
      { ...entry, type: "ledger.declined", eventId: newEventId(), stream: "LEDGER" },
      { kind: "outcome", outcome: "declined", atMs: 3500 },
    );
    expect(await status.settle(entry.transferId)).toEqual({ outcome: "declined", seconds: 2.5 });
    expect(await status.settle(entry.transferId)).toBeUndefined();

    const limiter = createRateLimiter(redis);
    const client = `client-${randomUUID()}`;
    const policy = { perSecond: 0.001, burst: 2 };
    const takes = [];
    for (let i = 0; i < 3; i++) takes.push((await limiter.take(client, policy)).allowed);
    expect(takes).toEqual([true, true, false]);

    const account = `acc-${randomUUID().slice(0, 8)}`;
    const admin = connectAs("admin");
    await admin.hset(`ledger:bal:${account}`, "EUR", "1250");
    expect(await readAccount(redis, account)).toEqual({ id: account, balances: { EUR: 1250 } });
  });
});

describe("redis access: refused outside its keys", () => {
  it("redis access - the validator's user cannot write a balance (HSET ledger:bal:acc-x EUR 1000000), directly or in a script", async () => {
    const admin = connectAs("admin");
    await admin.hset("ledger:bal:acc-x", "EUR", "10");
    await admin.call("ACL", "LOG", "RESET");
    const validator = connectAs("validator");
    await expect(validator.hset("ledger:bal:acc-x", "EUR", "1000000")).rejects.toThrow(NOPERM);
    await expect(validator.hincrby("ledger:bal:acc-x", "EUR", 1000000)).rejects.toThrow(NOPERM);
    await expect(validator.hgetall("ledger:bal:acc-x")).rejects.toThrow(NOPERM);
    // A script gets the caller's rules: the key it is given, and any key it names inside.
    const write = "return redis.call('HSET', KEYS[1], 'EUR', '1000000')";
    await expect(validator.eval(write, 1, "ledger:bal:acc-x")).rejects.toThrow(NOPERM);
    await expect(
      validator.eval("return redis.call('HSET', 'ledger:bal:acc-x', 'EUR', '1000000')", 0),
    ).rejects.toThrow(SCRIPT_REFUSED);
    await expect(validator.eval("return redis.call('SET', 'ledger:bal:acc-x', '1')", 0)).rejects.toThrow(
      /can't access at least one of the keys|NOPERM/,
    );
    // HSET is no command of its own, even on its own keys.
    await expect(validator.eval(write, 1, "validator:smuggled")).rejects.toThrow(
      /can't run this command|NOPERM/,
    );
    // Another stage's idempotency keys are not its own either.
    await expect(
      createIdempotencyStore(validator).claim(`ledger:${newEventId()}`, "a1", 5000, TRACEPARENT),
    ).rejects.toThrow(NOPERM);
    expect(await admin.hgetall("ledger:bal:acc-x")).toEqual({ EUR: "10" });
    // Operators see who was refused what.
    const log = JSON.stringify(await admin.call("ACL", "LOG"));
    expect(log).toContain("ledger:bal:acc-x");
    expect(log).toContain("validator");
  });

  it("redis access - the gateway's user reads balances but cannot write or delete them, nor read other ledger keys", async () => {
    const admin = connectAs("admin");
    await admin.hset("ledger:bal:acc-g", "EUR", "10");
    const gateway = connectAs("gateway");
    expect(await gateway.hgetall("ledger:bal:acc-g")).toEqual({ EUR: "10" });
    await expect(gateway.hset("ledger:bal:acc-g", "EUR", "1000000")).rejects.toThrow(NOPERM);
    await expect(gateway.del("ledger:bal:acc-g")).rejects.toThrow(NOPERM);
    await expect(gateway.pexpire("ledger:bal:acc-g", 1)).rejects.toThrow(NOPERM);
    await expect(
      gateway.eval("return redis.call('HSET', KEYS[1], 'EUR', '1000000')", 1, "ledger:bal:acc-g"),
    ).rejects.toThrow(NOPERM);
    await expect(gateway.get("ledger:applied-seq")).rejects.toThrow(NOPERM);
    await expect(gateway.hgetall("ledger:outcome:t-1")).rejects.toThrow(NOPERM);
    expect(await admin.hgetall("ledger:bal:acc-g")).toEqual({ EUR: "10" });
  });

  it("redis access - the reconciler's user compares the balance projection with its fold and writes nothing", async () => {
    const admin = connectAs("admin");
    await admin.hset("ledger:bal:acc-r1", "EUR", "-70");
    await admin.hset("ledger:bal:acc-r2", "EUR", "70");
    await admin.sadd("ledger:accounts", "acc-r1", "acc-r2");
    await admin.set("ledger:applied-seq", "1");
    await admin.set("ledger:epoch", "{}");
    const fold = new LedgerFold();
    fold.apply(
      1,
      posted({ transferId: "t-r", from: "acc-r1", to: "acc-r2", amountMinor: 70, currency: "EUR" }),
      Date.now(),
    );
    const reconciler = connectAs("reconciler");
    expect(await servedAccounts(reconciler)).toEqual(expect.arrayContaining(["acc-r1", "acc-r2"]));
    const checks = await compareAccounts(reconciler, fold, ["acc-r1", "acc-r2"]);
    expect(checks.map((c) => c.kind)).toEqual(["equal", "equal"]);
    await expect(reconciler.hset("ledger:bal:acc-r1", "EUR", "0")).rejects.toThrow(NOPERM);
    await expect(reconciler.set("ledger:applied-seq", "9")).rejects.toThrow(NOPERM);
    await expect(reconciler.del("ledger:epoch")).rejects.toThrow(NOPERM);
    await expect(reconciler.hgetall("ledger:outcome:t-r")).rejects.toThrow(NOPERM);
    await expect(reconciler.get("gateway:idem:x")).rejects.toThrow(NOPERM);
    // Redis's health (memory, keys by kind): INFO and key names only, no value
    const health = await readRedisHealth(reconciler, 10_000);
    expect(health.usedMemoryBytes).toBeGreaterThan(0);
    expect(health.kinds.get("ledger:bal:*")).toBeGreaterThanOrEqual(2);
  });

  it("redis access - the payout's user cannot read the gateway's idempotency records, status or rate limits", async () => {
    const gateway = createIdempotencyRecords(connectAs("gateway"), { leaseMs: 5000, ttlMs: 60_000 });
    const key = randomUUID();
    expect((await gateway.claim(key, "body")).kind).toBe("claimed");
    const payout = connectAs("payout");
    await expect(payout.hgetall(`gateway:idem:${key}`)).rejects.toThrow(NOPERM);
    await expect(payout.hget(`gateway:idem:${key}`, "owner")).rejects.toThrow(NOPERM);
    await expect(
      createIdempotencyRecords(payout, { leaseMs: 5000, ttlMs: 60_000 }).claim(key, "body"),
    ).rejects.toThrow(NOPERM);
    await expect(createStatusStore(payout, { ttlMs: 60_000 }).read("t-1")).rejects.toThrow(NOPERM);
    await expect(createRateLimiter(payout).take("client-x", { perSecond: 1, burst: 1 })).rejects.toThrow(
      NOPERM,
    );
    await expect(payout.get("risk:velocity:acc-x:1")).rejects.toThrow(NOPERM);
  });

  it("redis access - the ops user reads every key and writes none", async () => {
    const ops = connectAs("ops");
    await connectAs("admin").set("ops:probe", "1");
    expect(await ops.get("ops:probe")).toBe("1");
    await expect(ops.set("ops:probe", "2")).rejects.toThrow(NOPERM);
    await expect(ops.hset("ledger:bal:acc-x", "EUR", "1000000")).rejects.toThrow(NOPERM);
    await expect(ops.del("ops:probe")).rejects.toThrow(NOPERM);
    await expect(ops.eval("return 1", 0)).rejects.toThrow(NOPERM);
  });

  it("redis access - no user but admin can FLUSHALL, CONFIG, KEYS *, ACL, SHUTDOWN or replicate", async () => {
    const admin = connectAs("admin");
    for (const user of SERVICES) {
      // Run for real where harmless when refused; ACL DRYRUN (asked as admin) for the rest.
      if (user !== "replica") {
        const redis = connectAs(user);
        await expect(redis.flushall(), user).rejects.toThrow(NOPERM);
        await expect(redis.flushdb(), user).rejects.toThrow(NOPERM);
        await expect(redis.config("GET", "*"), user).rejects.toThrow(NOPERM);
        await expect(redis.config("SET", "maxmemory-policy", "allkeys-lru"), user).rejects.toThrow(NOPERM);
        await expect(redis.keys("*"), user).rejects.toThrow(NOPERM);
        await expect(redis.call("ACL", "SETUSER", user, "+@all", "~*"), user).rejects.toThrow(NOPERM);
        await expect(redis.call("SCRIPT", "FLUSH"), user).rejects.toThrow(NOPERM);
      }
      for (const cmd of [
        ["flushall"],
        ["config", "get", "*"],
        ["keys", "*"],
        ["acl", "load"],
        ["shutdown"],
        ["debug", "sleep", "0"],
        ["replicaof", "no", "one"],
        ["monitor"],
        ["client", "kill", "id", "1"],
        ["bgsave"],
        ["module", "list"],
      ]) {
        expect(await admin.call("ACL", "DRYRUN", user, ...cmd), `${user} ${cmd.join(" ")}`).toMatch(
          /no permissions/,
        );
      }
    }
    // Only replication commands for the replica, and nothing at all for the default user.
    expect(await admin.call("ACL", "DRYRUN", "replica", "get", "ledger:bal:acc-x")).toMatch(/no permissions/);
    expect(await admin.call("ACL", "DRYRUN", "default", "get", "x")).toMatch(/no permissions/);
    expect(await admin.call("ACL", "DRYRUN", "admin", "flushall")).toBe("OK");
  });

  it("redis access - the default user cannot log in, and a client without a password can run nothing", async () => {
    const replies = await rawReplies(primary.port, [
      ["PING"],
      ["HSET", "ledger:bal:acc-x", "EUR", "1000000"],
      ["GET", "validator:x"],
      ["AUTH", "default", ""],
      ["AUTH", "default", "anything"],
      ["HELLO", "3", "AUTH", "default", "anything"],
      ["AUTH", "validator", "not-its-password"],
      ["HSET", "ledger:bal:acc-x", "EUR", "1000000"],
    ]);
    expect(replies.slice(0, 3)).toEqual(Array(3).fill("-NOAUTH Authentication required."));
    for (const r of replies.slice(3, 7)) expect(r).toMatch(/^-WRONGPASS/);
    expect(replies[7]).toBe("-NOAUTH Authentication required.");
    // The runtime's client without credentials gets no further.
    const anonymous = createRedis({ url: primary.url, name: "acl-test-anonymous", commandTimeoutMs: 1000 });
    clients.push(anonymous);
    await expect(anonymous.hset("ledger:bal:acc-x", "EUR", "1000000")).rejects.toThrow();
    expect(await connectAs("admin").hget("ledger:bal:acc-x", "EUR")).not.toBe("1000000");
  });
});

describe("redis access: deploy", () => {
  it("redis access - a replica started from deploy/redis/redis-replica.conf authenticates with the generated credentials", async () => {
    const replica = await startRedis({
      configFile: await deployConf("redis-replica.conf"),
      auth: { username: "admin", password: passwordOf("admin") },
      extraArgs: ["--replicaof", "127.0.0.1", String(primary.port)],
    });
    const key = `validator:${newEventId()}`;
    await createIdempotencyStore(connectAs("validator")).claim(key, "a1", 60_000, TRACEPARENT);
    const onReplica = connectAs("admin", replica);
    await waitFor(async () => /master_link_status:up/.test(await onReplica.info("replication")), {
      timeoutMs: 10_000,
      what: "the replica's link to the primary",
    });
    await waitFor(async () => (await onReplica.get(key))?.startsWith("L|a1|"), {
      timeoutMs: 5000,
      what: "the key on the replica",
    });
    // The same users log in on the replica (a failover promotes it), read-only while a replica.
    await expect(connectAs("validator", replica).set(key, "x")).rejects.toThrow(/READONLY/);

    // Without the generated password the primary turns a replica away.
    const impostor = await startRedis({
      auth: { username: "admin", password: passwordOf("admin") },
      aclFile: access.aclFile,
      extraArgs: [
        "--replicaof",
        "127.0.0.1",
        String(primary.port),
        "--masteruser",
        "replica",
        "--masterauth",
        "guessed",
      ],
    });
    await waitFor(() => impostor.logs().some((l) => /Unable to AUTH to MASTER: -WRONGPASS/.test(l)), {
      timeoutMs: 10_000,
      what: "the primary refusing the replica",
    });
    const onImpostor = connectAs("admin", impostor);
    expect(await onImpostor.info("replication")).toMatch(/master_link_status:down/);
    expect(await onImpostor.get(key)).toBeNull();
  });

  it("redis access - the commented TLS settings, turned on, serve the runtime's client over rediss:// with the CA file", async () => {
    const tls = join(dir, "tls");
    await makeCertificates(tls);
    const tlsPort = await freePort();
    const server = await startRedis({
      // The conf's `port 0` is overridden by the kit's plain port (its own PING); clients use TLS.
      configFile: await deployConf("redis-primary.conf", {
        uncommentTls: true,
        tlsFiles: {
          "/run/secrets/redis-tls-cert": `${tls}/redis.crt`,
          "/run/secrets/redis-tls-key": `${tls}/redis.key`,
          "/run/secrets/redis-tls-ca": `${tls}/ca.crt`,
        },
      }),
      auth: { username: "admin", password: passwordOf("admin") },
      extraArgs: ["--tls-port", String(tlsPort)],
    });
    const overTls = connectAs("validator", { url: `rediss://127.0.0.1:${tlsPort}` }, `${tls}/ca.crt`);
    const key = `validator:${newEventId()}`;
    expect(await createIdempotencyStore(overTls).claim(key, "a1", 5000, TRACEPARENT)).toEqual({
      state: "claimed",
    });
    await expect(overTls.hset("ledger:bal:acc-x", "EUR", "1000000")).rejects.toThrow(NOPERM);
    expect(await connectAs("admin", server).get(key)).toMatch(/^L\|a1\|/);
  });

  it("redis access - the testkit's restart, snapshot, rollback and flushAll authenticate as admin", async () => {
    const server = await startRedis({
      aclFile: access.aclFile,
      auth: { username: "admin", password: passwordOf("admin") },
      persistence: true,
    });
    const validator = connectAs("validator", server);
    await validator.set("validator:before", "1");
    const snapshot = await server.snapshot();
    await validator.set("validator:after", "1");
    await server.rollbackTo(snapshot);
    const admin = connectAs("admin", server);
    expect(await admin.mget("validator:before", "validator:after")).toEqual(["1", null]);
    await server.restart();
    expect(await admin.get("validator:before")).toBe("1");
    await server.flushAll();
    expect(await admin.dbsize()).toBe(0);
    await primary.flushAll();
    expect(await connectAs("admin").dbsize()).toBe(0);
  });
});
