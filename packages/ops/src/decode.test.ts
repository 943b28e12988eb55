// The CLI reads stored events as the stages do: with their headers, so an event whose client id
// travels only in the Jetmesh-Client-Id header (the dual-publish window) is shown with its actor.
import {
  type AnyEnvelope,
  encodeEvent,
  EventTypes,
  Headers,
  makeEnvelope,
  StreamNames,
} from "@jetmesh/contracts";
import { describe, expect, it } from "vitest";
import { decodeBody } from "./decode.ts";
import { entryOf } from "./dlq.ts";
import type { StoredMessage } from "./read-stream.ts";
import { jetmesh } from "./testing.ts";
import { viewOf } from "./view.ts";

/** A transfers.validated event written without `actor` in its envelope. */
const headerOnly = makeEnvelope(
  EventTypes.TransferValidated,
  { transferId: "tr-hdr-1", from: "acc-alice", to: "acc-bob", amountMinor: 700, currency: "EUR" },
  { eventId: "tr-hdr-1-e1", correlationId: "tr-hdr-1", causationId: "tr-hdr-1-e0", producer: "validator" },
) as AnyEnvelope;
const body = encodeEvent(headerOnly);

const stored = (headers: Record<string, string[]>): StoredMessage => ({
  stream: StreamNames.Dlq,
  seq: 7,
  subject: "dlq.risk",
  timestampMs: Date.parse("2026-11-30T07:00:00Z"),
  headers,
  data: body,
});

describe("ops decoding with headers", () => {
  it("ops - view and dlq show take the actor from the Jetmesh-Client-Id header when the envelope lacks it", () => {
    expect(headerOnly.actor).toBeUndefined();
    const viewed = viewOf(stored({ [Headers.ClientId]: ["acme"], [Headers.DlqStage]: ["risk"] }));
    expect((viewed.event as AnyEnvelope).actor).toBe("acme");
    // Header names are case-insensitive on the wire.
    const lower = viewOf(stored({ [Headers.ClientId.toLowerCase()]: ["acme"] }));
    expect((lower.event as AnyEnvelope).actor).toBe("acme");
    // A header that is no client id is ignored, as the stages ignore it.
    const bad = viewOf(stored({ [Headers.ClientId]: ["not a client id!"] }));
    expect(bad.invalid).toBeUndefined();
    expect((bad.event as AnyEnvelope).actor).toBeUndefined();
    // The DLQ listing still reads the same body.
    expect(entryOf(stored({ [Headers.ClientId]: ["acme"] })).eventId).toBe("tr-hdr-1-e1");
  });

  it("ops - the envelope's actor wins over the header", () => {
    const withActor = encodeEvent({ ...headerOnly, actor: "globex" } as AnyEnvelope);
    const decoded = decodeBody(withActor, { get: () => "acme" });
    expect(decoded.valid && decoded.event.actor).toBe("globex");
  });

  it("ops - decode -H 'Jetmesh-Client-Id: acme' prints the event with its actor", async () => {
    const r = await jetmesh(["decode", "-H", `${Headers.ClientId}: acme`], { input: body });
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ eventId: "tr-hdr-1-e1", actor: "acme" });
    const without = await jetmesh(["decode"], { input: body });
    expect(JSON.parse(without.stdout).actor).toBeUndefined();
    const bad = await jetmesh(["decode", "-H", "no colon"], { input: body });
    expect(bad.code).toBe(2);
  });
});
