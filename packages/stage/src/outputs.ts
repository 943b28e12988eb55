import {
  type AnyEnvelope,
  type Envelope,
  type EventType,
  makeEnvelope,
  newId,
  outputEventId,
} from "@jetmesh/contracts";
import type { Emission } from "./define-stage.ts";
import { PermanentError } from "./errors.ts";

/**
 * The envelopes of a stage's emissions for one input, exactly as every redelivery of that
 * input builds them again: each output's id derives from (stage, input id, output type,
 * index among the outputs of that type), so two different decisions on one input never share
 * an id; its `occurredAt` is the input's (event time travels with the event, as Kafka
 * Streams gives an output its input record's timestamp), so a re-run produces byte-identical
 * payloads that a duplicate PubAck can be checked against. In at-least-once mode (`derived`
 * false) ids are random: no stream drops a copy.
 * @throws PermanentError when the stage emits a type it did not declare.
 */
export function outputEnvelopes(
  stage: string,
  input: Envelope | AnyEnvelope,
  emissions: readonly Emission[],
  opts: { readonly declared: ReadonlySet<string>; readonly derived: boolean },
): Envelope[] {
  const perType = new Map<EventType, number>();
  return emissions.map((e) => {
    if (!opts.declared.has(e.type))
      throw new PermanentError(`stage ${stage} emitted undeclared event type ${e.type}`);
    const index = perType.get(e.type) ?? 0;
    perType.set(e.type, index + 1);
    return makeEnvelope(e.type, e.data, {
      eventId: opts.derived ? outputEventId(stage, input.eventId, e.type, index) : newId(),
      correlationId: input.correlationId,
      causationId: input.eventId,
      producer: stage,
      occurredAt: input.occurredAt,
      ...(input.actor !== undefined ? { actor: input.actor } : {}),
    }) as Envelope;
  });
}
