import { setTimeout as sleep } from "node:timers/promises";
import { ContractError, deriveId, type Envelope, EventTypes, makeEnvelope } from "@jetmesh/contracts";
import type { Logger } from "@jetmesh/stage";
import type { Context } from "@opentelemetry/api";
import { readJsonBody } from "../http/body.ts";
import { invalidRequest, json, type Reply, unavailable } from "../http/reply.ts";
import type { RouteRequest } from "../http/router.ts";
import type { StatusStore } from "../status/status-store.ts";
import type { AcceptedAnswer, Claim, IdempotencyRecords } from "./idempotency.ts";
import type { LoadShedder } from "./load-shedding.ts";
import {
  checkIdempotencyKey,
  checkTransferRequest,
  IDEMPOTENCY_HEADER,
  requestHash,
  type TransferRequest,
} from "./request.ts";

/** The `producer` of the events the gateway publishes. */
export const PRODUCER = "gateway";

/** What the gateway needs of the runtime's event publisher. */
export interface TransferPublisher {
  /**
   * Resolves once the stream stored the event (or dropped it as a duplicate).
   * @throws ContractError for an invalid event; anything else means "not stored, retry".
   */
  publish(
    env: Envelope<"transfers.requested">,
    opts: { partitionKey: string; parent: Context },
  ): Promise<{ stream: string; seq: number; duplicate?: boolean }>;
}

export interface SubmitTransferDeps {
  readonly publisher: TransferPublisher;
  readonly records: IdempotencyRecords;
  readonly shedder: LoadShedder;
  /** False while the NATS connection is down: fail fast instead of waiting for a publish timeout. */
  readonly natsConnected: () => boolean;
  /** Optional write-through of the request into the status projection (read-your-writes). */
  readonly statusStore?: StatusStore;
  readonly logger: Logger;
  readonly maxBodyBytes: number;
  /** How long a retry waits for the first request with its key to finish before 409. */
  readonly inProgressWaitMs: number;
}

/** Seconds a client should wait before retrying, by cause. */
const RETRY_AFTER = { busy: 1, inProgress: 1, dependencyDown: 2 } as const;

/** The transfer and event ids of an idempotency key: the same key always names the same transfer. */
export function idsFor(key: string): { transferId: string; eventId: string } {
  return {
    transferId: deriveId(PRODUCER, "transfer", key),
    eventId: deriveId(PRODUCER, EventTypes.TransferRequested, key),
  };
}

/**
 * `POST /v1/transfers`: validate, claim the Idempotency-Key, publish
 * `transfers.requested` with Nats-Msg-Id = the eventId derived from the key, and answer
 * 202 only once JetStream stored it. A replay with the same key and body answers 200 with
 * the stored answer and publishes nothing.
 */
export function submitTransfer(deps: SubmitTransferDeps): (r: RouteRequest) => Promise<Reply> {
  return async ({ req, span, context }) => {
    const body = await readJsonBody(req, deps.maxBodyBytes);
    const key = checkIdempotencyKey(req.headers[IDEMPOTENCY_HEADER.toLowerCase()]);
    const checked = checkTransferRequest(body);
    if (!key.ok || !checked.ok) {
      return invalidRequest([...(key.ok ? [] : key.issues), ...(checked.ok ? [] : checked.issues)]);
    }
    const hash = requestHash(checked.value);
    let claim: Claim;
    try {
      claim = await claimOrWait(deps, key.value, hash);
    } catch (err) {
      deps.logger.warn({ err }, "idempotency store unavailable");
      return unavailable("idempotency store unavailable", RETRY_AFTER.dependencyDown);
    }
    switch (claim.kind) {
      case "done":
        return json(200, claim.answer, { "Idempotent-Replayed": "true" });
      case "conflict":
        return json(409, {
          error: "idempotency key conflict",
          detail: `${IDEMPOTENCY_HEADER} was already used with a different body`,
          field: `header:${IDEMPOTENCY_HEADER}`,
        });
      case "pending":
        return json(
          409,
          {
            error: "request in progress",
            detail: `a request with this ${IDEMPOTENCY_HEADER} is still being processed`,
          },
          // The first request normally ends within milliseconds; its lease is only the
          // worst case (a crashed gateway), so the hint is short rather than the lease left.
          { "Retry-After": String(RETRY_AFTER.inProgress) },
        );
      case "claimed":
        return publishClaimed(deps, { key: key.value, hash, owner: claim.owner }, checked.value, {
          traceId: span.spanContext().traceId,
          parent: context,
        });
    }
  };
}

/** Claims the key; while another request with the same key and body holds it, waits a little. */
async function claimOrWait(deps: SubmitTransferDeps, key: string, hash: string): Promise<Claim> {
  const deadline = Date.now() + deps.inProgressWaitMs;
  for (;;) {
    const claim = await deps.records.claim(key, hash);
    const left = deadline - Date.now();
    if (claim.kind !== "pending" || left <= 0) return claim;
    await sleep(Math.min(25, left));
  }
}

async function publishClaimed(
  deps: SubmitTransferDeps,
  { key, hash, owner }: { key: string; hash: string; owner: string },
  request: TransferRequest,
  trace: { traceId: string; parent: Context },
): Promise<Reply> {
  const release = async (): Promise<void> => {
    try {
      await deps.records.release(key, owner);
    } catch (err) {
      // The lease runs out on its own; until then a retry is told "in progress".
      deps.logger.warn({ err }, "could not release idempotency claim");
    }
  };
  if (!deps.natsConnected()) {
    await release();
    return unavailable("event stream unavailable", RETRY_AFTER.dependencyDown, "nats disconnected");
  }
  const slot = deps.shedder.acquire();
  if (!slot.ok) {
    await release();
    return unavailable("overloaded", RETRY_AFTER.busy, slot.reason);
  }

  const { transferId, eventId } = idsFor(key);
  const { traceId } = trace;
  const env = makeEnvelope(
    EventTypes.TransferRequested,
    { transferId, ...request, requestedAt: new Date().toISOString() },
    { eventId, correlationId: transferId, causationId: `idempotency-key:${key}`, producer: PRODUCER },
  );
  let ack: { stream: string; seq: number; duplicate?: boolean };
  try {
    ack = await deps.publisher.publish(env, { partitionKey: request.from, parent: trace.parent });
  } catch (err) {
    await release();
    if (err instanceof ContractError) throw err; // a gateway bug: the server answers 500
    deps.logger.warn({ err, event_id: eventId, transfer_id: transferId }, "transfer not published");
    return unavailable("event stream unavailable", RETRY_AFTER.dependencyDown, (err as Error).message);
  } finally {
    slot.release();
  }

  const answer: AcceptedAnswer = { transferId, eventId, traceId };
  try {
    await deps.records.complete(key, owner, hash, answer);
  } catch (err) {
    // The event is stored, so the answer is 202. A retry before the lease lapses is told
    // "in progress"; after it, it republishes the same Nats-Msg-Id, which the stream drops.
    deps.logger.warn({ err, event_id: eventId }, "accepted transfer not recorded as done");
  }
  // A duplicate ack means an earlier attempt stored the event, with its own occurredAt:
  // leave its entry to the projection rather than record this attempt's copy.
  if (deps.statusStore && !ack.duplicate) {
    await deps.statusStore
      .record({
        type: env.type,
        eventId,
        causationId: env.causationId,
        transferId,
        stream: ack.stream,
        sequence: ack.seq,
        occurredAt: env.occurredAt,
        ...(traceId ? { traceId } : {}),
      })
      .catch((err: unknown) => deps.logger.debug({ err, event_id: eventId }, "status write-through skipped"));
  }
  deps.logger.debug({ event_id: eventId, transfer_id: transferId, stream_seq: ack.seq }, "transfer accepted");
  return json(202, answer);
}
