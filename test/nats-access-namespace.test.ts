// The generated NATS permissions follow the namespace (`jetmesh-access nats --namespace a`): a
// stage started in namespace `a` as its own NKey user provisions, consumes and publishes on
// `a_*` streams and `a.*` subjects with no permission violation, while production's subjects
// are refused to it. Against a real nats-server running the generated include.
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import {
  encodeEvent,
  EventTypes,
  eventHeaders,
  makeEnvelope,
  namesFor,
  subjectFor,
} from "@jetmesh/contracts";
import { currentSchemaSet, registryDocuments, releasedSchemas } from "@jetmesh/contracts/evolution";
import { connectNats, createLogger } from "@jetmesh/stage";
import { provisionStreams } from "@jetmesh/stage/internal";
import {
  bundleOf,
  freePort,
  type NatsServerHandle,
  type RedisServerHandle,
  spawnProcess,
  startNats,
  startRedis,
  stopAllProcesses,
  waitFor,
} from "@jetmesh/testkit";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import {
  connect,
  headers as natsHeaders,
  type NatsConnection,
  nkeyAuthenticator,
} from "@nats-io/transport-node";
import { afterAll, describe, expect, it } from "vitest";
import { E2E_SETTINGS } from "./support/mesh.ts";

const root = join(import.meta.dirname, "..");
const run = promisify(execFile);
const a = namesFor("a");

describe("nats access in a namespace", () => {
  let base: string | undefined;
  let nats: NatsServerHandle | undefined;
  let redis: RedisServerHandle | undefined;
  const conns: NatsConnection[] = [];
  afterAll(async () => {
    for (const c of conns) await c.close().catch(() => {});
    await stopAllProcesses();
    await Promise.all([nats?.stop(), redis?.stop()]);
    if (base) await rm(base, { recursive: true, force: true });
  });

  it("nats access - a stage in namespace a runs as its own user on a_* streams; production's subjects are refused", async () => {
    base = await mkdtemp(join(tmpdir(), "jetmesh-access-ns-"));
    const secrets = join(base, "nats");
    await run(
      process.execPath,
      [join(root, "packages/access/bin/jetmesh-access.mjs"), "nats", "--out", secrets, "--namespace", "a"],
      { cwd: root, timeout: 30_000 },
    );
    const seedFile = (user: string) => join(secrets, `${user}.nk`);
    const as = async (user: string) => {
      const nc = await connectNats({
        url: (nats as NatsServerHandle).url,
        name: user,
        auth: { nkeySeed: (await readFile(seedFile(user), "utf8")).trim() },
      });
      conns.push(nc);
      return nc;
    };
    [nats, redis] = await Promise.all([
      startNats({ configFile: join(secrets, "nats-auth.conf") }),
      startRedis(),
    ]);
    // The deploy step of namespace a, as the ops user (a plain client with the default inbox, as the nats CLI).
    const ops = await connect({
      servers: nats.url,
      name: "ops",
      authenticator: nkeyAuthenticator(
        new TextEncoder().encode((await readFile(seedFile("ops"), "utf8")).trim()),
      ),
    });
    conns.push(ops);
    await provisionStreams(await jetstreamManager(ops), {
      replicas: 1,
      logger: createLogger({ service: "test", level: "warn" }),
      namespace: "a",
      schemas: registryDocuments(currentSchemaSet(), releasedSchemas()),
    });

    const port = await freePort();
    const validator = await spawnProcess({
      name: "validator",
      command: process.execPath,
      args: [bundleOf("services/validator/src/main.ts")],
      cwd: root,
      env: {
        ...E2E_SETTINGS,
        JETMESH_NAMESPACE: "a",
        NATS_URL: nats.url,
        NATS_NKEY_SEED_FILE: seedFile("validator"),
        REDIS_URL: redis.url,
        HTTP_HOST: "127.0.0.1",
        HTTP_PORT: String(port),
        LOG_LEVEL: "warn",
        OTEL_SDK_DISABLED: "true",
      },
    });
    await waitFor(
      async () => {
        if (!validator.isRunning()) throw new Error(`validator exited:\n${validator.lines().join("\n")}`);
        return (await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => undefined))?.status === 200;
      },
      { timeoutMs: 60_000, intervalMs: 200, what: "validator ready in namespace a" },
    );

    // The gateway's user publishes a request on a's subject; the validator takes it.
    const env = makeEnvelope(
      EventTypes.TransferRequested,
      {
        transferId: "tr-ns-1",
        from: "acc-alice",
        to: "acc-bob",
        amountMinor: 100,
        currency: "EUR",
        requestedAt: new Date().toISOString(),
      },
      {
        eventId: "ev-ns-1",
        correlationId: "tr-ns-1",
        causationId: "key-ns-1",
        producer: "gateway",
        actor: "acme",
      },
    );
    const h = natsHeaders();
    for (const [k, v] of Object.entries(eventHeaders(env))) h.set(k, v);
    const gateway = jetstream(await as("gateway"));
    const subject = subjectFor(env.type, env.data.from);
    await gateway.publish(a.subject(subject), encodeEvent(env), { msgID: env.eventId, headers: h });
    const jsm = await jetstreamManager(ops);
    await waitFor(async () => (await jsm.streams.info(a.stream("VALIDATION"))).state.messages === 1, {
      timeoutMs: 30_000,
      intervalMs: 200,
      what: "the validated transfer on a_VALIDATION",
    });
    const stored = await jsm.streams.getMessage(a.stream("VALIDATION"), { seq: 1 });
    expect(stored?.subject.startsWith("a.transfers.validated.")).toBe(true);
    // Production's subject is not the gateway's in namespace a: refused, nothing stored.
    await expect(
      gateway.publish(subject, encodeEvent(env), { msgID: "prod", timeout: 2000 }),
    ).rejects.toThrow();
    expect(nats.logs().filter((l) => /violation/i.test(l) && !l.includes(`"${subject}"`))).toEqual([]);
    expect(validator.isRunning()).toBe(true);
  }, 180_000);
});
