import type { TSchema } from "@sinclair/typebox";
import { type TypeCheck, TypeCompiler } from "@sinclair/typebox/compiler";
import { Value } from "@sinclair/typebox/value";
import { type AnyEnvelope, actorOf, type Envelope, EnvelopeContract, EnvelopeSchema } from "./envelope.ts";
import { ContractError, type FieldIssue } from "./errors.ts";
import { CONTENT_TYPE, Headers } from "./headers.ts";
import { issuesOf, packBody, unpackBody } from "./msgpack.ts";
import {
  CURRENT_VERSION,
  type EventDataMap,
  type EventType,
  EventContracts,
  READ_VERSION,
  SchemaRegistry,
} from "./schemas.ts";

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

/**
 * A registry the codec cannot serve is a bug of this package: refused when the module loads,
 * so no stage starts with it. Versions run 1..N, every one below N lifts to the next, and the
 * version producers write is registered.
 */
function checkRegistry(): void {
  for (const [type, contract] of Object.entries(EventContracts) as [
    EventType,
    (typeof EventContracts)[EventType],
  ][]) {
    const top = READ_VERSION[type];
    // From the oldest version still registered: older ones may be removed after their
    // deprecation window (README, "Deprecation").
    const low = Math.min(...SchemaRegistry.filter((e) => e.type === type).map((e) => e.version));
    for (let v = low; v <= top; v++) {
      const e = compiled.get(`${type}@${v}`);
      if (!e) throw new Error(`schema registry: ${type} has no version ${v} below ${top}`);
      if (v < top && !e.upcast) throw new Error(`schema registry: ${type}@${v} has no upcast to v${v + 1}`);
    }
    if (!compiled.has(`${type}@${contract.writes}`))
      throw new Error(`schema registry: ${type} writes v${contract.writes}, which is not registered`);
  }
}
checkRegistry();

/**
 * Tolerant readers: for a type whose mode promises forward compatibility (`forward`, `full`),
 * an event of a version newer than any this reader knows is read with the highest known
 * version's schema, ignoring (and dropping) the properties it does not know. The gate has
 * checked that such a version only adds optional fields and widens nothing a reader relies
 * on. Known versions stay strict: an unknown field there is a producer bug, parked.
 */
const tolerant = new Map<string, { schema: TSchema; check: TypeCheck<TSchema> }>(
  SchemaRegistry.filter(
    (e) => e.version === READ_VERSION[e.type] && EventContracts[e.type].mode !== "backward",
  ).map((e) => [e.type, { schema: e.schema, check: TypeCompiler.Compile(openSchema(e.schema)) }]),
);

/**
 * The schema with every object open to unknown properties (the read side of a closed write
 * schema). TypeBox marks its schemas with symbol keys, which the copy keeps.
 */
function openSchema(schema: TSchema): TSchema {
  const open = (node: unknown): unknown => {
    if (Array.isArray(node)) return node.map(open);
    if (typeof node !== "object" || node === null) return node;
    const source = node as Record<string | symbol, unknown>;
    const out: Record<string | symbol, unknown> = {};
    for (const k of Reflect.ownKeys(source))
      if (!(k === "additionalProperties" && source[k] === false)) out[k] = open(source[k]);
    return out;
  };
  return open(schema) as TSchema;
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
  return packBody(env);
}

/** A message's headers as NATS gives them (`MsgHdrs`): `get` answers "" for a missing one. */
export interface HeaderLookup {
  get(name: string): string | undefined;
}

/**
 * Decodes and validates a MessagePack body, lifting older schema versions to the one
 * readers see (READ_VERSION), and reading a version newer than this reader knows with the
 * newest it knows where the type's mode allows (unknown properties dropped).
 * @throws ContractError when the bytes are not MessagePack, the envelope is
 * malformed, the type or version is unknown, or a field breaks its schema.
 */
export function decodeEvent(bytes: Uint8Array): AnyEnvelope {
  const value = unpackBody(bytes);
  if (!envelopeCheck.Check(value))
    throw new ContractError("invalid envelope", issuesOf(envelopeCheck, value, ""));
  const env = value as Envelope;
  const entry = compiled.get(`${env.type}@${env.version}`);
  if (!entry) return readNewer(env);
  if (!entry.check.Check(env.data))
    throw new ContractError(`invalid ${env.type}`, issuesOf(entry.check, env.data, "/data"));
  return lift(env, entry);
}

/**
 * {@link decodeEvent} for a message with its headers, as every reader of a stream should call
 * it: an envelope without `actor` takes the API client from the `Jetmesh-Client-Id` header
 * ({@link actorOf}: the envelope first, the header as the fallback while producers write
 * both, README "Evolving the envelope").
 * @throws ContractError as {@link decodeEvent}.
 */
export function decodeMessage(bytes: Uint8Array, headers: HeaderLookup | undefined): AnyEnvelope {
  const env = decodeEvent(bytes);
  if (env.actor === undefined && headers) {
    const actor = actorOf(env, headers.get(Headers.ClientId));
    if (actor !== undefined) env.actor = actor;
  }
  return env;
}

/** Lifts a validated event through its upcasters to the version readers see. */
function lift(env: Envelope, entry: CompiledEntry): AnyEnvelope {
  let at = entry;
  while (at.upcast) {
    env.data = at.upcast(env.data) as EventDataMap[EventType];
    env.version += 1;
    const next = compiled.get(`${env.type}@${env.version}`);
    if (!next) break; // unreachable: checkRegistry refuses a chain with a gap
    at = next;
  }
  return env as AnyEnvelope;
}

/** An event of a version this reader does not know: read tolerantly where the mode allows. */
function readNewer(env: Envelope): AnyEnvelope {
  const known = READ_VERSION[env.type as EventType];
  const reader = tolerant.get(env.type);
  if (known === undefined || env.version < known || !reader) {
    throw new ContractError("unknown event", [
      { field: "/type", rule: `no schema for ${env.type}@${env.version}` },
    ]);
  }
  if (!reader.check.Check(env.data)) {
    throw new ContractError(
      `invalid ${env.type}@${env.version} read as v${known}`,
      issuesOf(reader.check, env.data, "/data"),
    );
  }
  env.data = Value.Clean(reader.schema, env.data) as EventDataMap[EventType];
  env.version = known;
  return env as AnyEnvelope;
}

/**
 * Builds an envelope at the version producers write for its type (CURRENT_VERSION), which
 * may be older than the shape readers see: fields of a newer version are then refused by
 * {@link encodeEvent}.
 */
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
    // Envelope v2's field, written once producers write v2 (EnvelopeContract.writes).
    ...(lineage.actor !== undefined && EnvelopeContract.writes >= 2 ? { actor: lineage.actor } : {}),
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
    // The dual-publish window: envelope fields producers still mirror into a header.
    ...Object.fromEntries(
      Object.entries(EnvelopeContract.headerMirrors).flatMap(([field, header]) => {
        const v = (env as Record<string, unknown>)[field];
        return typeof v === "string" ? [[header, v]] : [];
      }),
    ),
  };
}
