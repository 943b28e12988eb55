// A real stage's start against a real nats-server and redis-server, with a build that announces
// the type it consumes for removal: the start logs the warning once, naming type, release and
// stage, and the stage still starts (a warning, never a refusal).
import type * as Evolution from "@jetmesh/contracts/evolution";
import { createLogger, createRedis, runStage, type StageHandle, stageSettings } from "@jetmesh/stage";
import { stopAllProcesses } from "@jetmesh/testkit";
import { validatorStage } from "@jetmesh/validator/stage";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { type Infra, startInfra } from "./support/infra.ts";

// This build's contracts, with transfers.requested announced for removal since release r9.
vi.mock("@jetmesh/contracts/evolution", async (importOriginal) => {
  const real = await importOriginal<typeof Evolution>();
  const mark = <S extends Evolution.SchemaSet>(set: S, extra: object): S => ({
    ...set,
    types: {
      ...set.types,
      "transfers.requested": { ...set.types["transfers.requested"]!, typeDeprecated: true, ...extra },
    },
  });
  return {
    ...real,
    currentSchemaSet: () => mark(real.currentSchemaSet(), {}),
    releasedSchemas: () => mark(real.releasedSchemas(), { typeDeprecatedSince: "r9" }),
  };
});

describe("stage start with a deprecated input type", () => {
  let infra: Infra;
  let stage: StageHandle | undefined;
  beforeAll(async () => {
    infra = await startInfra();
  });
  afterAll(async () => {
    await stage?.stop();
    await infra?.close();
    await stopAllProcesses();
  });

  it("stage - the validator's start warns once that transfers.requested is announced for removal in r9", async () => {
    const lines: Array<Record<string, unknown>> = [];
    const logger = createLogger({
      service: "validator",
      destination: { write: (l: string) => lines.push(JSON.parse(l) as Record<string, unknown>) },
    });
    stage = await runStage({
      definition: validatorStage,
      deps: { rules: { maxAmountMinor: 10_000_000, currencies: new Set(["EUR"]) } },
      nc: infra.nc,
      redis: createRedis({ url: infra.redisServer.url, name: "deprecated-input" }),
      logger,
      settings: stageSettings({ ackWaitMs: 2000, maxDeliver: 5, retryBaseMs: 50 }),
    });
    const warnings = lines.filter((l) => l.event_type === "transfers.requested" && l.level === "warn");
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatchObject({ stage: "validator", announced_in: "r9" });
    expect(warnings[0]!.msg).toBe(
      "validator consumes transfers.requested, announced for removal in release r9: move validator off it before the deprecation window ends (owner: gateway)",
    );
  });
});
