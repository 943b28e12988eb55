// The ledger's memory per million transfers per day, measured (issue 17): what a running
// ledger holds for each transfer (its outcome in the in-memory fold), what each snapshot
// writes for it, and what LEDGER stores on disk for each event. The fold and the snapshots
// are bounded by the ledger's horizon (services/ledger/src/outcome-ttl.ts: an outcome leaves
// the fold 5/4 of LEDGER_OUTCOME_TTL_MS after its last event); LEDGER keeps every event.
//   pnpm --filter @jetmesh/bench exec node --expose-gc --import tsx src/ledger-memory.ts [--outcomes 300000] [--events 20000]
import { parseArgs } from "node:util";
import {
  type AnyEnvelope,
  encodeEvent,
  EventTypes,
  eventHeaders,
  makeEnvelope,
  outputEventId,
  Streams,
  subjectFor,
  toStreamConfig,
} from "@jetmesh/contracts";
import { applyLedgerEvent, emptyFold } from "@jetmesh/ledger/fold";
import { compactFold, compactionHorizonMs, DEFAULT_OUTCOME_TTL_MS } from "@jetmesh/ledger/outcome-ttl";
import { encodeSnapshot } from "@jetmesh/ledger/snapshots";
import { startNats, stopAllProcesses } from "@jetmesh/testkit";
import { jetstream, jetstreamManager, type StreamConfig } from "@nats-io/jetstream";
import { connect, headers as natsHeaders } from "@nats-io/transport-node";

const { values } = parseArgs({
  options: { outcomes: { type: "string", default: "300000" }, events: { type: "string", default: "20000" } },
});
const OUTCOMES = Number(values.outcomes);
const EVENTS = Number(values.events);
const DAY_MS = 24 * 3600_000;
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error("run with node --expose-gc");

/** A LEDGER event as the ledger appends it: the demo mix's shapes (a third pay a bank). */
function ledgerEvent(i: number, at: string): AnyEnvelope {
  const transferId = `01J${String(i).padStart(23, "0")}`;
  const cause = `sc-${transferId}`;
  const to = i % 3 === 0 ? `bank:${i % 40}` : `acc-${(i + 7) % 5000}`;
  const from = i % 4 === 0 ? "external" : `acc-${i % 5000}`;
  return makeEnvelope(
    EventTypes.LedgerPosted,
    { transferId, from, to, amountMinor: 1000 + (i % 90_000), currency: "EUR", decision: "allow" },
    {
      eventId: outputEventId("ledger", cause, EventTypes.LedgerPosted),
      correlationId: transferId,
      causationId: cause,
      producer: "ledger",
      occurredAt: at,
    },
  ) as AnyEnvelope;
}

const heap = () => {
  gc?.();
  gc?.();
  return process.memoryUsage().heapUsed;
};

// 1. The fold: heap bytes per outcome, snapshot bytes per outcome, compaction time.
const t0 = Date.now();
const before = heap();
const fold = emptyFold();
for (let i = 0; i < OUTCOMES; i++)
  applyLedgerEvent(fold, i + 1, ledgerEvent(i, new Date(t0 - (OUTCOMES - i) * 1000).toISOString()));
const heapPerOutcome = (heap() - before) / OUTCOMES;
const snapshotPerOutcome = encodeSnapshot(fold, "bench").length / OUTCOMES;
// Compaction of half the outcomes: the cutoff falls in the middle of their times.
const now = t0 - (OUTCOMES / 2) * 1000 + compactionHorizonMs(DEFAULT_OUTCOME_TTL_MS);
const started = performance.now();
const dropped = await compactFold(fold, DEFAULT_OUTCOME_TTL_MS, now);
const compactMs = performance.now() - started;
const afterCompaction = (heap() - before) / OUTCOMES;

// 2. LEDGER on disk: bytes per stored event, with the headers the ledger writes.
const nats = await startNats();
let ledgerBytesPerEvent = 0;
try {
  const nc = await connect({ servers: nats.url });
  const jsm = await jetstreamManager(nc);
  await jsm.streams.add({ ...toStreamConfig(Streams.LEDGER), num_replicas: 1 } as unknown as StreamConfig);
  const js = jetstream(nc);
  const at = new Date().toISOString();
  for (let i = 0; i < EVENTS; i += 500) {
    await Promise.all(
      Array.from({ length: Math.min(500, EVENTS - i) }, (_, k) => {
        const env = ledgerEvent(i + k, at);
        const h = natsHeaders();
        for (const [name, v] of Object.entries(eventHeaders(env))) h.set(name, v);
        const d = env.data as { from: string };
        return js.publish(subjectFor(env.type, d.from), encodeEvent(env), { msgID: env.eventId, headers: h });
      }),
    );
  }
  ledgerBytesPerEvent = (await jsm.streams.info(Streams.LEDGER.name)).state.bytes / EVENTS;
  await nc.close();
} finally {
  await nats.stop();
  await stopAllProcesses();
}

const ttlDays = DEFAULT_OUTCOME_TTL_MS / DAY_MS;
const heldDays = compactionHorizonMs(DEFAULT_OUTCOME_TTL_MS) / DAY_MS;
const gib = (bytes: number) => (bytes / 1024 ** 3).toFixed(2);
const perMillionPerDay = (bytesPerTransfer: number, days: number) => gib(bytesPerTransfer * 1e6 * days);
console.log(`ledger memory, ${OUTCOMES} outcomes folded, ${EVENTS} LEDGER events stored (nats-server R1)`);
console.log(
  `  fold           ${heapPerOutcome.toFixed(0)} B heap per outcome; held ${heldDays} d (5/4 of the default LEDGER_OUTCOME_TTL_MS, ${ttlDays} d): ${perMillionPerDay(heapPerOutcome, heldDays)} GiB per 1M transfers/day`,
);
console.log(
  `  snapshot       ${snapshotPerOutcome.toFixed(0)} B per outcome: ${perMillionPerDay(snapshotPerOutcome, heldDays)} GiB per snapshot at 1M transfers/day`,
);
console.log(
  `  compaction     ${dropped} of ${OUTCOMES} outcomes dropped in ${compactMs.toFixed(0)} ms (${((compactMs / OUTCOMES) * 1e6).toFixed(0)} ns per outcome scanned); heap after: ${afterCompaction.toFixed(0)} B per outcome folded`,
);
console.log(
  `  LEDGER         ${ledgerBytesPerEvent.toFixed(0)} B per event on disk per replica: ${perMillionPerDay(ledgerBytesPerEvent, 1)} GiB per replica per day at 1M transfers/day (kept for ever)`,
);
