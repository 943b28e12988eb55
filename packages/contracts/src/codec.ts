import type { TSchema } from "@sinclair/typebox";
import { type TypeCheck, TypeCompiler } from "@sinclair/typebox/compiler";
import { Packr } from "msgpackr";
import { type AnyEnvelope, type Envelope, EnvelopeSchema } from "./envelope.ts";
import { ContractError, type FieldIssue } from "./errors.ts";
import { CONTENT_TYPE, Headers } from "./headers.ts";
import { CURRENT_VERSION, type EventDataMap, type EventType, SchemaRegistry } from "./schemas.ts";

// Plain MessagePack (no msgpackr records): any MessagePack tool can read a body an
// operator copies out of `nats stream view`. Maps decode to plain objects.
const packr = new Packr({ useRecords: false, mapsAsObjects: true, moreTypes: false });

const envelopeCheck = TypeCompiler.Compile(EnvelopeSchema);
interface CompiledEntry {
  readonly check: TypeCheck<TSchema>;
  readonly upcast?: (data: unknown) => unknown;
}
const compiled = new Map<string, CompiledEntry>(
  SchemaRegistry.map((e) => [
    `${e.type}@${e.version}`,
    { check: TypeCompiler.Compile(e.schema), ...(e.upcast ? { upcast: e.upcast } : {}) },
  ]),
);

function issuesOf(check: TypeCheck<TSchema>, value: unknown, prefix: string): FieldIssue[] {
  const out: FieldIssue[] = [];
  for (const e of check.Errors(value)) {
    out.push({ field: `${prefix}${e.path}` || "/", rule: e.message.toLowerCase() });
    if (out.length >= 20) break;
  }
  return out;
}

/**
 * Checks `data` against the schema of `type` at `version` (default: current).
 * Returns every issue found, empty when valid. Never throws.
 */
export function checkEventData(type: string, data: unknown, version?: number): FieldIssue[] {
  const v = version ?? CURRENT_VERSION[type as EventType];
  const entry = compiled.get(`${type}@${v}`);
  if (!entry) return [{ field: "/type", rule: `unknown event type or version ${type}@${v}` }];
  return entry.check.Check(data) ? [] : issuesOf(entry.check, data, "/data");
}

/**
 * Encodes an envelope as MessagePack after validating it against its contract.
 * @throws ContractError naming each bad field; a producer bug never reaches a stream.
 */
export function encodeEvent(env: AnyEnvelope | Envelope): Uint8Array {
  const issues = envelopeCheck.Check(env)
    ? checkEventData(env.type, env.data, env.version)
    : issuesOf(envelopeCheck, env, "");
  if (issues.length) throw new ContractError(`invalid ${env?.type ?? "event"}`, issues);
  return packr.pack(env);
}

/**
 * Decodes and validates a MessagePack body, lifting older schema versions to the
 * current one.
 * @throws ContractError when the bytes are not MessagePack, the envelope is
 * malformed, the type or version is unknown, or a field breaks its schema.
 */
export function decodeEvent(bytes: Uint8Array): AnyEnvelope {
  let value: unknown;
  try {
    value = packr.unpack(bytes);
  } catch (err) {
    throw new ContractError("body is not messagepack", [{ field: "/", rule: "must be messagepack" }], {
      cause: err,
    });
  }
  if (!envelopeCheck.Check(value))
    throw new ContractError("invalid envelope", issuesOf(envelopeCheck, value, ""));
  const env = value as Envelope;
  const entry = compiled.get(`${env.type}@${env.version}`);
  if (!entry) {
    throw new ContractError("unknown event", [
      { field: "/type", rule: `no schema for ${env.type}@${env.version}` },
    ]);
  }
  if (!entry.check.Check(env.data))
    throw new ContractError(`invalid ${env.type}`, issuesOf(entry.check, env.data, "/data"));
  if (entry.upcast) {
    const current = CURRENT_VERSION[env.type];
    env.data = entry.upcast(env.data) as EventDataMap[EventType];
    env.version = current;
  }
  return env as AnyEnvelope;
}

/** Builds an envelope at the current schema version of its type. */
export function makeEnvelope<T extends EventType>(
  type: T,
  data: EventDataMap[T],
  lineage: {
    eventId: string;
    correlationId: string;
    causationId: string;
    producer: string;
    occurredAt?: string;
    /** The API client the event descends from (omitted when unknown). */
    actor?: string;
  },
): Envelope<T> {
  return {
    eventId: lineage.eventId,
    type,
    version: CURRENT_VERSION[type],
    occurredAt: lineage.occurredAt ?? new Date().toISOString(),
    correlationId: lineage.correlationId,
    causationId: lineage.causationId,
    producer: lineage.producer,
    ...(lineage.actor !== undefined ? { actor: lineage.actor } : {}),
    data,
  } as Envelope<T>;
}

/**
 * The operator-readable headers of an event (everything but trace context, which
 * the runtime's propagator adds). `Nats-Msg-Id` is the eventId.
 */
export function eventHeaders(env: Envelope | AnyEnvelope): Record<string, string> {
  return {
    [Headers.MsgId]: env.eventId,
    [Headers.ContentType]: CONTENT_TYPE,
    [Headers.EventType]: env.type,
    [Headers.SchemaVersion]: String(env.version),
    [Headers.EventId]: env.eventId,
    [Headers.CausationId]: env.causationId,
    [Headers.CorrelationId]: env.correlationId,
    [Headers.Producer]: env.producer,
    [Headers.OccurredAt]: env.occurredAt,
    ...(env.actor !== undefined ? { [Headers.ClientId]: env.actor } : {}),
  };
}
