// jetmesh_accepted_to_outcome_seconds on a real mesh with two gateway instances sharing the
// status projection's durable consumers: every terminal transfer is observed exactly once
// across both (its accept and its outcome are often recorded by different instances), under
// the outcome the transfer ended with, and never again while the projection keeps running.
import { stopAllProcesses, waitFor } from "@jetmesh/testkit";
import { afterAll, describe, expect, it } from "vitest";
import { parseExposition } from "../observability/support/promql.ts";
import { postTransfer, REFUSED_BANK_ACCOUNTS, startTestMesh, type TestMesh } from "../support/mesh.ts";

const METRIC = "jetmesh_accepted_to_outcome_seconds";
/** The gateway's status (GET /v1/transfers/:id) of a transfer that ended, and its outcome label. */
const TERMINAL: Record<string, string> = {
  rejected: "rejected",
  declined: "declined",
  paid: "paid",
  reversed: "reversed",
};

describe("e2e accepted-to-outcome latency", () => {
  let t: TestMesh | undefined;
  afterAll(async () => {
    await t?.stop();
    await stopAllProcesses();
  }, 60_000);

  it("e2e - the latency histogram counts each terminal transfer once, by outcome, across gateway instances", {
    timeout: 300_000,
  }, async () => {
    t = await startTestMesh();
    const { mesh } = t;
    const second = await mesh.addInstance("gateway");
    const gateways = [mesh.services.gateway, second];
    const apiKey = mesh.apiKeys.operator;
    const tag = Math.random().toString(36).slice(2, 8);
    const send = (i: number, body: { from: string; to: string; amountMinor: number; currency?: string }) =>
      postTransfer(
        (gateways[i % 2] as { url: string }).url,
        `lat-${tag}-${i}`,
        { currency: "EUR", ...body },
        apiKey,
      );
    const view = async (id: string) => {
      const r = await fetch(`${mesh.gatewayUrl}/v1/transfers/${id}`, {
        headers: { authorization: `Bearer ${apiKey}` },
      });
      return r.status === 200 ? ((await r.json()) as { status: string }).status : "unknown";
    };

    // Funding first (postings to customers: terminal), then what spends it.
    const funded = [`acc-${tag}a`, `acc-${tag}b`];
    const ids: string[] = [];
    for (const [i, acc] of funded.entries())
      ids.push((await send(i, { from: "external", to: acc, amountMinor: 10_000 })).transferId);
    await waitFor(async () => (await Promise.all(ids.map(view))).every((s) => s === "posted"), {
      what: "the funding posted",
      timeoutMs: 60_000,
    });
    let n = 10;
    /** Bank payouts: posted is a step on their way, paid or reversed their end. */
    const payouts = new Set<string>();
    for (const acc of funded) {
      for (const bank of [`bank:${tag}-ok`, REFUSED_BANK_ACCOUNTS[0]]) {
        const id = (await send(n++, { from: acc, to: bank, amountMinor: 100 })).transferId;
        ids.push(id);
        payouts.add(id);
      }
      ids.push((await send(n++, { from: acc, to: `acc-${tag}c`, amountMinor: 50 })).transferId);
      ids.push(
        (await send(n++, { from: acc, to: `acc-${tag}c`, amountMinor: 1, currency: "XXX" })).transferId,
      );
      ids.push((await send(n++, { from: acc, to: `acc-${tag}c`, amountMinor: 1_000_000 })).transferId);
    }

    // Every transfer at its end, as the gateway shows it.
    let statuses: string[] = [];
    await waitFor(
      async () => {
        statuses = await Promise.all(ids.map(view));
        // a posting to a bank is on its way (payout), a posting to a customer has ended
        return statuses.every((s, k) => s in TERMINAL || (s === "posted" && !payouts.has(ids[k] as string)));
      },
      { what: "every transfer at its outcome", timeoutMs: 120_000, intervalMs: 500 },
    );
    const expected = new Map<string, number>();
    for (const s of statuses) {
      const outcome = TERMINAL[s] ?? "posted";
      expected.set(outcome, (expected.get(outcome) ?? 0) + 1);
    }
    expect(expected).toEqual(
      new Map([
        ["posted", 4],
        ["paid", 2],
        ["reversed", 2],
        ["rejected", 2],
        ["declined", 2],
      ]),
    );

    const counts = async () => {
      const out = new Map<string, number>();
      let sum = 0;
      for (const g of gateways) {
        const r = await fetch(`${g.opsUrl}/metrics`);
        for (const s of parseExposition(await r.text()).samples) {
          if (s.name === `${METRIC}_count`) {
            const o = s.labels.outcome as string;
            out.set(o, (out.get(o) ?? 0) + s.value);
          }
          if (s.name === `${METRIC}_sum`) sum += s.value;
        }
      }
      return { byOutcome: new Map([...out].filter(([, v]) => v > 0)), sum };
    };
    await waitFor(
      async () => {
        const got = JSON.stringify([...(await counts()).byOutcome].sort());
        if (got !== JSON.stringify([...expected].sort())) throw new Error(`counted ${got}`);
        return true;
      },
      { what: "one observation per terminal transfer", timeoutMs: 60_000, intervalMs: 500 },
    );
    // and no second one: the projection has drained, a few more seconds change nothing
    await new Promise((r) => setTimeout(r, 3000));
    const after = await counts();
    expect(after.byOutcome).toEqual(expected);
    // the latency is real: above zero, below the time the test took
    expect(after.sum).toBeGreaterThan(0);
    expect(after.sum / ids.length).toBeLessThan(120);
  });
});
