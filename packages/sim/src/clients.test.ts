import { createServer } from "node:http";
import { type AnyEnvelope, deriveId, EventTypes, makeEnvelope, timeOfTimedId } from "@jetmesh/contracts";
import { createPrng, type StoredEvent } from "@jetmesh/testkit";
import { describe, expect, it } from "vitest";
import { type ClientRequest, requestsOnce, SIM_CUSTOMER, SimClients, timedKey } from "./clients.ts";

const WINDOW = 15 * 60_000;
const KEY = "0190a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a2b";

function stored(seq: number, transferId: string, timestampMs: number, key = KEY): StoredEvent {
  const env = makeEnvelope(
    EventTypes.TransferRequested,
    {
      transferId,
      from: "acc-s1",
      to: "acc-s2",
      amountMinor: 5,
      currency: "EUR",
      requestedAt: "2026-01-01T00:00:00.000Z",
    },
    {
      eventId: deriveId("gateway", EventTypes.TransferRequested, transferId),
      correlationId: transferId,
      causationId: `idempotency-key:${key}`,
      producer: "gateway",
      occurredAt: "2026-01-01T00:00:00.000Z",
      actor: SIM_CUSTOMER,
    },
  ) as AnyEnvelope;
  return { stream: "INGRESS", seq, subject: "transfers.requested.0", timestampMs, headers: {}, env };
}

const T = "0190a1b2-0000-4000-8000-000000000001";
const answered = new Map([
  [
    `${SIM_CUSTOMER} ${KEY}`,
    { transferId: T, eventId: deriveId("gateway", EventTypes.TransferRequested, T) },
  ],
]);
const check = (events: StoredEvent[], o: { storedOnce?: boolean; direct?: number } = {}) =>
  requestsOnce(events, {
    answered,
    direct: new Map(o.direct ? [[answered.get(`${SIM_CUSTOMER} ${KEY}`)?.eventId as string, o.direct]] : []),
    storedOnce: o.storedOnce ?? true,
    windowMs: WINDOW,
  });

describe("sim clients", () => {
  it("sim clients - G2: one stored request per accepted key, plus the copies the world re-published itself", () => {
    expect(check([stored(1, T, 0)])).toEqual([]);
    expect(check([stored(1, T, 0), stored(9, T, WINDOW + 1)])).toEqual([
      expect.stringMatching(/^G2 .*2 requests in INGRESS \(seq 1, 9\), expected 1/),
    ]);
    expect(check([stored(1, T, 0), stored(9, T, WINDOW + 1)], { direct: 1 })).toEqual([]);
    expect(check([])).toEqual([expect.stringMatching(/^G2 .*not in INGRESS/)]);
    expect(check([stored(1, "0190a1b2-0000-4000-8000-000000000002", 0)])).toEqual([
      expect.stringMatching(/^G2 .*INGRESS seq 1 holds event/),
    ]);
    expect(check([stored(1, T, 0), stored(2, T, 0, "other-key")])).toEqual([
      expect.stringMatching(/^G2 sim-customer other-key: stored at INGRESS seq 2, never accepted/),
    ]);
  });

  it("sim clients - G2 where Redis lost writes: a key stored again only past INGRESS's duplicate window", () => {
    expect(check([stored(1, T, 0), stored(9, T, WINDOW + 1)], { storedOnce: false })).toEqual([]);
    expect(check([stored(1, T, 0), stored(9, T, WINDOW - 1)], { storedOnce: false })).toEqual([
      expect.stringMatching(/^G2 .*inside the duplicate window/),
    ]);
  });

  it("sim clients - a client keeps its UUIDv7 key, retries after 409 in progress, and G1 flags a key answered with two transfers", async () => {
    const seen: Array<{ key: string | undefined; auth: string | undefined }> = [];
    const answers: Array<{ status: number; body: object | null; headers?: Record<string, string> }> = [
      { status: 409, body: { error: "request in progress" }, headers: { "Retry-After": "0" } },
      { status: 202, body: { transferId: "t-1", eventId: "e-1" } },
      { status: 200, body: { transferId: "t-2", eventId: "e-2" } },
      { status: 400, body: { error: "invalid request" } },
      { status: 200, body: null },
    ];
    const server = createServer((req, res) => {
      seen.push({ key: req.headers["idempotency-key"] as string, auth: req.headers.authorization });
      req.resume();
      req.on("end", () => {
        const a = answers.shift() ?? { status: 500, body: {} };
        res.writeHead(a.status, { "content-type": "application/json", ...a.headers });
        res.end(JSON.stringify(a.body));
      });
    });
    const trace: string[] = [];
    const clients = new SimClients(server, (l) => trace.push(l));
    const q: ClientRequest = { client: SIM_CUSTOMER, from: "acc-s1", to: "acc-s2", amountMinor: 5 };
    const keys = createPrng("clients-test");
    const before = Date.now();
    await clients.send(q, keys);
    expect(timeOfTimedId(q.key as string)).toBeGreaterThanOrEqual(before);
    expect(seen.map((s) => s.key)).toEqual([q.key, q.key]);
    expect(seen[0]?.auth).toMatch(/^Bearer jm_/);
    expect(clients.counts()).toEqual({ inProgress: 1, replayed: 0, unavailable: 0 });
    expect(clients.accepted()).toEqual([{ transferId: "t-1", from: "acc-s1", to: "acc-s2" }]);
    expect(clients.violations()).toEqual([]);
    await clients.send(q, keys);
    expect(clients.violations()).toEqual([
      expect.stringMatching(/^G1 sim-customer .*answered transfer t-2 \(event e-2\), first answered t-1/),
    ]);
    await clients.send(q, keys);
    expect(clients.violations()[1]).toMatch(/^G1 .*answered 400/);
    await clients.send(q, keys);
    expect(clients.violations()[2]).toMatch(/^G1 .*answered 200 without a transfer: null/);
    expect(clients.accepted()).toHaveLength(1);
    expect(trace).toEqual([expect.stringMatching(/answered 409; again in 0 s/)]);
  });

  it("sim clients - keys are UUIDv7 of the given time, drawn from the seed", () => {
    const a = timedKey(Date.UTC(2026, 0, 1), createPrng("k"));
    expect(timeOfTimedId(a)).toBe(Date.UTC(2026, 0, 1));
    expect(timedKey(Date.UTC(2026, 0, 1), createPrng("k"))).toBe(a);
    expect(timedKey(Date.UTC(2026, 0, 1), createPrng("other"))).not.toBe(a);
  });
});
