/**
 * Running a stage's handler as the runtime does, without NATS: a handler context, the plan run
 * to its emissions, and the bytes the runtime would publish for them. Not for production code;
 * the face is `@jetmesh/stage/testing` (testing.ts).
 */
import { type AnyEnvelope, encodeEvent, type EventType, eventHeaders } from "@jetmesh/contracts";
import { context } from "@opentelemetry/api";
import type { Emission, HandlerContext, Plan, StageDefinition } from "./define-stage.ts";
import { createLogger } from "./logger.ts";
import { outputEnvelopes } from "./outputs.ts";

/** A handler context as the runtime builds it for a first delivery (a silent logger, a live signal). */
export function handlerContext<Deps>(
  stage: string,
  deps: Deps,
  over: Partial<HandlerContext<Deps>> = {},
): HandlerContext<Deps> {
  return {
    stage,
    deps,
    logger: createLogger({ service: stage, level: "silent" }),
    delivery: { stream: "TEST", subject: "test.subject.00", streamSequence: 1, deliveryCount: 1 },
    traceId: "0af7651916cd43dd8448eb211c80319c",
    traceContext: context.active(),
    signal: new AbortController().signal,
    ...over,
  };
}

/** Runs a stage's handler on `input` as the runtime does: the plan, then its effect. */
export async function runPlan<In extends EventType, Deps>(
  def: StageDefinition<In, Deps>,
  input: AnyEnvelope,
  ctx: HandlerContext<Deps>,
): Promise<readonly Emission[]> {
  const out = await def.handle(input as never, ctx);
  if (Array.isArray(out)) return out as readonly Emission[];
  const plan = out as Plan;
  return [...(plan.emit ?? []), ...((await plan.effect?.()) ?? [])];
}

/**
 * What the runtime would publish for these emissions of `input` in exactly-once mode: per
 * output, its MessagePack body and its headers (trace context aside, which differs per
 * attempt by design). A redelivered input must give the same bytes.
 */
export function publishedBytes<In extends EventType, Deps>(
  def: StageDefinition<In, Deps>,
  input: AnyEnvelope,
  emissions: readonly Emission[],
): { body: Uint8Array; headers: Record<string, string> }[] {
  const outputs = outputEnvelopes(def.name, input, emissions, {
    declared: new Set<string>(def.emits),
    derived: true,
  });
  return outputs.map((o) => ({ body: encodeEvent(o), headers: eventHeaders(o) }));
}
