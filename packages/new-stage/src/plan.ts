import { existsSync } from "node:fs";
import { join } from "node:path";
import { readManifests } from "@jetmesh/catalog";
import {
  AllEventTypes,
  checkEventData,
  type EventType,
  StreamNames,
  Streams,
  streamOf,
  TeamStreams,
} from "@jetmesh/contracts";

/** A request the generator refuses; the message says what to change. The CLI exits 2 on it. */
export class NewStageError extends Error {
  override readonly name = "NewStageError";
}

/** What `pnpm new:stage` was asked for. */
export interface NewStageRequest {
  readonly name: string;
  /** The event type it consumes: one the contracts define. */
  readonly consumes: string;
  /** The event type it emits: one of its own stream, or a new one (see {@link StagePlan.contract}). */
  readonly emits: string;
  /** Its output stream; default the emitted type's domain in capitals (`notifications.x` → NOTIFICATIONS). */
  readonly stream?: string;
}

/** The contract entry the stage needs and the contracts do not have yet. */
export type MissingContract =
  /** A new stream, with the emitted event: a new entry of TeamStreams. */
  | { readonly kind: "stream" }
  /** The stream is the stage's already (an entry of TeamStreams); the event is one more line of it. */
  | { readonly kind: "event" };

/** Everything the files are made from, checked. */
export interface StagePlan {
  readonly name: string;
  readonly consumes: EventType;
  /** The stream the consumed type is stored in. */
  readonly inputStream: string;
  readonly emits: string;
  readonly outputStream: string;
  /** The first HTTP port no manifest uses, from 8081. */
  readonly port: number;
  /** What to add to the contracts first; undefined when they define the output already. */
  readonly contract?: MissingContract;
  /** A valid `consumes` event's data, for the scaffolded test. */
  readonly sampleInput: Readonly<Record<string, unknown>>;
}

const NAME = /^[a-z][a-z0-9-]{0,31}$/;
const EVENT = /^[a-z][a-z0-9-]*\.[a-z][a-z0-9-]*$/;
const STREAM = /^[A-Z][A-Z0-9_]{0,31}$/;
/** Names a stage may not take: the DLQ's owner and the tools' Redis and NATS users. */
const RESERVED = new Set(["platform", "deploy", "ops", "admin", "replica", "default", "dlq", "sys"]);

/** The transfer fields every event carries, as the scaffolded test's input has them. */
const TRANSFER = {
  transferId: "t-1",
  from: "acc-alice",
  to: "acc-bob",
  amountMinor: 250_000,
  currency: "EUR",
};
/** What each event type of the reference pipeline adds to the transfer fields, for a valid sample. */
const SAMPLE_EXTRAS: Readonly<Record<string, Readonly<Record<string, unknown>>>> = {
  "transfers.requested": { requestedAt: "2026-11-30T10:00:00.000Z" },
  "transfers.rejected": { reasons: [{ field: "/currency", rule: "must be one of EUR" }] },
  "transfers.scored": { score: 10, decision: "allow", factors: [] },
  "ledger.posted": { decision: "allow" },
  "ledger.declined": { reason: "insufficient_funds" },
  "ledger.reversed": { reason: "bank refused" },
  "payouts.completed": { bankReference: "ref-1" },
  "payouts.failed": { reason: "account closed", bankStatus: 422 },
};

/**
 * Checks a request against the services folder and the contracts, and works out the stage.
 * @throws NewStageError naming the argument at fault and what would be accepted.
 */
export function planStage(req: NewStageRequest, servicesDir: string): StagePlan {
  const { name, consumes, emits } = req;
  if (!NAME.test(name))
    throw new NewStageError(
      `name "${name}": must be lower-case letters, digits and dashes, starting with a letter, at most 32 (it is the durable consumer, the Redis key prefix and the producer)`,
    );
  if (RESERVED.has(name)) throw new NewStageError(`name "${name}" is reserved (a platform or tool user)`);
  const manifests = readManifests(servicesDir);
  if (existsSync(join(servicesDir, name)) || manifests.some((m) => m.name === name))
    throw new NewStageError(`name "${name}" is taken: services/${name} exists`);

  if (!(AllEventTypes as readonly string[]).includes(consumes))
    throw new NewStageError(
      `--consumes ${consumes}: not an event type of @jetmesh/contracts (known: ${AllEventTypes.join(", ")})`,
    );
  const consumed = consumes as EventType;
  if (!EVENT.test(emits))
    throw new NewStageError(
      `--emits ${emits}: an event type is <domain>.<event>, lower-case letters, digits and dashes (e.g. notifications.large-posting)`,
    );
  if (emits === consumes) throw new NewStageError(`--emits ${emits}: a stage does not emit what it consumes`);

  const known = (AllEventTypes as readonly string[]).includes(emits);
  const outputStream = known
    ? streamOf(emits as EventType).name
    : (req.stream ?? (emits.split(".")[0] as string).toUpperCase().replaceAll("-", "_"));
  if (!STREAM.test(outputStream))
    throw new NewStageError(`--stream ${outputStream}: a stream name is capitals, digits and _, at most 32`);
  if (req.stream !== undefined && known && req.stream !== outputStream)
    throw new NewStageError(`--stream ${req.stream}: ${emits} is stored in ${outputStream} already`);
  const existing = (Streams as Readonly<Record<string, { owner: string } | undefined>>)[outputStream];
  if (outputStream === StreamNames.Dlq || (existing && existing.owner !== name))
    throw new NewStageError(
      `${emits} would go to stream ${outputStream}, which is ${existing?.owner ?? "the platform"}'s: a stage writes its own stream (pass --stream <NAME>, or emit a type of your own)`,
    );

  const sampleInput = { ...TRANSFER, ...SAMPLE_EXTRAS[consumed] };
  if (checkEventData(consumed, sampleInput).length)
    throw new NewStageError(
      `--consumes ${consumes}: its schema has fields beyond the transfer's that the generator cannot fill; scaffold from a reference event and change the input type by hand`,
    );
  if (known && checkEventData(emits, TRANSFER).length)
    throw new NewStageError(
      `--emits ${emits}: its schema has fields beyond the transfer's; the scaffolded handler emits the transfer's fields only`,
    );

  const contract: MissingContract | undefined = known
    ? undefined
    : outputStream in TeamStreams
      ? { kind: "event" }
      : { kind: "stream" };
  return {
    name,
    consumes: consumed,
    inputStream: streamOf(consumed).name,
    emits,
    outputStream,
    port: nextFreePort(manifests),
    ...(contract ? { contract } : {}),
    sampleInput,
  };
}

/** The first port from 8081 that no manifest's ports use. */
function nextFreePort(manifests: ReturnType<typeof readManifests>): number {
  const used = new Set(manifests.flatMap((m) => (m.ports ?? []).map((p) => p.default)));
  let port = 8081;
  while (used.has(port)) port++;
  return port;
}
