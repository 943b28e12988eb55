// A rolling upgrade of transfers.requested v1 → v2 through the real mesh, old and new builds
// side by side while traffic flows. "Old" is the release before v2, built for real
// (support/before-v2.ts): its gateway writes v1 and refuses `reference`, its validator knows
// v1 only and reads v2 tolerantly. The roll, in the order the contracts README prescribes:
//   1. the old release runs (its registry, old gateway, old validator); traffic;
//   2. a new gateway started before the release that teaches readers v2 refuses to start,
//      naming the event and version (consumers before producers, enforced at start);
//   3. the deploy step publishes the new release; a new validator joins the old one on the
//      durable `validator`;
//   4. a new gateway joins the old one: v1 and v2 written side by side, read by old and new
//      validators; the old validator, then the old gateway, leave while traffic flows;
//   5. new builds only.
// Then I1 to I6 from the streams, INGRESS replayed from its start (v1 lifted, v2 kept), and the
// ledger's rebuild folding LEDGER from its first message to exactly the live projection.
import { setTimeout as sleep } from "node:timers/promises";
import { Headers, Streams } from "@jetmesh/contracts";
import { currentSchemaSet, registryDocuments, releasedSchemas } from "@jetmesh/contracts/evolution";
import { rebuild } from "@jetmesh/ledger/projection-check";
import { createLedgerStore } from "@jetmesh/ledger/store";
import { type MeshService, sendTraffic } from "@jetmesh/mesh";
import { publishSchemaRegistry } from "@jetmesh/stage/internal";
import {
  type AcceptedTransfer,
  gatewayBalances,
  readStoredEvents,
  stopAllProcesses,
  streamPosition,
} from "@jetmesh/testkit";
import { jetstream } from "@nats-io/jetstream";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BEFORE_V2_RELEASE, buildBeforeV2, registryBeforeV2 } from "../support/before-v2.ts";
import {
  describeViolations,
  quietThenCheck,
  REFUSED_BANK_ACCOUNTS,
  startTestMesh,
  type TestMesh,
} from "../support/mesh.ts";

const ACCOUNTS = 20;

/** Input messages a validator instance acked, from its own /metrics. */
async function ackedBy(s: MeshService): Promise<number> {
  const text = await (await fetch(`${s.opsUrl}/metrics`)).text();
  let n = 0;
  for (const line of text.split("\n"))
    if (
      line.startsWith("jetmesh_messages_processed_total{") &&
      line.includes(`stream="${Streams.INGRESS.name}"`) &&
      line.includes('outcome="acked"')
    )
      n += Number(line.slice(line.lastIndexOf(" ") + 1));
  return n;
}

/** POST /v1/transfers with v2's fields; the answer's status and body. */
async function postWithReference(
  gatewayUrl: string,
  apiKey: string,
  i: number,
): Promise<{ status: number; body: Record<string, unknown>; from: string; to: string }> {
  const from = `acc-${i % ACCOUNTS}`;
  const to = `acc-${(i + 7) % ACCOUNTS}`;
  const res = await fetch(`${gatewayUrl}/v1/transfers`, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      "idempotency-key": `roll-ref-${gatewayUrl.slice(-5)}-${i}`,
      authorization: `Bearer ${apiKey}`,
    },
    body: JSON.stringify({
      from,
      to,
      amountMinor: 100 + i,
      currency: "EUR",
      reference: `invoice-${i}`,
      metadata: { order: `o-${i}` },
    }),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown>, from, to };
}

/** `n` transfers with v2's fields through `gatewayUrl`, 8 at a time; each must be accepted. */
async function referencedTransfers(
  gatewayUrl: string,
  apiKey: string,
  first: number,
  n: number,
): Promise<AcceptedTransfer[]> {
  const out: AcceptedTransfer[] = [];
  for (let i = first; i < first + n; i += 8) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(8, first + n - i) }, (_, k) =>
        postWithReference(gatewayUrl, apiKey, i + k),
      ),
    );
    for (const r of batch) {
      expect(r.status, JSON.stringify(r.body)).toBe(202);
      out.push({ transferId: String(r.body.transferId), from: r.from, to: r.to });
    }
  }
  return out;
}

describe("e2e rolling upgrade", () => {
  let t: TestMesh | undefined;
  let old: { gateway: string; validator: string };
  beforeAll(async () => {
    old = await buildBeforeV2();
  }, 120_000);
  afterAll(async () => {
    await t?.stop();
    await stopAllProcesses();
  });

  it("e2e - transfers.requested v1 → v2 rolled out with old and new gateways and validators side by side keeps I1 to I6", async () => {
    // 1. The old release: its registry, its gateway and validator; every other stage is unchanged by v2.
    t = await startTestMesh({ registry: registryBeforeV2(), bundles: old });
    const mesh = t.mesh;
    const oldGateway = mesh.service("gateway");
    const oldValidator = mesh.service("validator");
    const traffic = (url: string, runId: string, transfers: number) =>
      sendTraffic({
        gatewayUrl: url,
        apiKeys: mesh.apiKeys,
        transfers,
        rate: 150,
        accounts: ACCOUNTS,
        maxInFlight: 16,
        runId,
        refusedBankAccounts: REFUSED_BANK_ACCOUNTS,
        shares: { retry: 0.1 },
      });
    // The old gateway does not know v2's fields: an unknown field, as before v2.
    const refused = await postWithReference(oldGateway.url, mesh.apiKeys.customer, 0);
    expect(refused.status).toBe(400);
    expect(JSON.stringify(refused.body)).toMatch(/\/reference/);

    const waveA = traffic(oldGateway.url, "roll-a", 300);
    // 2. A new gateway before the release that teaches readers v2: refused at start, by name.
    const early = await mesh.addInstance("gateway").then(
      () => undefined,
      (err: Error) => err.message,
    );
    expect(early).toContain("gateway: refusing to start, 1 setting to fix:");
    expect(early).toContain(
      `contracts: produces transfers.requested@2 /: v2 is not released in the registry (released: v1, release ${BEFORE_V2_RELEASE}): release it and deploy its consumers before its producers`,
    );
    // 3. The deploy step publishes the new release; consumers first: a new validator joins.
    const published = await publishSchemaRegistry(
      t.nc,
      registryDocuments(currentSchemaSet(), releasedSchemas()),
    );
    expect(published.written).toContain("schema.transfers.requested.v2");
    const newValidator = await mesh.addInstance("validator");
    const a = await waveA;
    expect(a.failed).toEqual([]);
    expect(a.retries.mismatched).toEqual([]);
    expect(a.invalid.unexpected).toEqual([]);

    // 4. Producers next: a new gateway joins the old one. v2 events alone first, read by both
    //    validators (the old one tolerantly, v2's fields dropped).
    const newGateway = await mesh.addInstance("gateway");
    const [oldBefore, newBefore] = [await ackedBy(oldValidator), await ackedBy(newValidator)];
    const referenced = await referencedTransfers(newGateway.url, mesh.apiKeys.customer, 1, 64);
    for (let i = 0; i < 100; i++) {
      const [o, n] = [await ackedBy(oldValidator), await ackedBy(newValidator)];
      if (o - oldBefore + (n - newBefore) >= referenced.length) break;
      await sleep(100);
    }
    expect(await ackedBy(oldValidator), "the old validator read v2 events").toBeGreaterThan(oldBefore);
    expect(await ackedBy(newValidator), "the new validator read v2 events").toBeGreaterThan(newBefore);

    // v1 and v2 written side by side; the old validator leaves (drains) midway, then the old gateway.
    const waveOld = traffic(oldGateway.url, "roll-b-old", 250);
    const waveNew = traffic(newGateway.url, "roll-b-new", 250);
    await sleep(1500);
    await oldValidator.stop();
    const [bOld, bNew] = await Promise.all([waveOld, waveNew]);
    await oldGateway.stop();
    // 5. New builds only.
    const c = await traffic(newGateway.url, "roll-c", 250);
    for (const w of [bOld, bNew, c]) {
      expect(w.failed).toEqual([]);
      expect(w.retries.mismatched).toEqual([]);
      expect(w.invalid.unexpected).toEqual([]);
    }

    const accepted = [...a.accepted, ...referenced, ...bOld.accepted, ...bNew.accepted, ...c.accepted];
    const report = await quietThenCheck(
      t,
      accepted,
      gatewayBalances(newGateway.url, { apiKey: mesh.apiKeys.operator }),
    );
    expect(report.violations, describeViolations(report)).toEqual([]);
    expect(report.checked).toEqual(["I1", "I2", "I3", "I4", "I5", "I6", "S1", "M1"]);
    expect(report.counts.accepted).toBe(accepted.length);
    expect(report.counts.dlq).toBe(0);

    // INGRESS replayed from its start: both versions, every event read as v2, v2's fields kept.
    const js = jetstream(t.nc);
    const ingress = await readStoredEvents(
      js,
      Streams.INGRESS.name,
      await streamPosition(t.jsm, Streams.INGRESS.name),
    );
    const written = new Map<string, number>();
    for (const e of ingress) {
      expect(e.decodeError, `INGRESS ${e.seq}`).toBeUndefined();
      const v = e.headers[Headers.SchemaVersion.toLowerCase()] ?? "?";
      written.set(v, (written.get(v) ?? 0) + 1);
      expect(e.env?.version).toBe(2);
    }
    expect(written.get("1"), "v1 events from the old gateway").toBeGreaterThan(300);
    expect(written.get("2"), "v2 events from the new gateway").toBeGreaterThan(300);
    expect([...written.keys()].sort()).toEqual(["1", "2"]);
    const withReference = ingress.filter(
      (e) => e.env?.type === "transfers.requested" && e.env.data.reference !== undefined,
    );
    expect(withReference).toHaveLength(referenced.length);
    for (const e of withReference)
      if (e.env?.type === "transfers.requested")
        expect(e.env.data.metadata).toEqual({ order: e.env.data.reference?.replace("invoice-", "o-") });

    // The ledger's rebuild: LEDGER folded from its first message is exactly the live projection.
    const redis = new Redis(t.redis.url, { maxRetriesPerRequest: 3 });
    try {
      const r = await rebuild({ js, jsm: t.jsm, store: createLedgerStore(redis) });
      expect(r.fold.skipped).toEqual([]);
      expect(r.differences).toEqual([]);
      expect(r.fold.state.outcomes.size).toBeGreaterThan(accepted.length / 2);
      // The same fold twice: replay is deterministic.
      const again = await rebuild({ js, jsm: t.jsm, store: createLedgerStore(redis) });
      expect([...again.fold.state.balances]).toEqual([...r.fold.state.balances]);
    } finally {
      redis.disconnect();
    }
  }, 300_000);
});
