import { type Static, Type } from "@sinclair/typebox";
import type { EventDataMap, EventType } from "./schemas.ts";

/** The envelope schema every event is wrapped in; `data` is checked per type. */
export const EnvelopeSchema = Type.Object(
  {
    eventId: Type.String({ minLength: 1, maxLength: 128 }),
    type: Type.String({ minLength: 1 }),
    version: Type.Integer({ minimum: 1 }),
    occurredAt: Type.String({ minLength: 1 }),
    correlationId: Type.String({ minLength: 1, maxLength: 128 }),
    causationId: Type.String({ minLength: 1, maxLength: 256 }),
    producer: Type.String({ minLength: 1, maxLength: 64 }),
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
