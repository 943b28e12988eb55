// NATS least privilege, against a real nats-server loaded with what `jetmesh-access nats`
// generates from the manifests, and a real redis-server loaded with the generated ACL: every
// service runs the real pipeline as its own NKey user and its own Redis user, and each
// refusal the security issue asked for is shown on the wire (forged events, a stream delete
// or purge, a subscription to another stage's subjects, no credentials, a seed file others
// can read). The first test is the issue's "one run": an authorised client's transfers flow
// end to end while an attacker's HTTP requests, NATS messages and Redis writes are refused.
import { execFile } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { chmod, copyFile, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { connect as tcpConnect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import {
  type AnyEnvelope,
  encodeEvent,
  EventTypes,
  eventHeaders,
  makeEnvelope,
  replayDurable,
  StreamNames,
  Streams,
  subjectFor,
} from "@jetmesh/contracts";
import { waitForQuiet } from "@jetmesh/mesh";
import { connectNats, createLogger, createRedis, readSecretFile } from "@jetmesh/stage";
import {
  ensureStream,
  park,
  provisionStreams,
  publishSchemaRegistry,
  StreamMissingError,
} from "@jetmesh/stage/internal";
import { currentSchemaSet, registryDocuments } from "@jetmesh/contracts/evolution";
import {
  bundleOf,
  type ChildHandle,
  ensureBinaries,
  checkInvariants,
  freePort,
  type NatsServerHandle,
  type RedisServerHandle,
  redisBalances,
  spawnProcess,
  startNats,
  startRedis,
  stopAllProcesses,
  waitFor,
} from "@jetmesh/testkit";
import { jetstream, type JetStreamManager, jetstreamManager } from "@nats-io/jetstream";
import {
  connect,
  headers as natsHeaders,
  type MsgHdrs,
  type NatsConnection,
  nkeyAuthenticator,
  nkeys,
  PermissionViolationError,
} from "@nats-io/transport-node";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RedisAccess, redisAccess } from "@jetmesh/access";
import { E2E_SETTINGS } from "./support/mesh.ts";

const root = join(import.meta.dirname, "..");
const run = promisify(execFile);
const SERVICES = ["gateway", "validator", "risk", "ledger", "payout"] as const;
type Service = (typeof SERVICES)[number];
const PIPELINE_TYPES = Object.values(Streams).flatMap((s) => s.eventTypes);

/** Runs the access CLI as a deploy would; the secrets go to `out`. */
async function generate(out: string, ...flags: string[]): Promise<void> {
  await run(
    process.execPath,
    [join(root, "packages/access/bin/jetmesh-access.mjs"), "nats", "--out", out, ...flags],
    { cwd: root, timeout: 30_000 },
  );
}

/** The PermissionViolationError in an error's cause chain, if any. */
function permissionError(err: unknown): PermissionViolationError | undefined {
  for (let e = err; e instanceof Error; e = e.cause) if (e instanceof PermissionViolationError) return e;
  return undefined;
}

/** Resolves with the error a refused call rejects with; fails when the call succeeds. */
async function refused(what: string, call: () => Promise<unknown>): Promise<PermissionViolationError> {
  const outcome = await call().then(
    () => undefined,
    (err: unknown) => err,
  );
  const pe = permissionError(outcome);
  if (!pe) throw new Error(`${what}: expected a permissions violation, got ${String(outcome ?? "success")}`);
  return pe;
}

/**
 * Resolves with the error that closes a subscription the server refuses, or undefined when it
 * stays open. The server answers SUB before the PING of the flush, so the refusal, if any,
 * has arrived when the flush returns.
 */
async function subscriptionRefused(nc: NatsConnection, subject: string): Promise<Error | undefined> {
  const sub = nc.subscribe(subject, { callback: () => {} });
  await nc.flush();
  const closed = await Promise.race([sub.closed, sleep(200).then(() => "open" as const)]);
  if (closed === "open") sub.unsubscribe();
  return closed instanceof Error ? closed : undefined;
}

/** A well-formed transfers.scored, as risk would publish it: what the ledger would post. */
const forgedScore = (): AnyEnvelope =>
  makeEnvelope(
    EventTypes.TransferScored,
    {
      transferId: "forged-1",
      from: "external",
      to: "acc-thief",
      amountMinor: 1_000_000,
      currency: "EUR",
      score: 1,
      decision: "allow",
      factors: [],
    },
    { eventId: "forged-score-1", correlationId: "forged-1", causationId: "forged-0", producer: "risk" },
  ) as AnyEnvelope;

function headersOf(env: AnyEnvelope): MsgHdrs {
  const h = natsHeaders();
  for (const [k, v] of Object.entries(eventHeaders(env))) h.set(k, v);
  return h;
}

/** The API clients of the one run: an operator that may mint, a customer, and the attacker. */
const CLIENTS = {
  operator: { id: "access-operator", role: "operator", accounts: ["*"], mintMaxMinor: 100_000_000 },
  alice: { id: "alice", role: "customer", accounts: ["acc-a", "acc-b"] },
  mallory: { id: "mallory", role: "customer", accounts: ["acc-m"] },
} as const;
type ClientName = keyof typeof CLIENTS;

/**
 * The gateway's own API credentials (its HTTP authentication, not NATS): the {@link CLIENTS},
 * one key each, and the transfer-id secret. Files as a deploy mounts them (mode 0600);
 * harmless to a gateway that reads neither.
 */
async function gatewayCredentials(
  dir: string,
): Promise<{ env: Record<string, string>; bearer: Record<ClientName, string> }> {
  const bearer = {} as Record<ClientName, string>;
  const clients = Object.entries(CLIENTS).map(([name, c]) => {
    const key = randomBytes(32).toString("base64url");
    bearer[name as ClientName] = key;
    return {
      ...c,
      accounts: [...c.accounts],
      keys: [{ id: "k1", sha256: createHash("sha256").update(key).digest("hex") }],
    };
  });
  const clientsFile = join(dir, "gateway-clients.json");
  const ids = join(dir, "gateway-id-secrets.json");
  await writeFile(clientsFile, JSON.stringify({ clients }), { mode: 0o600 });
  const secret = {
    version: 1,
    notBefore: "2020-01-01T00:00:00Z",
    secret: randomBytes(32).toString("base64"),
  };
  await writeFile(ids, JSON.stringify({ versions: [secret] }), { mode: 0o600 });
  return { env: { GATEWAY_CLIENTS_FILE: clientsFile, GATEWAY_ID_SECRETS_FILE: ids }, bearer };
}

/** One HTTP call to the gateway's API as `bearer` (no Authorization header when undefined). */
async function call(
  url: string,
  bearer: string | undefined,
  init: { method?: string; key?: string; body?: unknown } = {},
): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(url, {
    method: init.method ?? (init.body === undefined ? "GET" : "POST"),
    headers: {
      ...(init.body === undefined ? {} : { "content-type": "application/json" }),
      ...(init.key ? { "idempotency-key": init.key } : {}),
      ...(bearer === undefined ? {} : { authorization: `Bearer ${bearer}` }),
    },
    ...(init.body === undefined ? {} : { body: JSON.stringify(init.body) }),
  });
  return { status: res.status, json: (await res.json().catch(() => ({}))) as Record<string, unknown> };
}

/** One POST /v1/transfers; 503 and 409 "in progress" are retried with the same key (bounded). */
async function postTransfer(
  gatewayUrl: string,
  bearer: string,
  key: string,
  body: { from: string; to: string; amountMinor: number; currency: string },
): Promise<{ transferId: string }> {
  for (let attempt = 1; ; attempt++) {
    const res = await fetch(`${gatewayUrl}/v1/transfers`, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "idempotency-key": key,
        authorization: `Bearer ${bearer}`,
      },
      body: JSON.stringify(body),
    });
    const json = (await res.json().catch(() => ({}))) as { transferId?: string };
    if ((res.status === 202 || res.status === 200) && json.transferId) return { transferId: json.transferId };
    if ((res.status === 503 || res.status === 409) && attempt < 20) {
      await sleep(250 * attempt);
      continue;
    }
    throw new Error(`POST ${key} answered ${res.status}: ${JSON.stringify(json)}`);
  }
}

/** Sends `text` to a loopback port once the server's INFO arrived; resolves with what came back. */
function rawConnect(port: number, text: string): Promise<string> {
  return new Promise((resolve) => {
    const socket = tcpConnect({ host: "127.0.0.1", port });
    let got = "";
    let sent = false;
    socket.on("data", (d) => {
      got += d.toString();
      if (!sent && got.includes("INFO")) {
        sent = true;
        socket.write(text);
      }
    });
    socket.on("error", () => {});
    socket.on("close", () => resolve(got));
    setTimeout(() => socket.destroy(), 2_000).unref();
  });
}

describe("nats access", () => {
  let base: string;
  let secrets: string;
  let nats: NatsServerHandle;
  let redis: RedisServerHandle;
  let redisUsers: RedisAccess;
  let ops: NatsConnection;
  let jsm: JetStreamManager;
  const seedOf = (user: string) => join(secrets, `${user}.nk`);
  const redisPassword = (user: string) => readSecretFile(redisUsers.passwordFiles[user] as string, user);
  /** What a service's environment needs to log in to Redis as its own user. */
  const redisLogin = (user: string) => ({
    REDIS_URL: redis.url,
    REDIS_USERNAME: user,
    REDIS_PASSWORD_FILE: redisUsers.passwordFiles[user] as string,
  });
  const seed = async (user: string) => (await readFile(seedOf(user), "utf8")).trim();
  /** A connection as `user`, the way the runtime makes one (inbox prefix of the service). */
  const as = async (user: Service) =>
    connectNats({ url: nats.url, name: user, auth: { nkeySeed: await seed(user) } });

  beforeAll(async () => {
    // A secrets folder outside the repository, as the CLI demands.
    base = await mkdtemp(join(tmpdir(), "jetmesh-access-"));
    secrets = join(base, "nats");
    await generate(secrets);
    redisUsers = await redisAccess({ out: join(base, "redis") });
    [nats, redis] = await Promise.all([
      startNats({ configFile: join(secrets, "nats-auth.conf") }),
      // The default user is off: the kit's own PING and FLUSHALL log in as admin.
      startRedis({
        aclFile: redisUsers.aclFile,
        auth: { username: "admin", password: redisPassword("admin") },
      }),
    ]);
    // The operators' user (plain nats.js client, default _INBOX prefix, as the nats CLI).
    ops = await connect({
      servers: nats.url,
      name: "ops",
      authenticator: nkeyAuthenticator(new TextEncoder().encode(await seed("ops"))),
    });
    jsm = await jetstreamManager(ops);
    // The deploy step, LEDGER included, as the ops user.
    await provisionStreams(jsm, { replicas: 1, logger: createLogger({ service: "test", level: "warn" }) });
  });

  afterAll(async () => {
    await ops?.close().catch(() => {});
    await stopAllProcesses();
    await Promise.all([nats?.stop(), redis?.stop()]);
    if (base) await rm(base, { recursive: true, force: true });
  });

  /**
   * Starts a service's bundle as its own user; resolves once its readiness probe answers 200.
   * `url` is its API (the gateway's GATEWAY_PORT); the probe is on its ops port.
   */
  async function startService(
    name: Service | "bank-sim",
    env: Record<string, string> = {},
  ): Promise<{ child: ChildHandle; url: string }> {
    const port = await freePort();
    const opsPort = name === "gateway" ? await freePort() : port;
    const ports: Record<string, string> =
      name === "gateway"
        ? { GATEWAY_PORT: String(port), GATEWAY_OPS_PORT: String(opsPort) }
        : { HTTP_PORT: String(port) };
    const child = await spawnProcess({
      name,
      command: process.execPath,
      args: [bundleOf(`services/${name}/src/main.ts`)],
      cwd: root,
      env:
        name === "bank-sim"
          ? { BANK_HOST: "127.0.0.1", BANK_PORT: String(port), BANK_REFUSE_ACCOUNTS: "bank:refuse-1" }
          : {
              NATS_URL: nats.url,
              NATS_NKEY_SEED_FILE: seedOf(name),
              ...redisLogin(name),
              LOG_LEVEL: "warn",
              OTEL_SDK_DISABLED: "true",
              HTTP_HOST: "127.0.0.1",
              ...ports,
              ...E2E_SETTINGS,
              ...env,
            },
    });
    const url = `http://127.0.0.1:${port}`;
    const probe = `http://127.0.0.1:${opsPort}${name === "bank-sim" ? "/healthz" : "/readyz"}`;
    let last = "no answer";
    await waitFor(
      async () => {
        if (!child.isRunning()) throw new Error(`${name} exited:\n${child.lines().slice(-20).join("\n")}`);
        const res = await fetch(probe).catch(() => undefined);
        last = `${res?.status} ${await res?.text()}`;
        return res?.status === 200;
      },
      { timeoutMs: 30_000, intervalMs: 100, what: `${name} ${probe}` },
    ).catch((err: Error) => {
      const violations = nats.logs().filter((l) => /violation/i.test(l));
      throw new Error(
        `${err.message}; last answer ${last}\n${child.lines().slice(-10).join("\n")}\n${violations.join("\n")}`,
      );
    });
    return { child, url };
  }

  it("security - one run: an authorised client's transfers flow end to end while the attacker's requests, forged messages and Redis writes are refused", async () => {
    const bank = await startService("bank-sim");
    const api = await gatewayCredentials(secrets);
    const started = await Promise.all([
      startService("gateway", api.env),
      startService("validator"),
      startService("risk"),
      // Snapshots every 2 events: the snapshot bucket (writes, key listing, purges) is used too.
      startService("ledger", { LEDGER_SNAPSHOT_EVERY: "2" }),
      startService("payout", { PAYOUT_BANK_URL: bank.url }),
    ]);
    const gateway = started[0].url;
    const transfersUrl = `${gateway}/v1/transfers`;
    const keyOf = (who: ClientName) => api.bearer[who];
    const send = (
      who: ClientName,
      key: string,
      to: string,
      amountMinor: number,
      from = "acc-a",
      currency = "EUR",
    ) => postTransfer(gateway, keyOf(who), `access-${key}`, { from, to, amountMinor, currency });
    const funding = await send("operator", "fund", "acc-a", 100_000, "external");
    const mallorysFunding = await send("operator", "fund-m", "acc-m", 1_000, "external");
    // The funding must be posted before acc-a spends it (another partition, no order between them).
    await waitFor(async () => (await checkInvariants({ nc: ops, accepted: [funding], only: ["I1"] })).ok, {
      timeoutMs: 20_000,
      intervalMs: 200,
      what: "the funding posted",
    });

    // The attacker, on every door, while alice's transfers are in flight.
    const attacks = async (): Promise<Record<string, unknown>> => {
      const seen: Record<string, unknown> = {};
      const bodyFrom = (from: string, amountMinor = 10_000_000) => ({
        from,
        to: "acc-m",
        amountMinor,
        currency: "EUR",
      });
      // HTTP: no key, a made-up key, minting, debiting alice, reading alice.
      seen.noKey = (await call(transfersUrl, undefined, { key: "m-1", body: bodyFrom("acc-a") })).status;
      seen.madeUpKey = (
        await call(transfersUrl, "jm_not-a-key", { key: "m-2", body: bodyFrom("acc-a") })
      ).status;
      const mint = await call(transfersUrl, keyOf("mallory"), { key: "m-3", body: bodyFrom("external") });
      seen.mint = [mint.status, mint.json.field];
      const debit = await call(transfersUrl, keyOf("mallory"), { key: "m-4", body: bodyFrom("acc-a", 100) });
      seen.debitAlice = [debit.status, debit.json.field];
      seen.aliceMints = (
        await call(transfersUrl, keyOf("alice"), { key: "a-mint", body: bodyFrom("external") })
      ).status;
      seen.overMintLimit = (
        await call(transfersUrl, keyOf("operator"), { key: "o-big", body: bodyFrom("external", 100_000_001) })
      ).status;
      seen.readAlice = (await call(`${gateway}/v1/accounts/acc-a`, keyOf("mallory"))).status;
      seen.readExternal = (await call(`${gateway}/v1/accounts/external`, keyOf("mallory"))).status;
      seen.metricsOnApi = (await call(`${gateway}/metrics`, keyOf("mallory"))).status;
      // NATS: no credentials; the gateway's credentials forging a scored transfer, deleting
      // LEDGER, and reading every event.
      seen.anonymousNats = String(
        await connect({ servers: nats.url, name: "attacker-anonymous", reconnect: false }).then(
          (nc) => nc.close(),
          (err: unknown) => err,
        ),
      );
      const stolen = await connect({
        servers: nats.url,
        name: "attacker",
        inboxPrefix: "_INBOX_gateway",
        reconnect: false,
        authenticator: nkeyAuthenticator(new TextEncoder().encode(await seed("gateway"))),
      });
      try {
        const env = forgedScore();
        const forged = await jetstream(stolen)
          .publish("transfers.scored.00", encodeEvent(env), { msgID: env.eventId, headers: headersOf(env) })
          .then(
            () => "stored",
            (err: unknown) => permissionError(err)?.operation ?? String(err),
          );
        seen.forgedScored = forged;
        seen.deleteLedger = await (await jetstreamManager(stolen)).streams.delete("LEDGER").then(
          () => "deleted",
          (err: unknown) => permissionError(err)?.operation ?? String(err),
        );
        seen.readEverything =
          permissionError(await subscriptionRefused(stolen, "*.*.*"))?.operation ?? "open";
      } finally {
        await stolen.close().catch(() => {});
      }
      // Redis: no password; the validator's password writing a balance.
      const anonymous = new Redis(redis.url, { maxRetriesPerRequest: 0, lazyConnect: true });
      anonymous.on("error", () => {});
      seen.anonymousRedis = await anonymous
        .hset("ledger:bal:acc-m", "EUR", "1000000")
        .then(
          () => "written",
          (err: Error) => err.message.split(" ")[0],
        )
        .finally(() => anonymous.disconnect());
      const validator = createRedis({
        url: redis.url,
        name: "attacker-validator",
        commandTimeoutMs: 3000,
        auth: { username: "validator", password: redisPassword("validator") },
      });
      seen.validatorWritesBalance = await validator
        .hset("ledger:bal:acc-m", "EUR", "1000000")
        .then(
          () => "written",
          (err: Error) => err.message.split(" ")[0],
        )
        .finally(() => validator.disconnect());
      return seen;
    };
    const [transfers, seen, replay] = await Promise.all([
      (async () => ({
        posted: await send("alice", "plain", "acc-b", 1_000),
        paid: await send("alice", "paid", "bank:pay-1", 500),
        reversed: await send("alice", "refused", "bank:refuse-1", 700),
        rejected: await send("alice", "rejected", "acc-b", 100, "acc-a", "XXX"),
      }))(),
      attacks(),
      // Mallory replays alice's idempotency key with her own body: a transfer of her own, not alice's.
      send("mallory", "plain", "acc-a", 10, "acc-m"),
    ]);
    expect(seen).toEqual({
      noKey: 401,
      madeUpKey: 401,
      mint: [403, "/from"],
      debitAlice: [403, "/from"],
      aliceMints: 403,
      overMintLimit: 403,
      readAlice: 403,
      readExternal: 403,
      metricsOnApi: 404,
      anonymousNats: expect.stringMatching(/authorization violation/i),
      forgedScored: "publish",
      deleteLedger: "publish",
      readEverything: "subscription",
      anonymousRedis: "NOAUTH",
      validatorWritesBalance: "NOPERM",
    });
    expect(replay.transferId).not.toBe(transfers.posted.transferId);
    // Mallory sees nothing of alice's transfer, alice sees it.
    expect((await call(`${transfersUrl}/${transfers.posted.transferId}`, keyOf("mallory"))).status).toBe(404);
    expect((await call(`${transfersUrl}/${transfers.posted.transferId}`, keyOf("alice"))).status).toBe(200);

    await waitForQuiet(jsm, { timeoutMs: 30_000 });
    const opsRedis = createRedis({
      url: redis.url,
      name: "access-test-ops",
      commandTimeoutMs: 3000,
      auth: { username: "ops", password: redisPassword("ops") },
    });
    try {
      const accepted = [funding, mallorysFunding, replay, ...Object.values(transfers)];
      const report = await checkInvariants({
        nc: ops,
        accepted,
        balances: redisBalances(opsRedis),
        minters: [CLIENTS.operator.id],
      });
      expect(report.violations).toEqual([]);
      expect(report.ok).toBe(true);
      expect(report.checked).toContain("M1");
      const outcome = (t: { transferId: string }) => report.transfers.get(t.transferId)?.outcome;
      expect(outcome(funding)).toBe("posted");
      expect(outcome(transfers.posted)).toBe("posted");
      expect(outcome(transfers.paid)).toBe("posted");
      expect(outcome(transfers.reversed)).toBe("reversed");
      expect(outcome(transfers.rejected)).toBe("rejected");
      expect(outcome(replay)).toBe("posted");
      // Exactly what the authorised transfers moved; nothing the attacker tried.
      expect(await opsRedis.hget("ledger:bal:acc-a", "EUR")).toBe(String(100_000 - 1_000 - 500 + 10));
      expect(await opsRedis.hget("ledger:bal:acc-m", "EUR")).toBe(String(1_000 - 10));
    } finally {
      opsRedis.disconnect();
    }
    const payouts = await jsm.streams.info(StreamNames.Payouts);
    expect(payouts.state.messages).toBe(2); // one completed, one failed
    expect((await jsm.streams.info("KV_ledger-snapshots")).state.messages).toBeGreaterThan(0);
    // The ledger's rebuild check connects as ledger-rebuild with the ledger's seed.
    const rebuild = await run(process.execPath, [bundleOf("services/ledger/src/rebuild.ts")], {
      cwd: root,
      timeout: 20_000,
      env: {
        ...process.env,
        NATS_URL: nats.url,
        NATS_NKEY_SEED_FILE: seedOf("ledger"),
        ...redisLogin("ledger"),
      },
    });
    expect(rebuild.stdout).toMatch(/0 difference\(s\)/);
    for (const s of started) expect(s.child.isRunning()).toBe(true);
    // Drained as on SIGTERM (positions recorded, ordered consumers closed), each exits 0.
    for (const s of started) expect((await s.child.stop(10_000)).code).toBe(0);
    // Not one call of the mesh was refused (the generated lists are wide enough); the server
    // logged the attacker's refusals under the attacker's connection.
    const violations = nats.logs().filter((l) => /violation/i.test(l));
    expect(violations.filter((l) => !/attacker/.test(l))).toEqual([]);
    expect(violations.join("\n")).toMatch(/attacker" - Publish Violation .*Subject "transfers\.scored\.00"/);
  }, 90_000);

  it("nats access - the reconciler follows every stream, reads consumers and Redis, and writes findings as its own users, and nothing else", async () => {
    const bank = await startService("bank-sim");
    const port = await freePort();
    const child = await spawnProcess({
      name: "reconciler",
      command: process.execPath,
      args: [bundleOf("services/reconciler/src/main.ts")],
      cwd: root,
      env: {
        NATS_URL: nats.url,
        NATS_NKEY_SEED_FILE: seedOf("reconciler"),
        ...redisLogin("reconciler"),
        LOG_LEVEL: "warn",
        OTEL_SDK_DISABLED: "true",
        HTTP_HOST: "127.0.0.1",
        HTTP_PORT: String(port),
        RECONCILE_BANK_URL: bank.url,
        ...E2E_SETTINGS,
        // the consumer is changed by hand below (or missing): either way it is reported
        RECONCILE_CONSUMERS: "INGRESS/validator",
        RECONCILE_SETTINGS_CHECK_MS: "200",
        RECONCILE_MISSING_GRACE_MS: "0",
        RECONCILE_BANK_CHECK_MS: "200",
        RECONCILE_FULL_CHECK_MS: "200",
        RECONCILE_DLQ_CHECK_MS: "200",
      },
    });
    try {
      await waitFor(
        async () => (await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => undefined))?.status === 200,
        {
          timeoutMs: 30_000,
          what: `reconciler ready:\n${child.lines().slice(-10).join("\n")}`,
        },
      );
      // The validator recorded what it declares for its consumer; an operator changes it by hand.
      const declared = await jsm.consumers.info("INGRESS", "validator").catch(() => undefined);
      if (declared) await jsm.consumers.update("INGRESS", "validator", { max_ack_pending: 7 });
      await waitFor(async () => (await jsm.streams.info(StreamNames.Reconcile)).state.messages > 0, {
        timeoutMs: 10_000,
        what: "a finding on RECONCILE",
      });
      const finding = await jsm.streams.getMessage(StreamNames.Reconcile, { seq: 1 });
      expect(finding?.header.get("Jetmesh-Finding-Key")).toBe("consumer:INGRESS/validator");
      if (declared)
        await jsm.consumers.update("INGRESS", "validator", {
          max_ack_pending: declared.config.max_ack_pending,
        });
      await sleep(600);
      const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      for (const check of ["settings", "projection_full", "bank", "dlq"])
        expect(metrics, check).toMatch(
          new RegExp(`jetmesh_reconcile_check_failures_total\\{check="${check}"\\} 0`),
        );
      expect(metrics).toMatch(/jetmesh_reconcile_publish_failures_total 0/);
      expect(nats.logs().filter((l) => /violation/i.test(l) && /reconciler/.test(l))).toEqual([]);
      // and nothing else: no event, no durable of a stage
      const nc = await connectNats({
        url: nats.url,
        name: "reconciler",
        auth: { nkeySeed: await seed("reconciler") },
      });
      try {
        await refused("reconciler publishing ledger.posted", () =>
          jetstream(nc).publish("ledger.posted.00", new Uint8Array([1])),
        );
        await refused("reconciler publishing dlq.reconciler", () =>
          jetstream(nc).publish("dlq.reconciler", new Uint8Array([1])),
        );
        const m = await jetstreamManager(nc);
        await refused("reconciler deleting validator's consumer", () =>
          m.consumers.delete("INGRESS", "validator"),
        );
      } finally {
        await nc.close();
      }
    } finally {
      await child.stop();
      await bank.child.stop();
    }
  }, 60_000);

  it("nats access - the gateway's user cannot forge transfers.scored, nor any event it does not own", async () => {
    const before = await jsm.streams.info(StreamNames.Risk);
    const owned: Record<Service, readonly string[]> = {
      gateway: [EventTypes.TransferRequested],
      validator: [EventTypes.TransferValidated, EventTypes.TransferRejected],
      risk: [EventTypes.TransferScored],
      ledger: [EventTypes.LedgerPosted, EventTypes.LedgerDeclined, EventTypes.LedgerReversed],
      payout: [EventTypes.PayoutCompleted, EventTypes.PayoutFailed],
    };
    for (const user of SERVICES) {
      const nc = await as(user);
      const js = jetstream(nc);
      try {
        for (const type of PIPELINE_TYPES.filter((t) => !owned[user].includes(t))) {
          // The server refuses by subject, before it looks at the body.
          const pe = await refused(`${user} publishing ${type}`, () =>
            js.publish(`${type}.00`, new Uint8Array([1]), { msgID: `forged-${user}-${type}` }),
          );
          expect(pe.operation).toBe("publish");
          expect(pe.subject).toBe(`${type}.00`);
        }
        // Another stage's DLQ subject too.
        await refused(`${user} publishing dlq.other`, () => js.publish("dlq.other", new Uint8Array(1)));
      } finally {
        await nc.close();
      }
    }
    // The gateway's forgery, as the issue describes it: published without waiting for an answer.
    const gw = await as("gateway");
    const env = forgedScore();
    await refused("gateway publishing a well-formed transfers.scored", () =>
      jetstream(gw).publish("transfers.scored.00", encodeEvent(env), {
        msgID: env.eventId,
        headers: headersOf(env),
      }),
    );
    gw.publish("transfers.scored.00", encodeEvent(env), { headers: headersOf(env) });
    await gw.flush();
    await gw.close();
    await sleep(200);
    const after = await jsm.streams.info(StreamNames.Risk);
    expect(after.state.last_seq).toBe(before.state.last_seq);
    // The server names the user and the subject: operators see who tried.
    expect(nats.logs().join("\n")).toMatch(
      /"[^"]*:gateway" - Publish Violation - Nkey "U[A-Z0-9]+", Subject "transfers\.scored\.00"/,
    );
  }, 30_000);

  it("nats access - no service user (nor deploy) may delete or purge a stream; ops may not destroy LEDGER", async () => {
    const before = await Promise.all(Object.keys(Streams).map((s) => jsm.streams.info(s)));
    const users = [...SERVICES, "deploy"] as const;
    for (const user of users) {
      const nc =
        user === "deploy"
          ? await connect({
              servers: nats.url,
              authenticator: nkeyAuthenticator(new TextEncoder().encode(await seed("deploy"))),
            })
          : await as(user);
      const m = await jetstreamManager(nc);
      try {
        for (const stream of [...Object.keys(Streams), "KV_jetmesh-positions"]) {
          await refused(`${user} deleting ${stream}`, () => m.streams.delete(stream));
          await refused(`${user} purging ${stream}`, () => m.streams.purge(stream));
        }
        await refused(`${user} deleting LEDGER message 1`, () => m.streams.deleteMessage("LEDGER", 1));
      } finally {
        await nc.close();
      }
    }
    // Ops is an admin (it creates and deletes a stream of its own), LEDGER excepted.
    await jsm.streams.add({ name: "ACCESS_SCRATCH", subjects: ["access.scratch.>"] });
    expect(await jsm.streams.delete("ACCESS_SCRATCH")).toBe(true);
    await refused("ops deleting LEDGER", () => jsm.streams.delete("LEDGER"));
    await refused("ops purging LEDGER", () => jsm.streams.purge("LEDGER"));
    const after = await Promise.all(Object.keys(Streams).map((s) => jsm.streams.info(s)));
    expect(after.map((i) => [i.config.name, i.created, i.state.messages])).toEqual(
      before.map((i) => [i.config.name, i.created, i.state.messages]),
    );
  }, 30_000);

  it("nats access - a stage cannot read another stage's subjects, inbox or consumer", async () => {
    // No service subscribes to an event subject at all (stages read through their own
    // consumers), nor to another connection's inbox, nor to everything.
    const eventSubjects = PIPELINE_TYPES.map((t) => `${t}.*`);
    for (const user of SERVICES) {
      const nc = await as(user);
      try {
        const other = SERVICES.find((s) => s !== user);
        for (const subject of ["*.*.*", ">", "ledger.>", "_INBOX.>", `_INBOX_${other}.>`, ...eventSubjects]) {
          const err = await subscriptionRefused(nc, subject);
          expect(permissionError(err), `${user} subscribing to ${subject}`).toBeDefined();
        }
        // Its own inbox is its own.
        expect(await subscriptionRefused(nc, `_INBOX_${user}.test`)).toBeUndefined();
      } finally {
        await nc.close();
      }
    }
    // Operators read events through consumers too, not by subscribing.
    expect(permissionError(await subscriptionRefused(ops, "*.*.*"))).toBeDefined();
    const validator = await as("validator");
    const ledger = await as("ledger");
    try {
      // Nor pull from another stage's durable: the ledger may name its ordered consumers on
      // LEDGER freely, but the payout's durable there stays the payout's.
      const next = (nc: NatsConnection, subject: string) => () =>
        nc.request(subject, JSON.stringify({ batch: 1, no_wait: true }), { timeout: 2_000 });
      await refused(
        "ledger pulling payout's messages",
        next(ledger, "$JS.API.CONSUMER.MSG.NEXT.LEDGER.payout"),
      );
      await refused(
        "validator pulling risk's messages",
        next(validator, "$JS.API.CONSUMER.MSG.NEXT.VALIDATION.risk"),
      );
      await refused("ledger deleting payout's consumer", () =>
        jetstreamManager(ledger).then((m) => m.consumers.delete("LEDGER", "payout")),
      );
    } finally {
      await validator.close();
      await ledger.close();
    }
  }, 60_000);

  it("nats access - a connection without credentials, or with a key the server does not know, is refused", async () => {
    const anonymous = await connect({ servers: nats.url, reconnect: false }).then(
      async (nc) => {
        await nc.close();
        return undefined;
      },
      (err: unknown) => err,
    );
    expect(String(anonymous)).toMatch(/authorization violation/i);
    const stranger = nkeys.createUser();
    const unknown = await connect({
      servers: nats.url,
      reconnect: false,
      authenticator: nkeyAuthenticator(stranger.getSeed()),
    }).then(
      async (nc) => {
        await nc.close();
        return undefined;
      },
      (err: unknown) => err,
    );
    expect(String(unknown)).toMatch(/authorization violation/i);
  });

  it("nats access - the deploy configs run with the generated includes: routes and clients demand credentials", async () => {
    const { natsServer } = await ensureBinaries();
    const dir = await mkdtemp(join(tmpdir(), "jetmesh-access-deploy-"));
    try {
      const ports = {
        client: [await freePort(), await freePort()],
        monitor: [await freePort(), await freePort()],
        route: [await freePort(), await freePort()],
      };
      await run(
        process.execPath,
        [
          join(root, "packages/access/bin/jetmesh-access.mjs"),
          "nats",
          "--out",
          join(dir, "auth"),
          "--routes",
          ports.route.map((p) => `127.0.0.1:${p}`).join(","),
        ],
        { cwd: root, timeout: 30_000 },
      );
      const nodes: ChildHandle[] = [];
      for (const i of [0, 1]) {
        // deploy/nats/nats-N.conf as compose mounts it (auth/ next to it), on loopback ports.
        let conf = await readFile(join(root, `deploy/nats/nats-${i + 1}.conf`), "utf8");
        expect(conf).toMatch(/^http: 127\.0\.0\.1:8222$/m);
        expect(conf).toContain('include "auth/nats-auth.conf"');
        expect(conf).toContain('include "auth/nats-routes.conf"');
        conf = conf
          .replace("0.0.0.0:4222", `127.0.0.1:${ports.client[i]}`)
          .replace("127.0.0.1:8222", `127.0.0.1:${ports.monitor[i]}`)
          .replace("0.0.0.0:6222", `127.0.0.1:${ports.route[i]}`)
          .replace("/data/jetstream", join(dir, `store-${i}`));
        // sync_interval is a 2.10 setting; the server under test may be older.
        if (!/v2\.(1\d|[2-9]\d)\./.test((await run(natsServer, ["--version"])).stdout))
          conf = conf.replace(/^\s*sync_interval:.*$/m, "");
        await writeFile(join(dir, `nats-${i + 1}.conf`), conf);
        nodes.push(
          await spawnProcess({
            name: `deploy-nats-${i + 1}`,
            command: natsServer,
            args: ["-c", join(dir, `nats-${i + 1}.conf`)],
          }),
        );
      }
      // The routes connect with the generated credentials...
      await waitFor(
        async () => {
          const res = await fetch(`http://127.0.0.1:${ports.monitor[0]}/routez`).catch(() => undefined);
          return ((await res?.json()) as { num_routes?: number } | undefined)?.num_routes === 1;
        },
        { timeoutMs: 15_000, intervalMs: 100, what: "the two nodes routed" },
      );
      // ...and a route without them is refused, as is a client.
      const answer = await rawConnect(
        ports.route[1]!,
        'CONNECT {"verbose":false,"name":"intruder"}\r\nPING\r\n',
      );
      expect(answer).toMatch(/-ERR 'Authorization Violation'/);
      const client = await connect({ servers: `nats://127.0.0.1:${ports.client[1]}`, reconnect: false }).then(
        (nc) => nc.close().then(() => "connected"),
        (err: unknown) => String(err),
      );
      expect(client).toMatch(/authorization violation/i);
      await Promise.all(nodes.map((n) => n.stop()));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 30_000);

  it("nats access - a service refuses to start with a seed file others can read", async () => {
    const open = join(secrets, "validator-open.nk");
    await copyFile(seedOf("validator"), open);
    await chmod(open, 0o644);
    const child = await spawnProcess({
      name: "validator-open-seed",
      command: process.execPath,
      args: [bundleOf("services/validator/src/main.ts")],
      cwd: root,
      env: {
        NATS_URL: nats.url,
        NATS_NKEY_SEED_FILE: open,
        ...redisLogin("validator"),
        HTTP_PORT: String(await freePort()),
        OTEL_SDK_DISABLED: "true",
      },
    });
    const exit = await Promise.race([child.exited, sleep(15_000).then(() => undefined)]);
    expect(exit, "the validator should exit at start").toBeDefined();
    expect(exit?.code).not.toBe(0);
    expect(child.lines().join("\n")).toMatch(/NATS_NKEY_SEED_FILE: secret file .* is readable by every user/);
  }, 30_000);

  it("nats access - an operator replays a parked message with the ops user's seed; the validator takes it through its replay durable as its own user, once", async () => {
    const violationsBefore = nats.logs().filter((l) => /violation/i.test(l)).length;
    // A transfer the validator parked (the runtime's park(), as the validator's user).
    const env = makeEnvelope(
      EventTypes.TransferRequested,
      {
        transferId: "access-replay-1",
        from: "acc-a",
        to: "acc-b",
        amountMinor: 100,
        currency: "EUR",
        requestedAt: new Date().toISOString(),
      },
      {
        eventId: "access-replay-req-1",
        correlationId: "access-replay-1",
        causationId: "key-1",
        producer: "gateway",
      },
    ) as AnyEnvelope;
    const originSeq = (await jsm.streams.info(StreamNames.Ingress)).state.last_seq + 1000;
    const validator = await as("validator");
    try {
      await park(
        jetstream(validator),
        {
          stage: "validator",
          stream: StreamNames.Ingress,
          subject: subjectFor(EventTypes.TransferRequested, "acc-a"),
          streamSequence: originSeq,
          deliveries: 5,
          data: encodeEvent(env),
          headers: headersOf(env),
        },
        { errorClass: "TransientError", reason: "gave up after 5 deliveries: a dependency was down" },
      );
    } finally {
      await validator.close();
    }
    const dlqSeq = (await jsm.streams.info(StreamNames.Dlq)).state.last_seq;
    const ingressBefore = (await jsm.streams.info(StreamNames.Ingress)).state.last_seq;
    const auditBefore = (await jsm.streams.info(StreamNames.Audit)).state.messages;

    // The operator, as the generated `ops` user: read the DLQ, publish the replay and the audit
    // event, delete the entry.
    const cli = await run(
      process.execPath,
      [
        join(root, "packages/ops/bin/jetmesh.mjs"),
        "dlq",
        "replay",
        String(dlqSeq),
        "--actor",
        "access-test",
        "--yes",
      ],
      {
        cwd: root,
        timeout: 30_000,
        env: { ...process.env, NATS_URL: nats.url, NATS_NKEY_SEED_FILE: seedOf("ops"), PAYOUT_BANK_URL: "" },
      },
    ).catch((err: { stdout?: string; stderr?: string }) => {
      throw new Error(`jetmesh dlq replay failed: ${err.stderr ?? ""}${err.stdout ?? ""}`);
    });
    expect(cli.stdout).toMatch(
      new RegExp(
        `^#${dlqSeq} validator INGRESS#${originSeq} access-replay-1: replayed: sent to replay\\.validator on REPLAY`,
      ),
    );
    expect(await jsm.streams.getMessage(StreamNames.Dlq, { seq: dlqSeq })).toBeNull();
    expect((await jsm.streams.info(StreamNames.Audit)).state.messages).toBe(auditBefore + 1);

    // The validator, as its own user, consumes it through validator-replay and validates it once.
    const validatorProcess = await startService("validator");
    const outputs = async () => {
      const info = await jsm.streams.info(StreamNames.Validation);
      const found: string[] = [];
      for (let q = info.state.first_seq; q <= info.state.last_seq && info.state.messages > 0; q++) {
        const m = await jsm.streams.getMessage(StreamNames.Validation, { seq: q }).catch(() => null);
        if (m?.header.get("Jetmesh-Causation-Id") === env.eventId) found.push(m.subject);
      }
      return found;
    };
    const replayAcked = (delivered: number) =>
      waitFor(
        async () => {
          const c = await jsm.consumers.info(StreamNames.Replay, replayDurable("validator"));
          return c.num_pending === 0 && c.num_ack_pending === 0 && c.delivered.consumer_seq >= delivered
            ? c
            : undefined;
        },
        { what: "validator-replay acknowledged the replay", timeoutMs: 20_000 },
      );
    const consumer = await replayAcked(1);
    expect(consumer.config.filter_subject).toBe("replay.validator");
    const [out, ...more] = await outputs();
    expect(out).toMatch(/^transfers\.validated\./);
    expect(more).toEqual([]);
    // A second copy (as the ops user, another Msg-Id): the validator's done key absorbs it.
    const stored = await jsm.streams.getMessage(StreamNames.Replay, { last_by_subj: "replay.validator" });
    const copy = natsHeaders();
    for (const k of stored!.header.keys())
      if (!k.toLowerCase().startsWith("nats-")) copy.set(k, stored!.header.get(k));
    await jetstream(ops).publish("replay.validator", stored!.data, {
      msgID: "access-replay-again",
      headers: copy,
    });
    await replayAcked(2);
    expect(await outputs()).toEqual([out]);
    // Nothing was written to INGRESS, and not one call was refused.
    expect((await jsm.streams.info(StreamNames.Ingress)).state.last_seq).toBe(ingressBefore);
    expect((await validatorProcess.child.stop(10_000)).code).toBe(0);
    expect(
      nats
        .logs()
        .filter((l) => /violation/i.test(l))
        .slice(violationsBefore),
    ).toEqual([]);
  }, 60_000);

  it("nats access - with --no-runtime-creates a stage may not create its streams: it waits, unready, for the deploy step", async () => {
    const dir = join(base, "strict");
    await generate(dir, "--no-runtime-creates");
    const strict = await startNats({ configFile: join(dir, "nats-auth.conf") });
    const opsSeed = (await readFile(join(dir, "ops.nk"), "utf8")).trim();
    const admin = await connect({
      servers: strict.url,
      authenticator: nkeyAuthenticator(new TextEncoder().encode(opsSeed)),
    });
    try {
      // The call itself, as the validator's user: the refused create is a missing stream.
      const nc = await connectNats({
        url: strict.url,
        name: "validator",
        auth: { nkeySeed: (await readFile(join(dir, "validator.nk"), "utf8")).trim() },
      });
      const logger = createLogger({ service: "test", level: "silent" });
      const err = await ensureStream(await jetstreamManager(nc), Streams.VALIDATION, {
        replicas: 1,
        logger,
      }).then(
        () => undefined,
        (e: unknown) => e,
      );
      await nc.close();
      expect(err).toBeInstanceOf(StreamMissingError);
      expect(String(err)).toMatch(
        /VALIDATION is missing: this service may not create it; the deploy step does/,
      );

      // The process: alive and unready while nothing is provisioned, ready once the deploy step ran.
      const port = await freePort();
      const child = await spawnProcess({
        name: "validator-strict",
        command: process.execPath,
        args: [bundleOf("services/validator/src/main.ts")],
        cwd: root,
        env: {
          NATS_URL: strict.url,
          NATS_NKEY_SEED_FILE: join(dir, "validator.nk"),
          ...redisLogin("validator"),
          HTTP_HOST: "127.0.0.1",
          HTTP_PORT: String(port),
          OTEL_SDK_DISABLED: "true",
          ...E2E_SETTINGS,
        },
      });
      const readyz = async () => {
        const res = await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => undefined);
        await res?.arrayBuffer();
        return res?.status;
      };
      await waitFor(
        async () => child.lines().some((l) => /may not create it; the deploy step does/.test(l)),
        {
          timeoutMs: 20_000,
          intervalMs: 100,
          what: "the validator's wait for the deploy step",
        },
      );
      expect(child.isRunning()).toBe(true);
      expect(await readyz()).not.toBe(200);
      const adminJsm = await jetstreamManager(admin);
      expect(await adminJsm.streams.names().next(), "the validator created nothing").toEqual([]);
      // The deploy step publishes the schema registry, then creates the streams and the positions
      // bucket; nothing else is needed. The validator reads the registry as its own user.
      await publishSchemaRegistry(
        admin,
        registryDocuments(currentSchemaSet(), { release: "strict", ...currentSchemaSet() }),
      );
      await provisionStreams(adminJsm, { replicas: 1, logger });
      await waitFor(async () => (await readyz()) === 200, {
        timeoutMs: 20_000,
        intervalMs: 100,
        what: "the validator ready after the deploy step",
      }).catch((err: Error) => {
        throw new Error(
          `${err.message}\n${child.lines().slice(-15).join("\n")}\n${strict.logs().slice(-10).join("\n")}`,
        );
      });
      expect(strict.logs().filter((l) => /violation/i.test(l) && !/STREAM\.CREATE/.test(l))).toEqual([]);
      expect(child.lines().some((l) => l.includes("contracts match the schema registry"))).toBe(true);
      await child.stop();
    } finally {
      await admin.close().catch(() => {});
      await strict.stop();
    }
  }, 60_000);
});
