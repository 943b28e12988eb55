// The Redis projection's own life cycle against real servers: stop() ends it whenever it is
// called, including while a pass over the log is starting (the window a restore, a rollback
// repair or a stall opens). The projection's repairs are shown in stage.test.ts.
import { type FaultProxy, startFaultProxy, waitFor } from "@jetmesh/testkit";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLedgerStore, type LedgerStore } from "./store.ts";
import {
  type Infra,
  type LedgerParts,
  posted,
  provision,
  publishEvent,
  startInfra,
  startLedgerParts,
} from "./test-support.ts";

let infra: Infra;
let store: LedgerStore;
let proxy: FaultProxy;
let nc: NatsConnection;
let parts: LedgerParts | undefined;

beforeAll(async () => {
  infra = await startInfra();
  await provision(infra.jsm, infra.logger);
  store = createLedgerStore(infra.redis);
  proxy = await startFaultProxy({ targetPort: infra.nats.port });
  nc = await connect({ servers: proxy.url("nats"), ignoreClusterUpdates: true });
}, 60_000);
afterAll(async () => {
  proxy?.reset();
  await parts?.stop();
  await nc?.close().catch(() => {});
  await proxy?.close();
  await infra?.close();
});

describe("ledger projection life cycle", () => {
  it("ledger - a projection stopped while its pass over an idle log is starting stops", async () => {
    for (let i = 0; i < 3; i++)
      await publishEvent(
        infra.js,
        posted({ transferId: `t-${i}`, from: "external", to: "acc-a", amountMinor: 5, currency: "EUR" }),
      );
    parts = await startLedgerParts({ nc, logger: infra.logger, store, epochCheckMs: 50 });
    const projection = parts.projection!;
    await waitFor(async () => projection.ready() && (await store.appliedSeq()) === 3, {
      what: "projection live",
    });
    // Every request to NATS now takes 2 s: once Redis is wiped, the projection restores it from
    // the fold (Redis only), then starts a new pass over the log, which takes seconds.
    proxy.setLatency(1000);
    const restores = projection.status().restores;
    await infra.redisServer.flushAll();
    await waitFor(() => projection.status().restores > restores, { what: "the restore", intervalMs: 5 });
    const started = Date.now();
    const stopped = await Promise.race([
      projection.stop().then(() => true),
      new Promise<boolean>((r) => setTimeout(() => r(false), 15_000)),
    ]);
    expect(stopped, "stop() returned").toBe(true);
    expect(Date.now() - started).toBeLessThan(15_000);
  }, 60_000);
});
