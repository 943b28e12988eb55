import fc from "fast-check";
import { Packr } from "msgpackr";
import { describe, expect, it } from "vitest";
import {
  AllEventTypes,
  actorOf,
  ContractError,
  decodeEvent,
  decodeMessage,
  EnvelopeContract,
  EnvelopeSchema,
  EnvelopeV1,
  decodeFinding,
  encodeFinding,
  type Finding,
  findingHeaders,
  findingIdOf,
  findingSubject,
  encodeEvent,
  eventHeaders,
  EventTypes,
  Headers,
  makeEnvelope,
  newId,
  newTimedId,
  outputEventId,
  timeOfTimedId,
  partitionOf,
  PipelineStreams,
  EVENT_MAX_AGE_MS,
  REPLAY_MAX_AGE_MS,
  replayDurable,
  replaySubject,
  Streams,
  streamOf,
  subjectFor,
  TeamStreams,
  toStreamConfig,
} from "./index.ts";

const lineage = { eventId: "e-1", correlationId: "t-1", causationId: "req-1", producer: "test" };
const transfer = { transferId: "t-1", from: "acc-1", to: "acc-2", amountMinor: 1250, currency: "EUR" };

describe("contracts", () => {
  it("contracts - an event survives encode and decode unchanged", () => {
    const env = makeEnvelope(EventTypes.TransferValidated, transfer, lineage);
    expect(decodeEvent(encodeEvent(env))).toEqual(env);
  });

  it("contracts - round trip holds for any valid transfer (property)", () => {
    fc.assert(
      fc.property(
        fc.record({
          transferId: fc.string({ minLength: 1, maxLength: 40 }),
          from: fc.string({ minLength: 1, maxLength: 40 }),
          to: fc.string({ minLength: 1, maxLength: 40 }),
          amountMinor: fc.maxSafeInteger(),
          currency: fc.string({ minLength: 3, maxLength: 3 }),
        }),
        (data) => {
          const env = makeEnvelope(EventTypes.TransferValidated, data, lineage);
          expect(decodeEvent(encodeEvent(env))).toEqual(env);
        },
      ),
    );
  });

  it("contracts - decode names every wrong field", () => {
    const env = makeEnvelope(EventTypes.TransferValidated, transfer, lineage);
    const bad = { ...env, data: { ...transfer, amountMinor: 1.5, currency: 7 } };
    // bypass encodeEvent's own validation to produce the bytes a buggy producer would send
    const bytes = new Packr({ useRecords: false }).pack(bad);
    try {
      decodeEvent(bytes);
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(ContractError);
      const fields = (err as ContractError).issues.map((i) => i.field);
      expect(fields).toContain("/data/amountMinor");
      expect(fields).toContain("/data/currency");
    }
  });

  it("contracts - garbage bytes and unknown types are contract errors", () => {
    expect(() => decodeEvent(new Uint8Array([0xc1, 0xff, 0x00]))).toThrow(ContractError);
    const env = { ...makeEnvelope(EventTypes.TransferValidated, transfer, lineage), type: "nope.nope" };
    expect(() => decodeEvent(new Packr({ useRecords: false }).pack(env))).toThrow(
      /no schema for nope.nope@1/,
    );
  });

  it("contracts - encode refuses an invalid event", () => {
    const env = makeEnvelope(
      EventTypes.TransferValidated,
      { ...transfer, amountMinor: "x" as never },
      lineage,
    );
    expect(() => encodeEvent(env)).toThrow(ContractError);
  });

  it("contracts - headers mirror the envelope for nats stream view", () => {
    const env = makeEnvelope(EventTypes.TransferValidated, transfer, lineage);
    const h = eventHeaders(env);
    expect(h[Headers.MsgId]).toBe("e-1");
    expect(h[Headers.CorrelationId]).toBe("t-1");
    expect(h[Headers.CausationId]).toBe("req-1");
    expect(h[Headers.EventType]).toBe("transfers.validated");
    expect(h[Headers.ContentType]).toBe("application/msgpack");
  });

  it("contracts - the actor is optional: events without it still decode, with it it round-trips and shows as a header", () => {
    const without = makeEnvelope(EventTypes.TransferValidated, transfer, lineage);
    expect("actor" in without).toBe(false);
    expect(decodeEvent(encodeEvent(without))).toEqual(without);
    expect(eventHeaders(without)[Headers.ClientId]).toBeUndefined();
    const withActor = makeEnvelope(EventTypes.TransferValidated, transfer, { ...lineage, actor: "acme-pay" });
    expect(decodeEvent(encodeEvent(withActor))).toEqual(withActor);
    expect(eventHeaders(withActor)[Headers.ClientId]).toBe("acme-pay");
    const forged = { ...withActor, actor: "not a client!*>" };
    expect(() => decodeEvent(new Packr({ useRecords: false }).pack(forged))).toThrow(ContractError);
  });

  it("contracts - the client identity moves into the envelope: producers write both, readers prefer the envelope and fall back to the header", () => {
    // The dual-publish window: envelope v2's actor is also written as Jetmesh-Client-Id.
    expect(EnvelopeContract.writes).toBe(2);
    expect(EnvelopeContract.headerMirrors).toEqual({ actor: Headers.ClientId });
    const withActor = makeEnvelope(EventTypes.TransferValidated, transfer, { ...lineage, actor: "acme-pay" });
    expect(withActor.actor).toBe("acme-pay");
    expect(eventHeaders(withActor)[Headers.ClientId]).toBe("acme-pay");
    const header = (value: string | undefined) => ({
      get: (n: string) => (n === Headers.ClientId ? value : ""),
    });
    // The envelope wins over a header that says otherwise.
    expect(decodeMessage(encodeEvent(withActor), header("someone-else")).actor).toBe("acme-pay");
    // An envelope v1 event (no actor): the header is the fallback, when it names a client id.
    const v1 = makeEnvelope(EventTypes.TransferValidated, transfer, lineage);
    expect(decodeMessage(encodeEvent(v1), header("acme-pay")).actor).toBe("acme-pay");
    expect(decodeMessage(encodeEvent(v1), header("not a client!*>")).actor).toBeUndefined();
    expect(decodeMessage(encodeEvent(v1), header("")).actor).toBeUndefined();
    expect(decodeMessage(encodeEvent(v1), undefined).actor).toBeUndefined();
    expect(actorOf({}, "acme-pay")).toBe("acme-pay");
    expect(actorOf({ actor: "a-1" }, "b-2")).toBe("a-1");
    // Envelope v1 is v2 without actor: every v1 envelope is a valid v2 one.
    expect(Object.keys(EnvelopeSchema.properties).filter((k) => !(k in EnvelopeV1.properties))).toEqual([
      "actor",
    ]);
  });

  it("contracts - PipelineStreams names every stream that stores an event type, in pipeline order, and not the DLQ", () => {
    // the reference pipeline's, then the teams' (team-streams.ts)
    expect(PipelineStreams).toEqual([
      "INGRESS",
      "VALIDATION",
      "RISK",
      "LEDGER",
      "PAYOUTS",
      ...Object.keys(TeamStreams),
    ]);
    for (const type of AllEventTypes) expect(PipelineStreams).toContain(streamOf(type).name);
  });

  it("contracts - REPLAY takes replay.<stage> outside every event stream, with an age limit, created by the deploy step only", () => {
    expect(replaySubject("payout")).toBe("replay.payout");
    expect(replayDurable("payout")).toBe("payout-replay");
    const cfg = toStreamConfig(Streams.REPLAY);
    expect(cfg).toMatchObject({ name: "REPLAY", subjects: ["replay.>"], retention: "limits" });
    expect(cfg.max_age).toBe(REPLAY_MAX_AGE_MS * 1_000_000);
    expect(REPLAY_MAX_AGE_MS).toBeGreaterThanOrEqual(3 * 24 * 3600_000);
    expect(Streams.REPLAY.createdAtRuntime).toBe(false);
    expect(Streams.REPLAY.eventTypes).toEqual([]);
    expect(PipelineStreams).not.toContain("REPLAY");
    // No event stream's subjects can take a replay: it never lands among the facts.
    for (const def of Object.values(Streams).filter((d) => d.name !== "REPLAY"))
      for (const subject of def.subjects) expect(subject.startsWith("replay.")).toBe(false);
  });

  it("contracts - retention plan: event streams drop messages by age only, LEDGER, DLQ, AUDIT and RECONCILE keep everything", () => {
    for (const def of Object.values(Streams)) {
      const cfg = toStreamConfig(def);
      // Never by size: a full stream refuses (discard new) rather than dropping a message a
      // consumer has not seen.
      expect(cfg.discard).toBe("new");
      expect(cfg.retention).toBe("limits");
      const events = def.eventTypes.length > 0 && def.name !== "LEDGER";
      const want = events ? EVENT_MAX_AGE_MS : def.name === "REPLAY" ? REPLAY_MAX_AGE_MS : 0;
      expect(cfg.max_age, def.name).toBe(want * 1_000_000);
      // The server refuses a duplicate window longer than the age limit.
      if (cfg.max_age > 0) expect(cfg.duplicate_window).toBeLessThanOrEqual(cfg.max_age);
    }
    // The default idempotency key TTL (7 days) outlives every event stream's age limit, and
    // INGRESS outlives the default client horizon (24 h).
    expect(EVENT_MAX_AGE_MS).toBeLessThan(7 * 24 * 3600_000);
    expect(EVENT_MAX_AGE_MS).toBeGreaterThanOrEqual(24 * 3600_000);
    expect(toStreamConfig(Streams.LEDGER)).toMatchObject({ deny_delete: true, deny_purge: true, max_age: 0 });
  });

  it("contracts - occurredAt must be an RFC 3339 timestamp: junk is a contract error naming the field", () => {
    const ok = makeEnvelope(EventTypes.TransferValidated, transfer, lineage);
    const pack = (v: unknown) => new Packr({ useRecords: false }).pack(v);
    expect(decodeEvent(pack({ ...ok, occurredAt: "2026-11-29T23:40:00+01:00" })).occurredAt).toBe(
      "2026-11-29T23:40:00+01:00",
    );
    for (const junk of [
      "yesterday",
      "",
      "2026-11-29",
      "1764459600000",
      `2026-11-29T23:40:00Z${"0".repeat(40)}`,
    ])
      expect(() => decodeEvent(pack({ ...ok, occurredAt: junk })), junk).toThrow(/occurredAt/);
  });
  it("contracts - subjects carry a stable partition of the source account", () => {
    expect(subjectFor(EventTypes.LedgerPosted, "acc-1")).toMatch(/^ledger\.posted\.\d\d$/);
    expect(partitionOf("acc-1")).toBe(partitionOf("acc-1"));
    const parts = new Set(Array.from({ length: 500 }, (_, i) => partitionOf(`acc-${i}`)));
    expect(parts.size).toBe(16);
  });

  it("contracts - output ids are stable per input and distinct per type and per index within a type", () => {
    const posted = outputEventId("ledger", "e-1", "ledger.posted", 0);
    expect(posted).toBe(outputEventId("ledger", "e-1", "ledger.posted", 0));
    expect(posted).not.toBe(outputEventId("ledger", "e-1", "ledger.posted", 1));
    // Two decisions of one input (declined, then posted after a rollback) never share an id.
    expect(posted).not.toBe(outputEventId("ledger", "e-1", "ledger.declined", 0));
    expect(posted).not.toBe(outputEventId("ledger", "e-2", "ledger.posted", 0));
    expect(posted).not.toBe(outputEventId("risk", "e-1", "ledger.posted", 0));
    expect(posted).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  });

  it("contracts - a timed id is a UUIDv7 whose creation time reads back; other ids have none", () => {
    const at = Date.parse("2026-11-29T12:00:00.123Z");
    const id = newTimedId(at);
    expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(timeOfTimedId(id)).toBe(at);
    expect(newTimedId(at)).not.toBe(id);
    expect(newTimedId(at + 1) > id).toBe(true);
    expect(timeOfTimedId(newId())).toBeUndefined();
    expect(timeOfTimedId("k-1")).toBeUndefined();
  });

  it("contracts - stream configs use file storage, discard new and an explicit duplicate window", () => {
    for (const def of Object.values(Streams)) {
      const cfg = toStreamConfig(def);
      expect(cfg.storage).toBe("file");
      expect(cfg.discard).toBe("new");
      expect(cfg.retention).toBe("limits");
      expect(cfg.duplicate_window).toBeGreaterThan(0);
    }
  });

  it("contracts - a finding survives encode and decode; one id and one subject per kind and key", () => {
    const f: Finding = {
      findingId: findingIdOf("stuck_transfer", "t-1@score"),
      kind: "stuck_transfer",
      state: "opened",
      key: "t-1@score",
      transferId: "t-1",
      summary: "transfer t-1 has waited 61 s for risk",
      evidence: { step: "score", lineage: [{ type: "transfers.validated", seq: 3 }] },
      command: "pnpm jetmesh trace t-1",
      openedAt: "2026-11-30T00:00:00.000Z",
      at: "2026-11-30T00:00:00.000Z",
      instance: "host-1",
    };
    expect(decodeFinding(encodeFinding(f))).toEqual(f);
    expect(findingIdOf("stuck_transfer", "t-1@score")).toBe(f.findingId);
    expect(findingIdOf("stuck_transfer", "t-1@decide")).not.toBe(f.findingId);
    expect(findingSubject(f.kind, f.findingId)).toBe(`reconcile.stuck_transfer.${f.findingId}`);
    expect(() => encodeFinding({ ...f, kind: "other" as never })).toThrow(ContractError);
    const h = findingHeaders(f, 0);
    expect(h[Headers.MsgId]).toBe(findingHeaders({ ...f, at: "2026-11-30T01:00:00.000Z" }, 0)[Headers.MsgId]);
    expect(h[Headers.MsgId]).not.toBe(findingHeaders(f, 7)[Headers.MsgId]);
    expect(h[Headers.CorrelationId]).toBe("t-1");
    expect(Streams.RECONCILE.subjects).toEqual(["reconcile.>"]);
    expect(PipelineStreams).not.toContain("RECONCILE");
  });
});
