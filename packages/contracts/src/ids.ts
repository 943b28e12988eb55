import { createHash, randomBytes, randomUUID } from "node:crypto";

/**
 * A UUID-shaped id derived from its parts (SHA-256, version nibble 8 = custom,
 * RFC 9562). The same parts always give the same id, which is what makes a
 * retried publish carry the same `Nats-Msg-Id` and be dropped by the stream.
 */
export function deriveId(...parts: readonly string[]): string {
  return uuidShaped(createHash("sha256").update(parts.join("\u001f")).digest("hex"));
}

/** The first 32 hex digits of a digest shaped as a UUID (version 8 = custom, RFC 9562). */
export function uuidShaped(hex: string): string {
  const h = hex;
  const variant = ((Number.parseInt(h.slice(16, 17), 16) & 0x3) | 0x8).toString(16);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-8${h.slice(13, 16)}-${variant}${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

/**
 * The id of the `index`-th output of type `type` a stage emits for one input event. Stable
 * across retries and crashes: this is the output's eventId and its Nats-Msg-Id. The type is
 * part of it, so two different decisions on one input (declined, then posted) never share an
 * id, and a stream's duplicate window can never drop the second one silently.
 */
export function outputEventId(stage: string, inputEventId: string, type: string, index = 0): string {
  return deriveId("out", stage, inputEventId, type, String(index));
}

/** A fresh random id, for things that have no cause to derive from. */
export function newId(): string {
  return randomUUID();
}

const UUID_V7 = /^([0-9a-f]{8})-([0-9a-f]{4})-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/i;

/**
 * A UUIDv7 (RFC 9562): 48 bits of Unix time in milliseconds, then random bits. Clients use
 * it as their Idempotency-Key: the key carries its own creation time, so the gateway can
 * refuse a key older than the idempotency horizon without having to remember it.
 */
export function newTimedId(
  nowMs: number = Date.now(),
  /** The 10 bytes after the time (a simulation passes its seeded source). */
  random: (size: number) => Uint8Array = randomBytes,
): string {
  const b = Buffer.alloc(16);
  b.set(random(10), 6);
  b.writeUIntBE(nowMs, 0, 6);
  b[6] = (b[6]! & 0x0f) | 0x70;
  b[8] = (b[8]! & 0x3f) | 0x80;
  const h = b.toString("hex");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}

/** The creation time (ms since the epoch) of a UUIDv7, or undefined when `id` is not one. */
export function timeOfTimedId(id: string): number | undefined {
  const m = UUID_V7.exec(id);
  return m ? Number.parseInt(`${m[1]}${m[2]}`, 16) : undefined;
}
