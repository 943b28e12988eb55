import type { TSchema } from "@sinclair/typebox";

/** A stream a team's stage writes, beyond the reference pipeline's, with its events' schemas. */
export interface TeamStream {
  /** The stage that writes it (its manifest's name). */
  readonly owner: string;
  readonly description: string;
  /** Event type (`<domain>.<event>`, also the first two subject tokens) → its v1 schema. */
  readonly events: Readonly<Record<string, TSchema>>;
}

/**
 * Streams of stages beyond the reference pipeline: one entry per stream, keyed by its name,
 * holding every event type it stores with that type's v1 schema. This entry is the whole
 * contract of a new stage's output: event types, their data types and the schema registry
 * (schemas.ts), the stream definitions, `PipelineStreams` and subjects (streams.ts), the
 * deploy JSON (`pnpm gen:deploy`) and the NATS permissions all derive from it.
 * `pnpm new:stage … --add-contract` adds one (see the README's tutorial).
 */
export const TeamStreams = {
  // new:stage adds entries above this line
} as const satisfies Readonly<Record<string, TeamStream>>;
