import { Packr } from "msgpackr";
import { describe, expect, it } from "vitest";
import {
  ContractError,
  CURRENT_VERSION,
  decodeEvent,
  type Envelope,
  EventTypes,
  encodeEvent,
  makeEnvelope,
  READ_VERSION,
  TransferRequestLimits,
} from "./index.ts";

const pack = (v: unknown) => new Packr({ useRecords: false }).pack(v);
const lineage = { eventId: "e-1", correlationId: "t-1", causationId: "req-1", producer: "test" };
const v1Data = {
  transferId: "t-1",
  from: "acc-1",
  to: "acc-2",
  amountMinor: 1250,
  currency: "EUR",
  requestedAt: "2026-11-29T10:00:00.000Z",
};
const v2Data = { ...v1Data, reference: "invoice 42", metadata: { order: "o-9", channel: "web" } };
const at = (version: number, data: unknown) => ({
  ...makeEnvelope(EventTypes.TransferRequested, v1Data, lineage),
  version,
  data,
});
const issuesOf = (f: () => unknown): string[] => {
  try {
    f();
  } catch (err) {
    if (err instanceof ContractError) return err.issues.map((i) => `${i.field} ${i.rule}`);
    throw err;
  }
  return [];
};

describe("contracts versions", () => {
  it("contracts - producers write the declared version, readers see the highest registered one", () => {
    expect(READ_VERSION[EventTypes.TransferRequested]).toBe(2);
    expect(makeEnvelope(EventTypes.TransferRequested, v1Data, lineage).version).toBe(
      CURRENT_VERSION[EventTypes.TransferRequested],
    );
    for (const t of Object.values(EventTypes))
      expect(CURRENT_VERSION[t]).toBeLessThanOrEqual(READ_VERSION[t]);
  });

  it("contracts - a v1 event is lifted to v2 on read, unchanged otherwise", () => {
    const env = decodeEvent(encodeEvent(at(1, v1Data) as Envelope));
    expect(env.version).toBe(2);
    expect(env.data).toEqual(v1Data);
  });

  it("contracts - a v2 event with a reference and metadata round-trips", () => {
    const env = at(2, v2Data) as Envelope;
    expect(decodeEvent(encodeEvent(env))).toEqual(env);
  });

  it("contracts - a writer of v1 cannot send v2's fields: write schemas stay closed", () => {
    expect(issuesOf(() => encodeEvent(at(1, v2Data) as Envelope))).toContainEqual(
      expect.stringMatching(/^\/data\/reference /),
    );
  });

  it("contracts - a known version stays strict on read: an unknown field is a producer bug", () => {
    expect(issuesOf(() => decodeEvent(pack(at(2, { ...v2Data, extra: 1 }))))).toContainEqual(
      expect.stringMatching(/^\/data\/extra /),
    );
  });

  it("contracts - a newer version this reader does not know is read as the newest it knows, unknown fields dropped", () => {
    const env = decodeEvent(pack(at(3, { ...v2Data, priority: "high", metadata: { a: "b" } })));
    expect(env.version).toBe(2);
    expect(env.data).toEqual({ ...v2Data, metadata: { a: "b" } });
    // what it knows, it still checks
    expect(issuesOf(() => decodeEvent(pack(at(3, { ...v2Data, amountMinor: "1" }))))).toContainEqual(
      expect.stringMatching(/^\/data\/amountMinor /),
    );
    expect(issuesOf(() => decodeEvent(pack(at(3, { ...v1Data, from: undefined }))))).toContainEqual(
      expect.stringMatching(/^\/data\/from /),
    );
  });

  it("contracts - reference and metadata are bounded: each limit names its field", () => {
    const over = TransferRequestLimits;
    const many = Object.fromEntries(
      Array.from({ length: over.metadataMaxEntries + 1 }, (_, i) => [`k${i}`, "v"]),
    );
    const cases: [unknown, string][] = [
      [{ ...v2Data, reference: "r".repeat(over.referenceMaxLength + 1) }, "/data/reference"],
      [{ ...v2Data, reference: "" }, "/data/reference"],
      [{ ...v2Data, metadata: many }, "/data/metadata"],
      [{ ...v2Data, metadata: { "bad key": "v" } }, "/data/metadata"],
      [{ ...v2Data, metadata: { k: "v".repeat(over.metadataValueMaxLength + 1) } }, "/data/metadata/k"],
      [{ ...v2Data, metadata: { k: 1 } }, "/data/metadata/k"],
    ];
    for (const [data, field] of cases) {
      const found = issuesOf(() => decodeEvent(pack(at(2, data))));
      expect(
        found.some((i) => i.startsWith(field)),
        `${field}: ${found.join("; ")}`,
      ).toBe(true);
    }
  });

  it("contracts - a stream replayed from its start reads every version as the current shape", () => {
    const log = [at(1, v1Data), at(2, v2Data), at(1, { ...v1Data, transferId: "t-2" })].map((e) =>
      encodeEvent(e as Envelope),
    );
    const read = log.map(decodeEvent);
    expect(read.map((e) => e.version)).toEqual([2, 2, 2]);
    expect(read.map((e) => (e.data as { reference?: string }).reference)).toEqual([
      undefined,
      "invoice 42",
      undefined,
    ]);
  });
});
