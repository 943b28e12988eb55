import { setTimeout as sleep } from "node:timers/promises";
import {
  ContractError,
  decodeEvent,
  deriveId,
  type Envelope,
  EventTypes,
  Headers,
  makeEnvelope,
  timeOfTimedId,
} from "@jetmesh/contracts";
import { DuplicateMismatchError, type Logger, PublishError } from "@jetmesh/stage";
import type { Context } from "@opentelemetry/api";
import { forbidden, transferDenied } from "../auth/authorize.ts";
import type { Authenticator, Principal } from "../auth/clients.ts";
import { readJsonBody } from "../http/body.ts";
import { invalidRequest, json, type Reply, unavailable } from "../http/reply.ts";
import type { RouteRequest } from "../http/router.ts";
import type { StatusStore } from "../status/status-store.ts";
import type { AcceptedAnswer, Claim, IdempotencyRecords } from "./idempotency.ts";
import type { LoadShedder } from "./load-shedding.ts";
import type { TransferIds } from "./transfer-ids.ts";
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
  /** Who owns which account (the request's client comes from the route's guard). */
  readonly authenticator: Authenticator;
  /** Keyed transfer ids: not derivable from a key without the gateway's secret. */
  readonly ids: TransferIds;
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
  /**
   * How long a client may repeat a request (JETMESH_IDEMPOTENCY_HORIZON_MS): a timed key
   * (a UUIDv7, whose creation time it carries) older than this is refused.
   */
  readonly idempotencyHorizonMs: number;
  /** Accept keys that carry no time (anything but a UUIDv7); refused in production. */
  readonly acceptUntimedKeys: boolean;
  /** Reads a stored message (a duplicate's original), to compare it with a retry. */
  readonly readStored: (stream: string, seq: number) => Promise<StoredRequest | undefined>;
}

/** A stored transfers.requested, as read back from INGRESS. */
export interface StoredRequest {
  readonly env: Envelope<"transfers.requested">;
  readonly traceparent?: string;
}

/** How far in the future a key's time may be: clocks drift. */
const KEY_CLOCK_SKEW_MS = 5 * 60_000;

/** Seconds a client should wait before retrying, by cause. */
const RETRY_AFTER = { busy: 1, inProgress: 1, dependencyDown: 2 } as const;

/**
 * The transfer and event ids of a client's Idempotency-Key: the same client and key always
 * name the same transfer (the key's time picks the secret version, see transfer-ids.ts). An
 * untimed key is dated by its record's first claim, which a Redis that loses writes can move:
 * one reason such keys are refused in production.
 */
export function idsFor(
  ids: TransferIds,
  clientId: string,
  key: string,
  firstAt: string,
): { transferId: string; eventId: string } {
  const transferId = ids.transferId(clientId, key, timeOfTimedId(key) ?? Date.parse(firstAt));
  return { transferId, eventId: deriveId(PRODUCER, EventTypes.TransferRequested, transferId) };
}

/** The idempotency record of a client's key: keys are scoped per client. */
export function scopedKey(clientId: string, key: string): string {
  return `${clientId}:${key}`;
}

/**
 * `POST /v1/transfers`: validate, claim the Idempotency-Key, publish
 * `transfers.requested` with Nats-Msg-Id = the eventId derived from the key, and answer
 * 202 only once JetStream stored it. A replay with the same key and body answers 200 with
 * the stored answer and publishes nothing.
 */
export function submitTransfer(deps: SubmitTransferDeps): (r: RouteRequest) => Promise<Reply> {
  return async ({ req, span, context, principal }) => {
    if (!principal) throw new Error("POST /v1/transfers reached without a client");
    const body = await readJsonBody(req, deps.maxBodyBytes);
    const key = checkKeyAge(deps, checkIdempotencyKey(req.headers[IDEMPOTENCY_HEADER.toLowerCase()]));
    const checked = checkTransferRequest(body.value, body.numbers);
    if (!key.ok || !checked.ok) {
      return invalidRequest([...(key.ok ? [] : key.issues), ...(checked.ok ? [] : checked.issues)]);
    }
    const denied = transferDenied(deps.authenticator, principal, checked.value);
    if (denied) return forbidden(denied);
    const hash = requestHash(checked.value);
    const recordKey = scopedKey(principal.clientId, key.value);
    let claim: Claim;
    try {
      claim = await claimOrWait(deps, recordKey, hash);
    } catch (err) {
      deps.logger.warn({ err }, "idempotency store unavailable");
      return unavailable("idempotency store unavailable", RETRY_AFTER.dependencyDown);
    }
    switch (claim.kind) {
      case "done":
        return json(200, claim.answer, { "Idempotent-Replayed": "true" });
      case "conflict":
        return conflict();
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
        return publishClaimed(
          deps,
          { principal, key: key.value, recordKey, hash, owner: claim.owner, firstAt: claim.firstAt },
          checked.value,
          { traceId: span.spanContext().traceId, parent: context },
        );
    }
  };
}

function conflict(): Reply {
  return json(409, {
    error: "idempotency key conflict",
    detail: `${IDEMPOTENCY_HEADER} was already used with a different body`,
    field: `header:${IDEMPOTENCY_HEADER}`,
  });
}

/**
 * A key that carries its creation time (a UUIDv7) is refused past the idempotency horizon:
 * every guard downstream lives at least that long, so a request repeated within it can never
 * run twice, and one repeated after it is refused rather than taken as new. A key without a
 * time is accepted only when `acceptUntimedKeys` (never in production): its horizon is the
 * record's lifetime in Redis, which a Redis that loses writes can shorten.
 */
function checkKeyAge(deps: SubmitTransferDeps, key: ReturnType<typeof checkIdempotencyKey>) {
  if (!key.ok) return key;
  const field = `header:${IDEMPOTENCY_HEADER}`;
  const at = timeOfTimedId(key.value);
  if (at === undefined) {
    return deps.acceptUntimedKeys
      ? key
      : {
          ok: false as const,
          issues: [{ field, rule: "must be a UUIDv7 (RFC 9562): the key carries its creation time" }],
        };
  }
  const age = Date.now() - at;
  if (age > deps.idempotencyHorizonMs)
    return {
      ok: false as const,
      issues: [
        {
          field,
          rule: `is older than the idempotency horizon (${Math.round(deps.idempotencyHorizonMs / 60_000)} min): look the transfer up, or use a new key`,
        },
      ],
    };
  if (age < -KEY_CLOCK_SKEW_MS)
    return { ok: false as const, issues: [{ field, rule: "is dated in the future" }] };
  return key;
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
  {
    principal,
    key,
    recordKey,
    hash,
    owner,
    firstAt,
  }: { principal: Principal; key: string; recordKey: string; hash: string; owner: string; firstAt: string },
  request: TransferRequest,
  trace: { traceId: string; parent: Context },
): Promise<Reply> {
  // Forget the key: only when nothing can have been stored.
  const release = async (): Promise<void> => {
    try {
      await deps.records.release(recordKey, owner);
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

  const { transferId, eventId } = idsFor(deps.ids, principal.clientId, key, firstAt);
  const { traceId } = trace;
  // Every retry of this key builds the same bytes (the time of its first claim), so a
  // duplicate PubAck can be checked against what the stream holds.
  const env = makeEnvelope(
    EventTypes.TransferRequested,
    { transferId, ...request, requestedAt: firstAt },
    {
      eventId,
      correlationId: transferId,
      causationId: `idempotency-key:${key}`,
      producer: PRODUCER,
      occurredAt: firstAt,
      // Who asked: from the credentials, never the body; every later event carries it.
      actor: principal.clientId,
    },
  );
  let ack: { stream: string; seq: number; duplicate?: boolean };
  let answer: AcceptedAnswer = { transferId, eventId, traceId };
  try {
    ack = await deps.publisher.publish(env, { partitionKey: request.from, parent: trace.parent });
  } catch (err) {
    if (err instanceof ContractError) {
      await release();
      throw err; // a gateway bug: the server answers 500
    }
    if (err instanceof DuplicateMismatchError) {
      // The stream holds this key's event with other bytes: a first attempt whose record
      // Redis lost. Same transfer fields: it is this request, answered; otherwise the key
      // belongs to another body.
      return answerFromStored(deps, { recordKey, owner, hash }, err);
    }
    const ambiguous = !(err instanceof PublishError) || err.ambiguous || !err.refused;
    if (ambiguous) {
      // It may be stored: keep the key bound to this body until a retry finds out.
      await deps.records
        .unsure(recordKey, owner)
        .catch((e: unknown) => deps.logger.warn({ err: e }, "could not mark the idempotency record unsure"));
    } else await release();
    deps.logger.warn(
      { err, event_id: eventId, transfer_id: transferId, ambiguous },
      "transfer not published",
    );
    return unavailable("event stream unavailable", RETRY_AFTER.dependencyDown, (err as Error).message);
  } finally {
    slot.release();
  }
  if (ack.duplicate) {
    // An earlier attempt stored it (its answer was lost): the transfer's trace is that one's.
    const stored = await deps.readStored(ack.stream, ack.seq).catch(() => undefined);
    const first = /^00-([0-9a-f]{32})-/.exec(stored?.traceparent ?? "")?.[1];
    if (first) answer = { ...answer, traceId: first };
  }
  try {
    await deps.records.complete(recordKey, owner, hash, answer);
  } catch (err) {
    // The event is stored, so the answer is 202. A retry before the lease lapses is told
    // "in progress"; after it, it republishes the same Nats-Msg-Id, which the stream drops.
    deps.logger.warn({ err, event_id: eventId }, "accepted transfer not recorded as done");
  }
  // A duplicate ack means an earlier attempt stored the event: leave its entry to the projection.
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
        actor: principal.clientId,
        ...(traceId ? { traceId } : {}),
      })
      .catch((err: unknown) => deps.logger.debug({ err, event_id: eventId }, "status write-through skipped"));
  }
  deps.logger.debug({ event_id: eventId, transfer_id: transferId, stream_seq: ack.seq }, "transfer accepted");
  return json(202, answer);
}

/**
 * The stream already holds this key's event, stored by an earlier attempt whose record
 * Redis no longer has: the retry is answered from it (202 with the stored ids) when it asks
 * for the same transfer, and 409 when the key's stored transfer is another body. Either way
 * the record now says what the stream holds.
 */
async function answerFromStored(
  deps: SubmitTransferDeps,
  { recordKey, owner, hash }: { recordKey: string; owner: string; hash: string },
  dup: DuplicateMismatchError,
): Promise<Reply> {
  const stored = await deps.readStored(dup.stream, dup.seq).catch(() => undefined);
  if (!stored) {
    await deps.records.unsure(recordKey, owner).catch(() => {});
    return unavailable("event stream unavailable", RETRY_AFTER.dependencyDown, "stored request unreadable");
  }
  const d = stored.env.data;
  const storedHash = requestHash({
    from: d.from,
    to: d.to,
    amountMinor: d.amountMinor,
    currency: d.currency,
    ...(d.reference !== undefined ? { reference: d.reference } : {}),
    ...(d.metadata !== undefined ? { metadata: d.metadata } : {}),
  });
  const traceId = /^00-([0-9a-f]{32})-/.exec(stored.traceparent ?? "")?.[1] ?? "";
  const answer: AcceptedAnswer = { transferId: d.transferId, eventId: stored.env.eventId, traceId };
  await deps.records.complete(recordKey, owner, storedHash, answer).catch(() => false);
  if (storedHash !== hash) return conflict();
  return json(200, answer, { "Idempotent-Replayed": "true" });
}

/** Reads a stored transfers.requested from a stream (for {@link SubmitTransferDeps.readStored}). */
export function storedRequestReader(
  getMessage: (
    stream: string,
    seq: number,
  ) => Promise<{ data: Uint8Array; header?: { get(k: string): string } } | null>,
): (stream: string, seq: number) => Promise<StoredRequest | undefined> {
  return async (stream, seq) => {
    const m = await getMessage(stream, seq);
    if (!m) return undefined;
    const env = decodeEvent(m.data);
    if (env.type !== EventTypes.TransferRequested) return undefined;
    const traceparent = m.header?.get(Headers.TraceParent);
    return { env: env as Envelope<"transfers.requested">, ...(traceparent ? { traceparent } : {}) };
  };
}
