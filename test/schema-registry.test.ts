// The schema registry in NATS KV on a real nats-server: the deploy step publishes it
// (idempotently), and a stage checks itself against it before consuming: a compatible start
// passes, an incompatible one is refused naming the event and field, a producer may not write a
// version no release taught readers, nor an envelope version the registry lacks, and a missing
// registry is a warning.
import {
  currentSchemaSet,
  REGISTRY_BUCKET,
  type RegistryIndex,
  registryDocuments,
  type SchemaSet,
} from "@jetmesh/contracts/evolution";
import {
  ConfigError,
  createLogger,
  createRedis,
  runStage,
  type StageHandle,
  stageSettings,
} from "@jetmesh/stage";
import { checkSchemaRegistry, publishSchemaRegistry } from "@jetmesh/stage/internal";
import { stopAllProcesses } from "@jetmesh/testkit";
import { Kvm } from "@nats-io/kv";
import { validatorStage } from "@jetmesh/validator/stage";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { runContractsCli } from "../scripts/contracts.ts";
import { type Infra, startInfra } from "./support/infra.ts";

const logger = createLogger({ service: "test", level: process.env.TEST_LOG_LEVEL ?? "silent" });
const rules = { maxAmountMinor: 10_000_000, currencies: new Set(["EUR", "USD"]) };
const released = (set: SchemaSet = currentSchemaSet()) => ({ release: "test-release", ...set });

/** The tree's set, with producers of transfers.requested writing a v3 that drops `currency`. */
function withV3WithoutCurrency(): SchemaSet {
  const set = currentSchemaSet();
  const t = set.types["transfers.requested"]!;
  const v2 = t.versions["2"] as { properties: Record<string, unknown>; required: string[] };
  const { currency: _dropped, ...properties } = v2.properties;
  const v3 = { ...v2, properties, required: v2.required.filter((f) => f !== "currency") };
  return {
    ...set,
    types: { ...set.types, "transfers.requested": { ...t, writes: 3, versions: { ...t.versions, "3": v3 } } },
  };
}

describe("schema registry", () => {
  let infra: Infra;
  let stage: StageHandle | undefined;
  beforeAll(async () => {
    infra = await startInfra();
  });
  afterEach(async () => {
    await stage?.stop();
    stage = undefined;
    await infra.jsm.streams.delete(`KV_${REGISTRY_BUCKET}`).catch(() => false);
  });
  afterAll(async () => {
    await infra?.close();
    await stopAllProcesses();
  });

  const start = () =>
    runStage({
      definition: validatorStage,
      deps: { rules },
      nc: infra.nc,
      redis: createRedis({ url: infra.redisServer.url, name: "registry" }),
      logger,
      settings: stageSettings({ ackWaitMs: 2000, maxDeliver: 5, retryBaseMs: 50 }),
    });

  it("schema registry - the deploy step publishes every version once; a second publish writes nothing", async () => {
    const docs = registryDocuments(currentSchemaSet(), released());
    const first = await publishSchemaRegistry(infra.js, docs);
    expect(first.written).toContain("schema.transfers.requested.v2");
    expect(first.written).toContain("schema.envelope.v1");
    expect(first.written).toContain("schema.envelope.v2");
    expect(first.written).toContain("index");
    const kv = await new Kvm(infra.js).open(REGISTRY_BUCKET);
    const index = (await kv.get("index"))?.json<RegistryIndex>();
    expect(index?.envelope).toMatchObject({ mode: "full", writes: 2, versions: [1, 2], owner: "platform" });
    const again = await publishSchemaRegistry(infra.nc, docs);
    expect(again.written).toEqual([]);
    expect(again.unchanged).toHaveLength(docs.size);
  });

  it("schema registry - pnpm contracts:publish writes the envelope's versions from the committed artifacts", async () => {
    const out: string[] = [];
    const err: string[] = [];
    const code = await runContractsCli(["publish", "--nats-url", infra.nats.url], {
      out: (l) => out.push(l),
      err: (l) => err.push(l),
    });
    expect(err).toEqual([]);
    expect(code).toBe(0);
    const kv = await new Kvm(infra.js).open(REGISTRY_BUCKET);
    expect((await kv.get("index"))?.json<RegistryIndex>().envelope).toMatchObject({
      writes: 2,
      versions: [1, 2],
    });
    expect((await kv.get("schema.envelope.v2"))?.json<{ properties: object }>().properties).toHaveProperty(
      "actor",
    );
    expect(
      await checkSchemaRegistry({
        js: infra.js,
        service: "validator",
        consumes: [],
        produces: ["transfers.validated"],
        logger,
      }),
    ).toEqual([]);
  });

  it("schema registry - a released version's schema never changes in the bucket", async () => {
    await publishSchemaRegistry(infra.js, registryDocuments(currentSchemaSet(), released()));
    const changed = registryDocuments(withV3WithoutCurrency(), released());
    changed.set("schema.transfers.requested.v1", { type: "object" });
    await expect(publishSchemaRegistry(infra.js, changed)).rejects.toThrow(
      /schema\.transfers\.requested\.v1 differs/,
    );
  });

  it("schema registry - a stage whose contracts match the registry starts", async () => {
    await publishSchemaRegistry(infra.js, registryDocuments(currentSchemaSet(), released()));
    stage = await start();
    expect(stage.ready()).toBeDefined();
  });

  it("schema registry - a consumer is refused when producers write a version dropping a field it reads", async () => {
    const set = withV3WithoutCurrency();
    await publishSchemaRegistry(infra.js, registryDocuments(set, released(set)));
    const refused = await start().then(
      (h) => {
        stage = h;
        return undefined;
      },
      (e: unknown) => e,
    );
    expect(refused).toBeInstanceOf(ConfigError);
    const problems = (refused as ConfigError).problems.join("\n");
    expect(problems).toContain("consumes transfers.requested@3 /currency");
    expect(problems).toMatch(/required field removed/);
  });

  it("schema registry - a producer may not write a version the registry has not released", async () => {
    // The registry's last release taught readers transfers.requested v1 only.
    const set = currentSchemaSet();
    const t = set.types["transfers.requested"]!;
    const old = {
      types: { ...set.types, "transfers.requested": { ...t, writes: 1, versions: { 1: t.versions["1"]! } } },
    };
    await publishSchemaRegistry(infra.js, registryDocuments(set, released(old)));
    const check = checkSchemaRegistry({
      js: infra.js,
      service: "gateway",
      consumes: [],
      produces: ["transfers.requested"],
      logger,
    });
    await expect(check).rejects.toThrow(
      /produces transfers\.requested@2 \/: v2 is not released in the registry \(released: v1/,
    );
    // its consumers, which read v1 and v2, start: consumers go first
    stage = await start();
  });

  const producerCheck = () =>
    checkSchemaRegistry({
      js: infra.js,
      service: "validator",
      consumes: [],
      produces: ["transfers.validated"],
      logger,
    });

  it("schema registry - a producer is refused when the registry lacks the envelope version it writes", async () => {
    // A registry published before the deploy step wrote the envelope.
    const { envelope: _none, ...withoutEnvelope } = currentSchemaSet();
    await publishSchemaRegistry(infra.js, registryDocuments(withoutEnvelope, released(withoutEnvelope)));
    await expect(producerCheck()).rejects.toThrow(
      /contracts: produces envelope@2 \/: the registry does not know envelope: run the deploy step \(pnpm contracts:publish\)/,
    );
    await expect(start()).rejects.toBeInstanceOf(ConfigError);
  });

  it("schema registry - a producer is refused when the registry holds older envelope versions only", async () => {
    // A tree whose envelope stopped at v1 published the registry; this build writes envelope v2.
    const set = currentSchemaSet();
    const env = set.envelope!;
    const older = { ...set, envelope: { ...env, writes: 1, versions: { 1: env.versions["1"]! } } };
    await publishSchemaRegistry(infra.js, registryDocuments(older, released(older)));
    await expect(producerCheck()).rejects.toThrow(
      /produces envelope@2 \/: v2 is not released in the registry \(released: v1/,
    );
    // A registry holding v1 and v2 (no release has shipped the envelope yet) lets it start.
    await infra.jsm.streams.delete(`KV_${REGISTRY_BUCKET}`);
    const { envelope: _unreleased, ...before } = set;
    await publishSchemaRegistry(infra.js, registryDocuments(set, released(before)));
    expect(await producerCheck()).toEqual([]);
  });

  it("schema registry - without a registry a stage starts and warns why", async () => {
    const warnings = await checkSchemaRegistry({
      js: infra.js,
      service: "validator",
      consumes: ["transfers.requested"],
      produces: ["transfers.validated"],
      logger,
    });
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/schema registry not checked: .*jetmesh-schemas/);
    stage = await start();
  });
});
