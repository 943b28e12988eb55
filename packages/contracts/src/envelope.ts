import { type Static, Type } from "@sinclair/typebox";
import { Headers } from "./headers.ts";
import type { EventDataMap, EventType } from "./schemas.ts";

/** An API client id: what the gateway's clients file names and `actor` carries. */
export const ActorId = Type.String({ pattern: "^[a-z0-9][a-z0-9-]{0,62}$" });

const envelopeFields = {
  eventId: Type.String({ minLength: 1, maxLength: 128 }),
  type: Type.String({ minLength: 1 }),
  version: Type.Integer({ minimum: 1 }),
  /** RFC 3339 with a zone, as `Date.prototype.toISOString` writes it: a stage computes ages from it. */
  occurredAt: Type.String({
    pattern: "^\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}:\\d{2}(\\.\\d{1,9})?(Z|[+-]\\d{2}:\\d{2})$",
    maxLength: 40,
  }),
  correlationId: Type.String({ minLength: 1, maxLength: 128 }),
  causationId: Type.String({ minLength: 1, maxLength: 256 }),
  producer: Type.String({ minLength: 1, maxLength: 64 }),
  data: Type.Unknown(),
};

/** Envelope v1: lineage only; the API client travelled in the `Jetmesh-Client-Id` header alone. */
export const EnvelopeV1 = Type.Object(envelopeFields, { additionalProperties: false });

/**
 * The envelope schema every event is wrapped in (v2, the version the codec reads and writes);
 * `data` is checked per type.
 */
export const EnvelopeSchema = Type.Object(
  {
    ...envelopeFields,
    /**
     * v2: the authenticated API client whose request the event descends from, set by the
     * gateway from its credentials (never from a request body) and copied by every stage
     * onto its outputs. Optional: absent on events written before it existed; readers fall
     * back to the `Jetmesh-Client-Id` header (see README, "Evolving the envelope").
     */
    actor: Type.Optional(ActorId),
  },
  { additionalProperties: false },
);

/**
 * The envelope's own contract, evolved and gated like an event type's (`envelope@<N>` in the
 * gate's messages, `schemas/envelope/v<N>.json`): every version of the schema, the mode each new
 * one keeps against the one before, the version producers write, and which envelope fields
 * producers still mirror into a header during their dual-publish window.
 */
export const EnvelopeContract = {
  mode: "full",
  /** v2: producers write `actor` (the codec reads it from every stage built since). */
  writes: 2,
  owner: "platform",
  versions: { 1: EnvelopeV1, 2: EnvelopeSchema },
  /**
   * Envelope fields producers also write as a header, the dual-publish window of moving them
   * from headers into the envelope. `actor` → `Jetmesh-Client-Id`: announced deprecated as a
   * carrier in envelope v2; readers prefer the envelope and fall back to it
   * ({@link actorOf}). Removing the entry ends the window (README, "Deprecation").
   */
  headerMirrors: { actor: Headers.ClientId },
} as const;

const actorPattern = new RegExp(ActorId.pattern as string);

/**
 * The API client an event descends from, as readers take it during the window: the envelope's
 * `actor` first, else the `Jetmesh-Client-Id` header when it names a valid client id (a header
 * is not validated by the codec, so one that is not an id is ignored).
 * @param header the header's value ("" or undefined when absent, as NATS headers give it)
 */
export function actorOf(env: { readonly actor?: string | undefined }, header?: string): string | undefined {
  if (env.actor !== undefined) return env.actor;
  return header && actorPattern.test(header) ? header : undefined;
}

/**
 * One event: what happened (`type`, `version`, `data`), when, and its lineage.
 * `correlationId` is the transferId the event belongs to; `causationId` is the
 * eventId of the input that caused it (for a gateway event, the request it
 * answered). Header mirrors are produced by {@link eventHeaders}.
 */
export type Envelope<T extends EventType = EventType> = Omit<
  Static<typeof EnvelopeSchema>,
  "type" | "data"
> & {
  type: T;
  data: EventDataMap[T];
};

/** Any envelope, discriminated on `type`. */
export type AnyEnvelope = { [K in EventType]: Envelope<K> }[EventType];
