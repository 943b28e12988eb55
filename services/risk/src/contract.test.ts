// The stage contract suite every stage runs (@jetmesh/stage/testing), with the velocity
// windows in a real redis-server as risk's other tests keep them: the replay check is the
// velocity script answering a replayed event with its first snapshot.
import { randomUUID } from "node:crypto";
import { type AnyEnvelope, EventTypes, makeEnvelope } from "@jetmesh/contracts";
import { stageContract } from "@jetmesh/stage/testing";
import { type RedisServerHandle, startRedis } from "@jetmesh/testkit";
import { Redis } from "ioredis";
import { afterAll, beforeAll } from "vitest";
import { type RiskDeps, riskStage } from "./handler.ts";
import { createVelocityStore } from "./velocity.ts";

let server: RedisServerHandle;
let redis: Redis;
let deps: RiskDeps;
beforeAll(async () => {
  server = await startRedis();
  redis = new Redis(server.url);
  deps = {
    velocity: createVelocityStore(redis, {
      windowMs: 60_000,
      retentionMs: 3_600_000,
      keyPrefix: `v-${randomUUID()}`,
    }),
    thresholds: { reviewScore: 60, denyScore: 85 },
  };
});
afterAll(async () => {
  redis?.disconnect();
  await server?.stop();
});

const validated = (transferId: string, amountMinor: number, to = "acc-bob") =>
  makeEnvelope(
    EventTypes.TransferValidated,
    { transferId, from: "acc-alice", to, amountMinor, currency: "EUR" },
    {
      eventId: `va-${transferId}`,
      correlationId: transferId,
      causationId: `rq-${transferId}`,
      producer: "validator",
      occurredAt: "2026-11-29T10:00:00.000Z",
    },
  ) as AnyEnvelope;

stageContract(riskStage, {
  deps: () => deps,
  inputs: [validated("t-small", 1250), validated("t-large", 9_000_000, "bank:acme-1")],
});
