// The finding book against a real nats-server: instances that find the same discrepancy at
// the same moment store one `opened`; a finding closed for good does not open again.
import { FindingKinds, StreamNames } from "@jetmesh/contracts";
import { createLogger } from "@jetmesh/stage";
import { provisionStreams } from "@jetmesh/stage/internal";
import { type NatsServerHandle, startNats, stopAllProcesses } from "@jetmesh/testkit";
import { type JetStreamClient, type JetStreamManager, jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Discrepancy, FindingBook } from "./book.ts";

describe("finding book", () => {
  let nats: NatsServerHandle;
  let nc: NatsConnection;
  let js: JetStreamClient;
  let jsm: JetStreamManager;
  const logger = createLogger({ service: "book-test", level: "silent" });
  beforeAll(async () => {
    nats = await startNats();
    nc = await connect({ servers: nats.url });
    js = jetstream(nc);
    jsm = await jetstreamManager(nc);
    await provisionStreams(jsm, { replicas: 1, logger });
  });
  afterAll(async () => {
    await nc?.close();
    await stopAllProcesses();
  });

  const book = (instance: string) => new FindingBook({ js, jsm, logger, instance });
  const subjectCount = async () => (await jsm.streams.info(StreamNames.Reconcile)).state.messages;

  it("reconciler - five instances reporting one discrepancy at once store it once, and close it once", async () => {
    const d: Discrepancy = {
      kind: FindingKinds.ProjectionMismatch,
      key: "acc-race/EUR",
      account: "acc-race",
      summary: "differs",
      evidence: { served: "1", fold: "2" },
      command: "pnpm jetmesh rebuild --check",
    };
    const books = ["a", "b", "c", "d", "e"].map(book);
    const wrote = await Promise.all(books.map((b) => b.report(d)));
    expect(wrote.filter(Boolean)).toHaveLength(1);
    expect(await subjectCount()).toBe(1);
    // every book learned it is open, from its own write or from the refused one
    for (const b of books) expect(b.isOpen(d.kind, d.key)).toBe(true);
    const closed = await Promise.all(books.map((b) => b.resolve(d.kind, d.key, "equal again", {})));
    expect(closed.filter(Boolean)).toHaveLength(1);
    expect(await subjectCount()).toBe(2);
    for (const b of books) expect(b.isOpen(d.kind, d.key)).toBe(false);
    // a projection can drift again: it reopens, once
    expect((await Promise.all(books.map((b) => b.report(d)))).filter(Boolean)).toHaveLength(1);
    expect(await subjectCount()).toBe(3);
  });

  it("reconciler - a stuck transfer's finding, once closed, does not open again", async () => {
    const before = await subjectCount();
    const d: Discrepancy = {
      kind: FindingKinds.StuckTransfer,
      key: "t-once@score",
      transferId: "t-once",
      summary: "stuck",
      evidence: {},
      command: "pnpm jetmesh trace t-once",
    };
    const a = book("a");
    const b = book("b");
    expect(await a.report(d)).toBe(true);
    // b finds it too: its write is refused, and it learns the finding is open
    expect(await b.report(d)).toBe(false);
    expect(await b.resolve(d.kind, d.key, "left", {})).toBe(true);
    expect(await a.report(d)).toBe(false);
    expect(await book("c").report(d)).toBe(false);
    expect((await subjectCount()) - before).toBe(2);
  });
});
