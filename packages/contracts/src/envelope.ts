import { type Static, Type } from "@sinclair/typebox";
import type { EventDataMap, EventType } from "./schemas.ts";

/** An API client id: what the gateway's clients file names and `actor` carries. */
export const ActorId = Type.String({ pattern: "^[a-z0-9][a-z0-9-]{0,62}$" });

/** The envelope schema every event is wrapped in; `data` is checked per type. */
export const EnvelopeSchema = Type.Object(
  {
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
    /**
     * The authenticated API client whose request the event descends from, set by the
     * gateway from its credentials (never from a request body) and copied by every stage
     * onto its outputs. Optional, added without a version bump: absent on events written
     * before it existed, and every reader accepts it (see README, "Evolving the envelope").
     */
    actor: Type.Optional(ActorId),
    data: Type.Unknown(),
  },
  { additionalProperties: false },
);

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
