import {
  type AnyEnvelope,
  ContractError,
  decodeMessage,
  type EventType,
  namesFor,
  StreamNames,
} from "@jetmesh/contracts";
import type { JetStreamClient, JsMsg } from "@nats-io/jetstream";
import type { Logger } from "pino";
import type { StageSettings } from "./config.ts";
import { CrashPoints, type CrashHook, SimulatedCrash } from "./crash-points.ts";
import { originOf, park } from "./dead-letter.ts";
import type { Delivery, Emission, Handler, HandlerContext, Plan, StageDefinition } from "./define-stage.ts";
import { DuplicateMismatchError, PermanentError, TransientError } from "./errors.ts";
import type { Breakers } from "./flow-control.ts";
import type { Heartbeat, TrackedAttempt } from "./heartbeat.ts";
import type { IdempotencyStore } from "./idempotency-store.ts";
import type { StageMetrics } from "./metrics.ts";
import { outputEnvelopes } from "./outputs.ts";
import type { EventPublisher } from "./publisher.ts";
import { type ReplayOrigin, replayOriginOf } from "./replay.ts";
import type { ReplyInbox } from "./reply-inbox.ts";
import { retryDelayMs } from "./retry-policy.ts";
import {
  extractContext,
  linkTo,
  SpanKind,
  SpanStatusCode,
  trace,
  traceparentOf,
  tracer,
} from "./telemetry.ts";

/** Everything one message's processing needs, built once at start. */
export interface ProcessorDeps<Deps> {
  readonly definition: StageDefinition<EventType, Deps>;
  readonly deps: Deps;
  readonly settings: StageSettings;
  /** Absent in at-least-once mode. */
  readonly store: IdempotencyStore | undefined;
  readonly publisher: EventPublisher;
  /** Confirmed acks are requests through this inbox (one subscription, sent per turn). */
  readonly replies: ReplyInbox;
  readonly js: JetStreamClient;
  readonly logger: Logger;
  readonly metrics: StageMetrics;
  readonly crash: CrashHook;
  /** Sends working() and renews the leases of long attempts. */
  readonly heartbeat: Heartbeat;
  /** Told about failures of external dependencies (TransientError.dependency). */
  readonly breakers: Pick<Breakers, "failed">;
  /** Unique per process: attempt tokens (fencing tokens) are `${instance}:${stream}:${seq}:${delivery}`. */
  readonly instance: string;
  /** Aborted when the stage stops. */
  readonly stopping: AbortSignal;
  /**
   * The server understands `+TERM <reason>` (nats-server 2.10.4+). Older servers do not
   * recognise the reason form and redeliver the message, so the reason then lives only
   * in the DLQ headers.
   */
  readonly termWithReason: boolean;
}

/** Processes one delivered message to its end: acked, nak'd with a delay, or parked and termed. */
export type Processor = (m: JsMsg, accepts: ReadonlySet<string>) => Promise<void>;

const ACK = new TextEncoder().encode("+ACK");
/** How long a confirmed ack waits for the server's confirmation. */
export const CONFIRM_TIMEOUT_MS = 5000;

/**
 * The subject a delivered message is acked on (`$JS.ACK.<stream>.<consumer>...`): the
 * client's message object holds it as `reply`, which the JsMsg interface does not expose.
 */
function ackSubjectOf(m: JsMsg): string | undefined {
  const reply = (m as JsMsg & { readonly reply?: unknown }).reply;
  return typeof reply === "string" && reply.startsWith("$JS.ACK.") ? reply : undefined;
}

const isPlan = (r: readonly Emission[] | Plan): r is Plan => !Array.isArray(r);

/** A delivery past JETMESH_MAX_DELIVER: park it, run nothing. */
class DeliveriesSpent extends Error {
  override readonly name = "DeliveriesSpent";
  constructor(deliveries: number) {
    super(`no attempt finished within ${deliveries - 1} deliveries`);
  }
}

/** The attempt's lease is another attempt's now: stop without done mark or ack. */
class LeaseLost extends Error {
  override readonly name = "LeaseLost";
}

function composeHandler<Deps>(def: StageDefinition<EventType, Deps>): Handler<EventType, Deps> {
  let h = def.handle as Handler<EventType, Deps>;
  for (const mw of [...(def.middleware ?? [])].reverse()) h = mw(h);
  return h;
}

/**
 * Bounds a handler or effect by `ms`. A synchronous result needs no timer: most handlers
 * are pure, and a timer, a race and their promises per message showed in the profile.
 */
function withTimeout<T>(p: Promise<T> | T, ms: number, onTimeout: () => void, what: string): Promise<T> | T {
  if (!(p instanceof Promise)) return p;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      onTimeout();
      reject(new TransientError(`${what} timed out after ${ms} ms`));
    }, ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

/**
 * Builds the processor of a stage: the recipe of BRIEF.md steps 2 to 7 for one message.
 *
 * decode → claim `{stage}:{eventId}` → handler → effect → publish outputs (ids derived
 * from the input id) → mark done → ack. A crash between any two steps leaves the key
 * leased or done and the outputs stored at most once: the redelivery either finds the
 * key done (ack, nothing else) or re-runs the deterministic handler and effect, whose
 * outputs carry the same ids and are dropped by the stream's duplicate window.
 */
export function createProcessor<Deps>(p: ProcessorDeps<Deps>): Processor {
  const stage = p.definition.name;
  const handler = composeHandler(p.definition);
  const emits = new Set<string>(p.definition.emits);
  const s = p.settings;
  const names = namesFor(s.namespace);
  const replayStream = names.stream(StreamNames.Replay);
  const exactlyOnce = s.mode === "exactly-once";
  const policy = { baseMs: s.retryBaseMs, maxMs: s.retryMaxMs, jitter: 0.5 };

  // Plain acks of one turn go out together, after its promise jobs, so that the acks of a
  // delivered batch share one socket write instead of one each (see ReplyInbox).
  let acks: JsMsg[] = [];
  const sendAcks = () => {
    const batch = acks;
    acks = [];
    for (const m of batch) m.ack();
  };
  const ack = async (m: JsMsg): Promise<void> => {
    if (s.ackMode === "confirmed") {
      // What `m.ackAck()` sends (`+ACK` with a reply subject), through the shared inbox: no
      // timer and no request of its own per message, and the acks of a turn in one write.
      // A lost confirmation only means a redelivery, which the done key absorbs.
      const subject = ackSubjectOf(m);
      await (subject
        ? p.replies.request(subject, ACK, undefined, CONFIRM_TIMEOUT_MS)
        : m.ackAck({ timeout: CONFIRM_TIMEOUT_MS })
      ).catch((err) => p.logger.warn({ err, stream_seq: m.seq }, "ack not confirmed"));
    } else if (acks.push(m) === 1) {
      process.nextTick(sendAcks);
    }
  };

  return async (m, accepts) => {
    const started = performance.now();
    // An operator's replay (from REPLAY) is processed as a delivery of the original it names:
    // the handler sees the original's stream, subject and sequence; acks, retries and park
    // are the replay's own. Metrics, spans and attempt tokens name where it was delivered from.
    const origin = replayOriginOf(m, replayStream);
    const replay = typeof origin === "object" ? origin : undefined;
    const delivery: Delivery = {
      stream: replay?.stream ?? m.info.stream,
      subject: replay?.subject ?? m.subject,
      streamSequence: replay?.streamSequence ?? m.seq,
      deliveryCount: m.info.deliveryCount,
      // JsMsg.timestampNanos (a bigint; DeliveryInfo's copy is a number, rounded): the sim's
      // messages may have neither.
      ...(!replay && typeof m.timestampNanos === "bigint"
        ? { storedAtMs: Number(m.timestampNanos / 1_000_000n) }
        : {}),
      ...(replay
        ? {
            replay: {
              stream: m.info.stream,
              streamSequence: m.seq,
              ...(replay.dlqSeq !== undefined ? { dlqSeq: replay.dlqSeq } : {}),
            },
          }
        : {}),
    };
    const from = m.info.stream;
    if (delivery.deliveryCount > 1) p.metrics.redeliveries.inc({ stage, stream: from });
    const parent = extractContext(m.headers);
    const span = tracer.startSpan(
      `process ${m.subject}`,
      {
        kind: SpanKind.CONSUMER,
        attributes: {
          "messaging.system": "nats",
          "messaging.operation.type": "process",
          "messaging.destination.name": m.subject,
          "messaging.consumer.group.name": stage,
          "messaging.nats.stream": from,
          "messaging.nats.stream_sequence": m.seq,
          "messaging.nats.delivery_count": delivery.deliveryCount,
          ...(replay
            ? {
                "jetmesh.replay.origin_stream": replay.stream,
                "jetmesh.replay.origin_sequence": replay.streamSequence,
                ...(replay.dlqSeq !== undefined ? { "jetmesh.replay.dlq_sequence": replay.dlqSeq } : {}),
              }
            : {}),
        },
      },
      parent,
    );
    const otelCtx = trace.setSpan(parent, span);
    const traceparent = traceparentOf(span);
    const attempt = `${p.instance}:${from}:${m.seq}:${delivery.deliveryCount}`;
    // The per-message child logger is built on first use: at info level a message that
    // goes well logs nothing, and two pino children per message were ~4% of the CPU.
    const spanContext = span.spanContext();
    const bindings: Record<string, unknown> = {
      subject: m.subject,
      stream_seq: m.seq,
      delivery: delivery.deliveryCount,
      trace_id: spanContext.traceId,
      span_id: spanContext.spanId,
    };
    if (replay) {
      bindings.replay_of = replay.dlqSeq;
      bindings.origin_stream = replay.stream;
      bindings.origin_seq = replay.streamSequence;
    }
    let childLog: Logger | undefined;
    const log = (): Logger => {
      childLog ??= p.logger.child(bindings);
      return childLog;
    };
    let key: string | undefined;
    let outcome = "acked";
    let env: AnyEnvelope | undefined;
    // Set when the heartbeat finds another attempt holding the lease: this attempt was
    // paused or slow past its lease and must change nothing more.
    let fenced = false;
    let onLost: () => void = () => {};
    let tracked: TrackedAttempt | undefined;
    try {
      if (origin === "unnamed")
        throw new PermanentError(
          "a message on REPLAY without Jetmesh-Replay-Stream, -Subject and -Sequence: not a replay of anything this stage parked",
        );
      // Its deliveries are spent (the last attempt died, or its park failed): park it without
      // running anything again. The server never drops it (max_deliver is unlimited).
      if (delivery.deliveryCount > s.maxDeliver) throw new DeliveriesSpent(delivery.deliveryCount);
      try {
        env = decodeMessage(m.data, m.headers);
      } catch (err) {
        throw new PermanentError(`undecodable message: ${(err as Error).message}`, { cause: err });
      }
      span.setAttribute("messaging.message.id", env.eventId);
      span.setAttribute("messaging.message.conversation_id", env.correlationId);
      bindings.event_id = env.eventId;
      bindings.transfer_id = env.correlationId;
      bindings.event_type = env.type;
      // Subjects are `<type>.<partition>`: an envelope that names another type than its subject
      // was misrouted or forged, and neither this stage nor an operator reading by subject may
      // take it for what it claims.
      if (!names.local(delivery.subject).startsWith(`${env.type}.`))
        throw new PermanentError(`event type ${env.type} does not match its subject ${delivery.subject}`);
      // A replay is this stage's by its subject (replay.<stage>): one of a type it no longer
      // takes goes back to the DLQ with the reason instead of vanishing as a skip.
      if (replay && !accepts.has(env.type))
        throw new PermanentError(`a replay of ${env.type}, which this stage does not take`);
      if (!accepts.has(env.type)) {
        outcome = "skipped";
        await ack(m);
        return;
      }
      if (exactlyOnce && p.store) {
        const claimKey = `${stage}:${env.eventId}`;
        const claim = await p.store.claim(claimKey, attempt, s.leaseMs, traceparent);
        if (claim.state === "done") {
          outcome = "duplicate";
          p.metrics.duplicates.inc({ stage, layer: "idempotency" });
          if (p.logger.isLevelEnabled("debug")) log().debug("input already done; acking the redelivery");
          await ack(m);
          return;
        }
        if (claim.state === "busy") {
          // Another attempt holds the lease: come back when it would have expired.
          outcome = "busy";
          m.nak(claim.retryInMs + 50);
          return;
        }
        // The key is this attempt's only once its claim answered: a claim Redis refused (full
        // at maxmemory: OOM) took no lease, and fail() would take the missing lease for one
        // lost to another attempt, leave the message unacked and spend its deliveries.
        key = claimKey;
        const link = linkTo(claim.previousAttempt, { "jetmesh.link": "previous_attempt" });
        if (link) span.addLink(link);
        p.crash(CrashPoints.AfterClaim);
      }
      tracked = {
        m,
        key,
        token: attempt,
        since: performance.now(),
        lost: () => {
          fenced = true;
          onLost();
        },
      };
      p.heartbeat.track(tracked);
      // The signal is built when the handler first reads it; until then a timeout or a stop
      // has nothing to abort.
      let ac: AbortController | undefined;
      let timedOut = false;
      const onStop = () => ac?.abort();
      onLost = () => ac?.abort();
      const abort = () => {
        timedOut = true;
        ac?.abort();
      };
      let emissions: readonly Emission[];
      try {
        const ctx: HandlerContext<Deps> = {
          stage,
          deps: p.deps,
          get logger() {
            return log();
          },
          delivery,
          traceId: spanContext.traceId,
          traceContext: otelCtx,
          get signal() {
            if (!ac) {
              ac = new AbortController();
              // Read after a timeout, a stop or a lost lease: the signal is already aborted, as
              // it was when every message built its controller up front.
              if (timedOut || fenced || p.stopping.aborted) ac.abort();
              else p.stopping.addEventListener("abort", onStop, { once: true });
            }
            return ac.signal;
          },
        };
        // The consumer span's context goes to the handler as ctx.traceContext, not as the
        // active context: `context.with` per message turns on AsyncLocalStorage's promise
        // hooks, about 7% of a stage's CPU (bench/NOTES.md).
        const result = await withTimeout(handler(env, ctx), s.handlerTimeoutMs, abort, "handler");
        const plan: Plan = isPlan(result) ? result : { emit: result };
        p.crash(CrashPoints.BeforeEffect);
        const extra = plan.effect
          ? await withTimeout(plan.effect(), s.handlerTimeoutMs, abort, "effect")
          : undefined;
        p.crash(CrashPoints.AfterEffect);
        emissions = extra?.length ? [...(plan.emit ?? []), ...extra] : (plan.emit ?? []);
      } finally {
        if (ac) p.stopping.removeEventListener("abort", onStop);
      }
      const outputs = outputEnvelopes(stage, env, emissions, { declared: emits, derived: exactlyOnce });
      if (fenced) throw new LeaseLost();
      await Promise.all(
        outputs.map((o, i) =>
          p.publisher
            .publish(o, {
              parent: otelCtx,
              dedupe: exactlyOnce,
              ...(emissions[i]?.partitionKey ? { partitionKey: emissions[i].partitionKey } : {}),
            })
            .catch((err: unknown) => {
              if (!(err instanceof DuplicateMismatchError)) throw err;
              // An earlier attempt decided differently (its state was lost meanwhile) and its
              // output is stored and consumed downstream: the stream is the truth, so that
              // decision stands. Never silent: counted and logged with where it is.
              p.metrics.divergentReplays.inc({ stage });
              log().warn(
                { output_event_id: o.eventId, stored_stream: err.stream, stored_seq: err.seq },
                "a redelivery decided differently from the stored output; the stored one stands",
              );
            }),
        ),
      );
      p.crash(CrashPoints.AfterPublish);
      if (key && p.store) {
        const marked = await p.store.markDone(
          key,
          attempt,
          outputs.map((o) => o.eventId).join(","),
          s.idempotencyTtlMs,
        );
        if (!marked) throw new LeaseLost();
      }
      p.crash(CrashPoints.AfterDone);
      await ack(m);
      p.crash(CrashPoints.AfterAck);
      // After the ack nothing may throw: an event time that parses to no instant is not measured.
      const age = Date.now() - Date.parse(env.occurredAt);
      if (Number.isFinite(age)) p.metrics.eventAge.observe({ stage }, Math.max(0, age) / 1000);
      if (p.logger.isLevelEnabled("debug")) log().debug({ outputs: outputs.length }, "processed");
    } catch (err) {
      if (err instanceof SimulatedCrash) {
        outcome = "crashed";
        return;
      }
      if (err instanceof LeaseLost || fenced) {
        // Another attempt holds the message now (this one was paused or slow past its lease):
        // it decides the ack; outputs this one published carry the same ids and were dropped.
        outcome = "fenced";
        log().warn({ attempt }, "attempt lost its lease to another; leaving the message to it");
        return;
      }
      outcome = await fail(m, err as Error, key, attempt, traceparent, delivery, log(), replay);
      span.recordException(err as Error);
      span.setStatus({ code: SpanStatusCode.ERROR, message: (err as Error).message });
    } finally {
      if (tracked) p.heartbeat.untrack(tracked);
      span.setAttribute("jetmesh.outcome", outcome);
      span.end();
      p.metrics.processed.inc({ stage, stream: from, outcome });
      p.metrics.handlerDuration.observe({ stage }, (performance.now() - started) / 1000);
      p.metrics.lastProgress.set({ stage }, Date.now() / 1000);
    }
  };

  async function fail(
    m: JsMsg,
    err: Error,
    key: string | undefined,
    attempt: string,
    traceparent: string,
    delivery: Delivery,
    log: Logger,
    replay: ReplayOrigin | undefined,
  ): Promise<string> {
    // An attempt that was paused past its lease fails on its own stale timeouts when it wakes
    // up: if another attempt holds the lease now, this one was fenced out and must not nak,
    // park or blame a dependency for a message it no longer owns.
    if (key && p.store && !(await p.store.extend(key, attempt, s.leaseMs).catch(() => true))) {
      log.warn({ err, attempt }, "attempt lost its lease to another; leaving the message to it");
      return "fenced";
    }
    const permanent = err instanceof PermanentError || err instanceof ContractError;
    const exhausted = delivery.deliveryCount >= s.maxDeliver;
    if (err instanceof TransientError && err.dependency) p.breakers.failed(err.dependency);
    if (permanent || exhausted) {
      const reason = permanent
        ? err.message
        : err instanceof DeliveriesSpent
          ? `gave up: ${err.message}`
          : `gave up after ${delivery.deliveryCount} deliveries: ${err.message}`;
      // The key is released, not marked done, so an operator can replay the parked message.
      if (key && p.store)
        await p.store.release(key, attempt, traceparent, s.idempotencyTtlMs).catch(() => {});
      try {
        await park(p.js, originOf(stage, m, replay), { errorClass: err.name, reason }, s.namespace);
      } catch (parkErr) {
        // Not parked means not termed: the message stays in its stream, and since the server
        // never stops redelivering (max_deliver -1), its next delivery tries the park again.
        p.metrics.dlqParkFailures.inc({ stage });
        const retryInMs = Math.max(1000, retryDelayMs(policy, delivery.deliveryCount));
        log.error(
          { err: parkErr, reason, retry_in_ms: retryInMs },
          "DLQ refused the message (full or unreachable); it stays in its stream and the park is retried",
        );
        m.nak(retryInMs);
        return "park_failed";
      }
      if (p.termWithReason) m.term(reason.slice(0, 256));
      else m.term();
      p.metrics.dlqParked.inc({ stage, reason: permanent ? err.name : "max_deliver" });
      log.error({ err, reason }, "message parked in the DLQ");
      return "parked";
    }
    const delay = Math.max(
      err instanceof TransientError ? (err.retryAfterMs ?? 0) : 0,
      retryDelayMs(policy, delivery.deliveryCount),
    );
    if (key && p.store) await p.store.release(key, attempt, traceparent, s.idempotencyTtlMs).catch(() => {});
    m.nak(delay);
    log.warn({ err, retry_in_ms: delay }, "transient failure, retrying");
    return "retried";
  }
}
