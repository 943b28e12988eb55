// 2,000 transfers through the real mesh (six processes, real HTTP), with client retries
// of the same Idempotency-Key (half of them concurrent), invalid requests, rule
// rejections, risky amounts and refused payouts, behind one poison message; then I1 to
// I6 from the streams.
import { Headers, Streams, subjectFor } from "@jetmesh/contracts";
import { gatewayBalances, readStoredEvents, stopAllProcesses, streamPosition } from "@jetmesh/testkit";
import { jetstream } from "@nats-io/jetstream";
import { headers as natsHeaders } from "@nats-io/transport-node";
import { afterAll, describe, expect, it } from "vitest";
import { sendTraffic } from "@jetmesh/mesh";
import {
  describeViolations,
  quietThenCheck,
  REFUSED_BANK_ACCOUNTS,
  startTestMesh,
  type TestMesh,
} from "../support/mesh.ts";

describe("e2e mesh traffic", () => {
  let t: TestMesh | undefined;
  afterAll(async () => {
    await t?.stop();
    await stopAllProcesses();
  });

  it("e2e - 2,000 transfers with duplicated client retries keep I1 to I6", async () => {
    t = await startTestMesh();
    // A message no stage can decode goes first: it must be parked with its reason (I6)
    // by every consumer of INGRESS while everything behind it flows.
    const poison = natsHeaders();
    poison.set(Headers.CorrelationId, "poison-1");
    await jetstream(t.nc).publish(subjectFor("transfers.requested", "acc-0"), new Uint8Array([0xc1, 0xff]), {
      msgID: "poison-1",
      headers: poison,
    });
    const traffic = await sendTraffic({
      gatewayUrl: t.mesh.gatewayUrl,
      apiKeys: t.mesh.apiKeys,
      transfers: 2000,
      rate: 400,
      accounts: 20,
      maxInFlight: 64,
      runId: "e2e-traffic",
      refusedBankAccounts: REFUSED_BANK_ACCOUNTS,
      shares: { retry: 0.15 },
    });
    // The client side: every duplicate got the same transfer back, invalid requests 400.
    expect(traffic.retries.mismatched).toEqual([]);
    expect(traffic.failed).toEqual([]);
    expect(traffic.retries.duplicates).toBeGreaterThan(200);
    expect(traffic.retries.concurrent).toBeGreaterThan(100);
    expect(traffic.invalid.sent).toBeGreaterThan(20);
    expect(traffic.invalid.unexpected).toEqual([]);
    expect(traffic.invalid.answered400).toBe(traffic.invalid.sent);

    const report = await quietThenCheck(
      t,
      traffic.accepted,
      gatewayBalances(t.mesh.gatewayUrl, { apiKey: t.mesh.apiKeys.operator }),
    );
    expect(report.violations, describeViolations(report)).toEqual([]);
    expect(report.checked).toEqual(["I1", "I2", "I3", "I4", "I5", "I6", "S1", "M1"]);
    const c = report.counts;
    expect(c.accepted).toBe(traffic.accepted.length);
    expect(c.lost + c.multiple).toBe(0);
    // Every kind of outcome happened, so each path of the pipeline was exercised.
    expect(c.posted).toBeGreaterThan(1000);
    expect(c.rejected).toBeGreaterThan(10);
    expect(c.declined).toBeGreaterThan(0);
    expect(c.reversed).toBeGreaterThan(5);
    // Retries never reached the log twice: one transfers.requested per accepted transfer.
    expect(c.events[Streams.INGRESS.name]).toBe(traffic.accepted.length + 1);
    const ingress = await readStoredEvents(
      jetstream(t.nc),
      Streams.INGRESS.name,
      await streamPosition(t.jsm, Streams.INGRESS.name),
    );
    const requested = ingress.filter((e) => e.env);
    expect(new Set(requested.map((e) => e.env?.correlationId)).size).toBe(requested.length);
    // The poison was parked, with a reason, by the validator and by the gateway's projection.
    const dlq = await readStoredEvents(
      jetstream(t.nc),
      Streams.DLQ.name,
      await streamPosition(t.jsm, Streams.DLQ.name),
      { decode: false },
    );
    expect(dlq.map((d) => d.subject).sort()).toEqual(["dlq.gateway-status", "dlq.validator"]);
    expect(c.dlq).toBe(2);
  }, 240_000);
});
