import { createHash, randomUUID } from "node:crypto";

/**
 * A UUID-shaped id derived from its parts (SHA-256, version nibble 8 = custom,
 * RFC 9562). The same parts always give the same id, which is what makes a
 * retried publish carry the same `Nats-Msg-Id` and be dropped by the stream.
 */
export function deriveId(...parts: readonly string[]): string {
  const h = createHash("sha256").update(parts.join("\u001f")).digest("hex");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-8${h.slice(13, 16)}-${((Number.parseInt(h.slice(16, 17), 16) & 0x3) | 0x8).toString(16)}${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

/**
 * The id of the `index`-th output a stage emits for one input event. Stable across
 * retries and crashes: this is the output's eventId and its Nats-Msg-Id.
 */
export function outputEventId(stage: string, inputEventId: string, index: number): string {
  return deriveId("out", stage, inputEventId, String(index));
}

/** A fresh random id, for things that have no cause to derive from. */
export function newId(): string {
  return randomUUID();
}
