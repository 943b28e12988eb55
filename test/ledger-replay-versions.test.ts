// The ledger's rebuild (foldLedger: LEDGER from its first message through the contracts codec)
// over a log that holds two versions of an event, on a real nats-server.
//
// Which streams hold mixed versions today: only INGRESS (transfers.requested v1 and v2); every
// LEDGER event is v1, so a rebuild has never met a second version. INGRESS replayed from its
// start is covered by test/contract-evolution.test.ts (every event read as v2). This file covers
// what a rolling upgrade of the ledger brings to LEDGER: a newer writer appending ledger.posted
// v2 (an added optional field, as the `full` mode allows) while this build rebuilds. The log must
// fold exactly as the same log written all in v1.
import { type AnyEnvelope, EventTypes, encodeEvent } from "@jetmesh/contracts";
import { foldLedger } from "@jetmesh/ledger/projection-check";
import { declined, posted, reversed } from "@jetmesh/ledger/test-support";
import { stopAllProcesses } from "@jetmesh/testkit";
import { Packr } from "msgpackr";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Infra, startInfra } from "./support/infra.ts";

// A newer producer's encoder: this build's encodeEvent refuses a version it has not registered.
const newerProducer = new Packr({ useRecords: false, mapsAsObjects: true, moreTypes: false });

const CURRENCIES = ["EUR", "USD"] as const;

/** The log as the ledger appends it: postings, some declined, every fifth posting reversed later. */
function ledgerLog(): AnyEnvelope[] {
  const out: AnyEnvelope[] = [];
  for (let i = 0; i < 40; i++) {
    const core = {
      transferId: `mix-${i}`,
      from: `acc-${i % 5}`,
      to: `acc-${(i + 2) % 5}`,
      amountMinor: 100 + i * 7,
      currency: CURRENCIES[i % 2] as string,
    };
    const declinedOne = i % 7 === 3;
    out.push(declinedOne ? declined(core, "insufficient_funds") : posted(core));
    if (i % 5 === 0 && !declinedOne) out.push(reversed(core));
  }
  return out;
}

/** ledger.posted as a newer writer would append it: v2, with a field this build does not know. */
function asV2(env: AnyEnvelope, i: number): Uint8Array {
  return newerProducer.pack({ ...env, version: 2, data: { ...env.data, postingNote: `batch-${i % 3}` } });
}

describe("ledger rebuild over mixed versions", () => {
  let infra: Infra;
  beforeAll(async () => {
    infra = await startInfra();
  });
  afterAll(async () => {
    await infra?.close();
    await stopAllProcesses();
  });

  async function writeLog(stream: string, bodies: readonly Uint8Array[]): Promise<void> {
    await infra.jsm.streams.add({ name: stream, subjects: [`${stream.toLowerCase()}.>`] });
    for (const b of bodies) await infra.js.publish(`${stream.toLowerCase()}.log`, b);
  }

  it("ledger rebuild - a LEDGER with ledger.posted v1 and a newer writer's v2 folds as the all-v1 log does", async () => {
    const log = ledgerLog();
    await writeLog(
      "REBUILD_V1",
      log.map((e) => encodeEvent(e)),
    );
    let v2 = 0;
    await writeLog(
      "REBUILD_MIXED",
      log.map((e, i) =>
        e.type === EventTypes.LedgerPosted && i % 2 === 0 && ++v2 ? asV2(e, i) : encodeEvent(e),
      ),
    );
    expect(v2).toBeGreaterThan(10);

    const plain = await foldLedger({ js: infra.js, jsm: infra.jsm, stream: "REBUILD_V1" });
    const mixed = await foldLedger({ js: infra.js, jsm: infra.jsm, stream: "REBUILD_MIXED" });
    expect(plain.skipped).toEqual([]);
    expect(mixed.skipped).toEqual([]);
    expect(mixed.state.seq).toBe(log.length);
    expect(mixed.state.lastEventId).toBe(plain.state.lastEventId);
    expect(mixed.state.balances).toEqual(plain.state.balances);
    expect([...mixed.state.outcomes.entries()]).toEqual([...plain.state.outcomes.entries()]);
    // and the fold moved money: a posting debits its sender
    expect(plain.state.balances.get("acc-0")?.get("EUR")).toBeDefined();
  });

  it("ledger rebuild - a v2 event missing a field this build requires is reported, never folded", async () => {
    const [first] = ledgerLog();
    const { amountMinor: _gone, ...data } = first!.data as Record<string, unknown>;
    await writeLog("REBUILD_BROKEN", [
      newerProducer.pack({ ...first, version: 2, data }),
      encodeEvent(ledgerLog()[2]!),
    ]);
    const r = await foldLedger({ js: infra.js, jsm: infra.jsm, stream: "REBUILD_BROKEN" });
    expect(r.skipped).toHaveLength(1);
    expect(r.skipped[0]?.reason).toMatch(/\/data\/amountMinor/);
    expect(r.state.outcomes.size).toBe(1);
  });
});
