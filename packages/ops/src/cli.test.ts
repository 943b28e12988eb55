// The `jetmesh` CLI as an operator runs it: a child process against a real nats-server holding
// the pipeline's streams, real contract events of two transfers and one parked message.
import {
  type AnyEnvelope,
  encodeEvent,
  encodeFinding,
  EventTypes,
  eventHeaders,
  type Finding,
  findingHeaders,
  findingIdOf,
  findingSubject,
  FindingKinds,
  Headers,
  makeEnvelope,
  namesFor,
  StreamNames,
  subjectFor,
} from "@jetmesh/contracts";
import { createLogger } from "@jetmesh/stage";
import { provisionStreams } from "@jetmesh/stage/internal";
import { type NatsServerHandle, startNats, stopAllProcesses } from "@jetmesh/testkit";
import {
  AckPolicy,
  type JetStreamClient,
  type JetStreamManager,
  jetstream,
  jetstreamManager,
} from "@nats-io/jetstream";
import { connect, headers as natsHeaders, type NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { jetmesh } from "./testing.ts";

const TRANSFER = "tr-ops-1";
const OTHER = "tr-ops-2";
const TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736";

const data = (transferId: string) => ({
  transferId,
  from: "acc-alice",
  to: "acc-bob",
  amountMinor: 1250,
  currency: "EUR",
});

/** The five hops of a paid transfer, each caused by the one before, as the stages write them. */
function lineage(transferId: string, startMs: number): AnyEnvelope[] {
  const at = (i: number) => new Date(startMs + i * 1000).toISOString();
  const lin = (i: number, producer: string, cause: string) => ({
    eventId: `${transferId}-e${i}`,
    correlationId: transferId,
    causationId: cause,
    producer,
    occurredAt: at(i),
    actor: "acme",
  });
  const d = data(transferId);
  return [
    makeEnvelope(
      EventTypes.TransferRequested,
      { ...d, requestedAt: at(0) },
      lin(0, "gateway", `idempotency-key:${transferId}`),
    ),
    makeEnvelope(EventTypes.TransferValidated, d, lin(1, "validator", `${transferId}-e0`)),
    makeEnvelope(
      EventTypes.TransferScored,
      { ...d, score: 12, decision: "allow", factors: [] },
      lin(2, "risk", `${transferId}-e1`),
    ),
    makeEnvelope(EventTypes.LedgerPosted, { ...d, decision: "allow" }, lin(3, "ledger", `${transferId}-e2`)),
    makeEnvelope(
      EventTypes.PayoutCompleted,
      { ...d, bankReference: "bank-ref-1" },
      lin(4, "payout", `${transferId}-e3`),
    ),
  ] as AnyEnvelope[];
}

async function publishEvent(js: JetStreamClient, env: AnyEnvelope, traceId: string) {
  const h = natsHeaders();
  for (const [k, v] of Object.entries(eventHeaders(env))) h.set(k, v);
  h.set(Headers.TraceParent, `00-${traceId}-00f067aa0ba902b7-01`);
  return js.publish(subjectFor(env.type, env.data.from), encodeEvent(env), {
    msgID: env.eventId,
    headers: h,
  });
}

describe("jetmesh CLI against a real nats-server", () => {
  let nats: NatsServerHandle;
  let nc: NatsConnection;
  let js: JetStreamClient;
  let jsm: JetStreamManager;
  let posted: AnyEnvelope;
  let postedSeq: number;

  beforeAll(async () => {
    nats = await startNats();
    nc = await connect({ servers: nats.url });
    jsm = await jetstreamManager(nc);
    js = jetstream(nc);
    await provisionStreams(jsm, {
      replicas: 1,
      logger: createLogger({ service: "ops-test", level: "warn" }),
    });
    const start = Date.now();
    const mine = lineage(TRANSFER, start);
    const other = lineage(OTHER, start);
    // Interleaved with another transfer, so that trace must pick its own events out.
    for (const [i, env] of mine.entries()) {
      const ack = await publishEvent(js, env, TRACE_ID);
      if (env.type === EventTypes.LedgerPosted) postedSeq = ack.seq;
      const o = other[i];
      if (o) await publishEvent(js, o, "0af7651916cd43dd8448eb211c80319c");
    }
    posted = mine[3] as AnyEnvelope;
    // The payout stage parked the ledger.posted event once, as dead-letter.ts does.
    const h = natsHeaders();
    for (const [k, v] of Object.entries(eventHeaders(posted))) if (k !== Headers.MsgId) h.set(k, v);
    h.set(Headers.TraceParent, `00-${TRACE_ID}-00f067aa0ba902b7-01`);
    h.set(Headers.DlqReason, "bank said 422: account closed");
    h.set(Headers.DlqErrorClass, "PermanentError");
    h.set(Headers.DlqStage, "payout");
    h.set(Headers.DlqStream, StreamNames.Ledger);
    h.set(Headers.DlqSubject, subjectFor(posted.type, posted.data.from));
    h.set(Headers.DlqSequence, String(postedSeq));
    h.set(Headers.DlqDeliveries, "1");
    await js.publish("dlq.payout", encodeEvent(posted), {
      msgID: `dlq:payout:LEDGER:${postedSeq}`,
      headers: h,
    });
    // A durable with one delivered, unacked message: status must show it pending.
    await jsm.consumers.add(StreamNames.Ledger, { durable_name: "ops-test", ack_policy: AckPolicy.Explicit });
    const c = await js.consumers.get(StreamNames.Ledger, "ops-test");
    const m = await c.next({ expires: 5_000 });
    expect(m?.seq, "one message delivered to the durable").toBe(postedSeq);
  });

  afterAll(async () => {
    await nc?.close().catch(() => {});
    await stopAllProcesses();
    await nats?.stop();
  });

  it("ops - decode prints a piped body as the contract event", async () => {
    const r = await jetmesh(["decode"], { input: encodeEvent(posted) });
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual(posted);
  });

  it("ops - decode says when a body is MessagePack but not a contract event", async () => {
    const { Packr } = await import("msgpackr");
    const body = new Packr({ useRecords: false }).pack({ hello: "world" });
    const r = await jetmesh(["decode"], { input: body });
    expect(r.code).toBe(0);
    const [first, ...rest] = r.stdout.split("\n");
    expect(first).toMatch(/^\/\/ not a valid contract event: invalid envelope/);
    expect(JSON.parse(rest.join("\n"))).toEqual({ hello: "world" });
  });

  it("ops - view prints a stream decoded with headers, filtered and bounded", async () => {
    const all = await jetmesh(["view", "LEDGER", "--server", nats.url, "--json"]);
    expect(all.stderr).toBe("");
    expect(all.code).toBe(0);
    const lines = all.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(lines.map((l) => l.seq)).toEqual([1, 2]);
    const mine = lines.find((l) => l.event.correlationId === TRANSFER);
    expect(mine.event).toEqual(posted);
    expect(mine.headers[Headers.EventType]).toEqual(["ledger.posted"]);
    expect(mine.subject).toBe(subjectFor(posted.type, posted.data.from));

    const last = await jetmesh(["view", "INGRESS", "--server", nats.url, "--json", "--last", "1"]);
    expect(
      last.stdout
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l).event.correlationId),
    ).toEqual([OTHER]);
    const fromSeq = await jetmesh(["view", "RISK", "--server", nats.url, "--json", "--seq", "2"]);
    expect(
      fromSeq.stdout
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l).seq),
    ).toEqual([2]);
    // A filter that matches: an ordered consumer with one filter subject, which nats-server 2.9 (the
    // testkit's /usr/sbin/nats-server) takes; `filter_subjects` failed there.
    const bySubject = await jetmesh([
      "view",
      "INGRESS",
      "--server",
      nats.url,
      "--json",
      "--subject",
      "transfers.requested.>",
    ]);
    expect([bySubject.code, bySubject.stderr]).toEqual([0, ""]);
    expect(
      bySubject.stdout
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l).event.correlationId),
    ).toEqual([TRANSFER, OTHER]);
    const otherSubject = subjectFor(EventTypes.TransferValidated, "acc-alice");
    const lastOne = await jetmesh([
      "view",
      "VALIDATION",
      "--server",
      nats.url,
      "--json",
      "--subject",
      otherSubject,
      "--last",
      "1",
    ]);
    expect(lastOne.code).toBe(0);
    expect(
      lastOne.stdout
        .trim()
        .split("\n")
        .map((l) => [JSON.parse(l).subject, JSON.parse(l).event.correlationId]),
    ).toEqual([[otherSubject, OTHER]]);
    const none = await jetmesh(["view", "RISK", "--server", nats.url, "--json", "--subject", "nothing.here"]);
    expect([none.code, none.stdout]).toEqual([0, ""]);
    const since = await jetmesh([
      "view",
      "RISK",
      "--server",
      nats.url,
      "--json",
      "--since",
      "2000-01-01T00:00:00Z",
    ]);
    expect(since.stdout.trim().split("\n")).toHaveLength(2);

    const block = await jetmesh(["view", "DLQ", "--server", nats.url]);
    expect(block.code).toBe(0);
    expect(block.stdout).toContain("[DLQ #1] dlq.payout");
    expect(block.stdout).toContain(`${Headers.DlqReason}: bank said 422: account closed`);
    expect(block.stdout).toContain(`"transferId": "${TRANSFER}"`);
  });

  it("ops - status JSON matches the server's numbers", async () => {
    const r = await jetmesh(["status", "--server", nats.url, "--json"]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const status = JSON.parse(r.stdout) as {
      streams: Array<Record<string, number | string | null>>;
      consumers: Array<Record<string, number | string | null>>;
    };
    for (const name of Object.values(StreamNames)) {
      const si = await jsm.streams.info(name);
      expect(status.streams.find((s) => s.name === name)).toEqual({
        name,
        messages: si.state.messages,
        bytes: si.state.bytes,
        maxBytes: si.config.max_bytes,
        maxMsgs: si.config.max_msgs,
        // LEDGER has no size limit: no share of one
        bytesPct:
          name === StreamNames.Ledger
            ? null
            : Math.round((si.state.bytes / si.config.max_bytes) * 10_000) / 100,
        msgsPct: null,
        firstSeq: si.state.first_seq,
        lastSeq: si.state.last_seq,
      });
    }
    expect((await jsm.streams.info(StreamNames.Ledger)).config.max_bytes).toBe(-1);
    const ci = await jsm.consumers.info(StreamNames.Ledger, "ops-test");
    const c = status.consumers.find((x) => x.name === "ops-test");
    expect(c).toMatchObject({
      stream: "LEDGER",
      pending: ci.num_pending,
      ackPending: 1,
      redelivered: ci.num_redelivered,
    });
    expect(c?.oldestUnackedMs).toBeGreaterThanOrEqual(0);
    expect(c?.oldestUnackedMs).toBeLessThan(120_000);

    const table = await jetmesh(["status", "--server", nats.url]);
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(/^STREAM\s+MESSAGES\s+BYTES/);
    expect(table.stdout).toMatch(/LEDGER\s+ops-test\s+1\s+1\s+0\s+\S+/);
  });

  it("ops - trace shows a transfer's hops in time order and its DLQ entry", async () => {
    const r = await jetmesh(["trace", TRANSFER, "--server", nats.url, "--json"]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const t = JSON.parse(r.stdout);
    expect(t.hops.map((h: { type: string; stream: string }) => `${h.stream} ${h.type}`)).toEqual([
      "INGRESS transfers.requested",
      "VALIDATION transfers.validated",
      "RISK transfers.scored",
      "LEDGER ledger.posted",
      "PAYOUTS payouts.completed",
    ]);
    expect(t.hops.every((h: { traceId: string }) => h.traceId === TRACE_ID)).toBe(true);
    expect(t.hops[0].delayMs).toBeNull();
    expect(t.hops.slice(1).every((h: { delayMs: number }) => h.delayMs >= 0)).toBe(true);
    expect(t.deadLetters).toEqual([
      expect.objectContaining({
        type: "ledger.posted",
        reason: "bank said 422: account closed",
        originStream: "LEDGER",
        originSeq: postedSeq,
      }),
    ]);

    const text = await jetmesh(["trace", TRANSFER, "--server", nats.url]);
    expect(text.code).toBe(0);
    expect(text.stdout).toContain(`transfer ${TRANSFER}: 5 events, 1 dead letters`);
    expect(text.stdout).toContain("bank said 422: account closed");
    expect(text.stdout).not.toContain(OTHER);
  });

  it("ops - findings lists the reconciler's findings in their current state, filtered by state and kind", async () => {
    // Planted as the reconciler writes them (encodeFinding, findingHeaders): a stuck transfer
    // opened then closed, a projection mismatch still open.
    const at = (min: number) => new Date(Date.now() - min * 60_000).toISOString();
    const finding = (kind: Finding["kind"], key: string, state: Finding["state"], extra: Partial<Finding>) =>
      ({
        findingId: findingIdOf(kind, key),
        kind,
        state,
        key,
        summary: `${kind} ${key}`,
        evidence: { planted: true },
        command: "pnpm jetmesh trace tr-ops-1",
        openedAt: at(30),
        at: at(state === "opened" ? 30 : 5),
        instance: "test",
        ...extra,
      }) as Finding;
    const publishFinding = async (f: Finding, after: number) => {
      const h = natsHeaders();
      for (const [k, v] of Object.entries(findingHeaders(f, after))) h.set(k, v);
      return js.publish(findingSubject(f.kind, f.findingId), encodeFinding(f), { headers: h });
    };
    const stuck = finding(FindingKinds.StuckTransfer, TRANSFER, "opened", { transferId: TRANSFER });
    const first = await publishFinding(stuck, 0);
    await publishFinding({ ...stuck, state: "closed", at: at(5) }, first.seq);
    const mismatch = finding(FindingKinds.ProjectionMismatch, "acc-alice:EUR", "opened", {
      account: "acc-alice",
      command: "pnpm jetmesh rebuild --check",
    });
    await publishFinding(mismatch, 0);

    const all = await jetmesh(["findings", "--server", nats.url, "--json"]);
    expect([all.code, all.stderr]).toEqual([0, ""]);
    const l = JSON.parse(all.stdout);
    expect(l.findings.map((f: Finding & { events: number }) => [f.kind, f.state, f.events])).toEqual([
      ["stuck_transfer", "closed", 2],
      ["projection_mismatch", "opened", 1],
    ]);
    const open = await jetmesh(["findings", "--server", nats.url, "--open"]);
    expect(open.code).toBe(0);
    expect(open.stdout).toContain("projection_mismatch  opened  30m");
    expect(open.stdout).toContain("pnpm jetmesh rebuild --check");
    expect(open.stdout).not.toContain("stuck_transfer");
    expect(open.stdout.trim().split("\n").at(-1)).toBe("1 finding(s): projection_mismatch 1");
    const byKind = await jetmesh(["findings", "--server", nats.url, "--json", "--kind", "stuck_transfer"]);
    expect(JSON.parse(byKind.stdout).findings.map((f: Finding) => f.key)).toEqual([TRANSFER]);
    const none = await jetmesh(["findings", "--server", nats.url, "--open", "--kind", "dlq_aged"]);
    expect([none.code, none.stdout]).toEqual([0, "no findings\n"]);
    const bad = await jetmesh(["findings", "--server", nats.url, "--kind", "nonsense"]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(
      /^error: option '--kind <kind>' argument 'nonsense' is invalid\. Allowed choices are /,
    );
  });

  it("ops - failures are one line on stderr with exit 1 or 2, never a stack", async () => {
    const cases: Array<{ args: string[]; code: number; line: RegExp }> = [
      { args: ["view", "NOPE", "--server", nats.url], code: 1, line: /^jetmesh: no stream named NOPE$/ },
      {
        args: ["trace", "tr-unknown", "--server", nats.url],
        code: 1,
        line: /^jetmesh: no events of transfer tr-unknown/,
      },
      {
        args: ["status", "--server", "nats://127.0.0.1:1"],
        code: 1,
        line: /^jetmesh: cannot connect to nats at nats:\/\/127\.0\.0\.1:1/,
      },
      { args: ["view", "LEDGER", "--seq", "0"], code: 2, line: /^error: .*--seq must be a positive integer/ },
      {
        args: ["view", "LEDGER", "--seq", "1", "--since", "2026-01-01T00:00:00Z"],
        code: 2,
        line: /^error: .*cannot be used with/,
      },
      { args: ["status", "--bogus"], code: 2, line: /^error: unknown option '--bogus'/ },
      { args: ["nonsense"], code: 2, line: /^error: unknown command 'nonsense'/ },
    ];
    for (const c of cases) {
      const r = await jetmesh(c.args);
      const lines = r.stderr.trimEnd().split("\n");
      expect(lines, `${c.args.join(" ")}: ${r.stderr}`).toHaveLength(1);
      expect(lines[0], c.args.join(" ")).toMatch(c.line);
      expect(r.stderr).not.toMatch(/\n\s+at /);
      expect(r.code, c.args.join(" ")).toBe(c.code);
      expect(r.stdout).toBe("");
    }
    const garbage = await jetmesh(["decode"], { input: new Uint8Array([0x92, 0x01]) });
    expect([garbage.code, garbage.stderr]).toEqual([1, "jetmesh: body is not messagepack (2 bytes)\n"]);
    const help = await jetmesh(["trace", "--help"]);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain("Usage: jetmesh trace [options] <transferId>");
  });

  // Last: it adds namespace alice's streams to the server the tests above read.
  it("ops - --namespace (or JETMESH_NAMESPACE) reads that namespace's streams, and only them", async () => {
    const alice = namesFor("alice");
    await provisionStreams(jsm, {
      replicas: 1,
      logger: createLogger({ service: "ops-test", level: "warn" }),
      namespace: "alice",
    });
    const ALICE = "tr-ops-alice";
    for (const env of lineage(ALICE, Date.now())) {
      const h = natsHeaders();
      for (const [k, v] of Object.entries(eventHeaders(env))) h.set(k, v);
      await js.publish(alice.subject(subjectFor(env.type, env.data.from)), encodeEvent(env), {
        msgID: env.eventId,
        headers: h,
      });
    }
    const hops = (r: { stdout: string }) =>
      (JSON.parse(r.stdout) as { hops: { stream: string }[] }).hops.map((h) => h.stream);
    const flag = await jetmesh(["trace", ALICE, "--server", nats.url, "--json", "--namespace", "alice"]);
    expect(flag.stderr).toBe("");
    expect(hops(flag)).toEqual([
      "alice_INGRESS",
      "alice_VALIDATION",
      "alice_RISK",
      "alice_LEDGER",
      "alice_PAYOUTS",
    ]);
    const env = await jetmesh(["trace", ALICE, "--server", nats.url, "--json"], {
      env: { JETMESH_NAMESPACE: "alice" },
    });
    expect(hops(env)).toEqual(hops(flag));
    // Neither sees the other's transfers.
    expect((await jetmesh(["trace", ALICE, "--server", nats.url])).code).toBe(1);
    expect((await jetmesh(["trace", TRANSFER, "--server", nats.url, "--namespace", "alice"])).code).toBe(1);
    const view = await jetmesh(["view", "LEDGER", "--server", nats.url, "--json", "--namespace", "alice"]);
    expect(
      view.stdout
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l).event.correlationId),
    ).toEqual([ALICE]);
    const status = JSON.parse(
      (await jetmesh(["status", "--server", nats.url, "--json", "--namespace", "alice"])).stdout,
    ) as { streams: { name: string }[] };
    const names = status.streams.map((x) => x.name);
    expect(names).toContain("alice_LEDGER");
    expect(names).toContain("KV_alice_jetmesh-positions");
    expect(names.filter((n) => !n.startsWith("alice_") && !n.startsWith("KV_alice_"))).toEqual([]);
    const prod = JSON.parse(
      (await jetmesh(["status", "--server", nats.url, "--json"])).stdout,
    ) as typeof status;
    expect(prod.streams.map((x) => x.name).filter((n) => n.includes("alice"))).toEqual([]);
    // A namespace that cannot be one is bad usage.
    const bad = await jetmesh(["status", "--server", nats.url, "--namespace", "Alice"]);
    expect([bad.code, bad.stderr.split("\n")[0]]).toEqual([
      2,
      expect.stringMatching(/^jetmesh: namespace "Alice"/),
    ]);
  }, 240_000);
});
