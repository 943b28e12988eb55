import { ContractError } from "./errors.ts";
import { type StreamDefinition, type StreamName, Streams } from "./streams.ts";

/**
 * Dev isolation (`JETMESH_NAMESPACE`): many developers share one dev nats-server and Redis,
 * each in a namespace of their own. Every name a process gives the servers goes through
 * {@link namesFor}; the empty namespace is production's, where every name is exactly the
 * contracts' own.
 *
 * The scheme, for namespace `alice`:
 * - streams `alice_INGRESS`, and their subjects `alice.transfers.requested.*`: JetStream refuses
 *   two streams whose subjects overlap, so the subjects are prefixed too;
 * - KV buckets `alice_jetmesh-positions`, `alice_jetmesh-schemas`, `alice_ledger-snapshots`, …;
 * - Redis keys `alice:validator:<eventId>`, `alice:ledger:bal:<account>`, … (the runtime's
 *   Redis client prefixes every key it sends, Lua scripts' KEYS included);
 * - durable consumers keep their stage's name: a durable lives inside its stream, so
 *   `validator` on `alice_INGRESS` and on `bob_INGRESS` are two consumers that never meet.
 * Headers, event types and envelope contents are the same in every namespace.
 */
export interface Names {
  /** The namespace; "" for none (production). */
  readonly namespace: string;
  /** Every stream of {@link Streams}, keyed by its contract name, with its name and subjects here. */
  readonly streams: Readonly<Record<StreamName, StreamDefinition<string>>>;
  /** A stream's name on the server: `INGRESS` → `alice_INGRESS`. */
  stream(name: string): string;
  /** A stream's contract name from its name on the server, or undefined when it is not of this namespace. */
  streamOf(serverName: string): string | undefined;
  /** A subject (or filter) on the server: `transfers.requested.07` → `alice.transfers.requested.07`. */
  subject(subject: string): string;
  /** A subject as the contracts name it: `alice.dlq.risk` → `dlq.risk`; others unchanged. */
  local(subject: string): string;
  /** A KV bucket's name on the server: `jetmesh-positions` → `alice_jetmesh-positions`. */
  bucket(name: string): string;
  /** What precedes every Redis key: `alice:`, or "" without a namespace. */
  readonly redisPrefix: string;
}

/** Lower-case letters and digits, dashes inside, at most 24: safe in stream, subject, bucket and key names. */
export const NAMESPACE_PATTERN = /^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$/;
const NAMESPACE_MAX = 24;

/** Why `namespace` cannot be one, or undefined when it can ("" is production's, always valid). */
export function namespaceProblem(namespace: string): string | undefined {
  if (namespace === "") return undefined;
  if (namespace.length > NAMESPACE_MAX || !NAMESPACE_PATTERN.test(namespace))
    return `must be lower-case letters and digits, dashes inside, starting with a letter, at most ${NAMESPACE_MAX} characters (it prefixes stream, subject, bucket and Redis key names)`;
  return undefined;
}

const cache = new Map<string, Names>();

/**
 * The names of everything in `namespace` (undefined or "" for production's). The one place
 * that knows the scheme: the runtime, the services, the tools and the generated permissions
 * and deploy files all resolve through it.
 * @throws ContractError for a namespace {@link namespaceProblem} refuses.
 */
export function namesFor(namespace: string | undefined = ""): Names {
  const hit = cache.get(namespace);
  if (hit) return hit;
  const problem = namespaceProblem(namespace);
  if (problem)
    throw new ContractError(`namespace ${JSON.stringify(namespace)}`, [
      { field: "/namespace", rule: problem },
    ]);
  const names = namespace ? prefixed(namespace) : production();
  cache.set(namespace, names);
  return names;
}

function production(): Names {
  return {
    namespace: "",
    streams: Streams,
    stream: (name) => name,
    // A stream of some namespace (`alice_INGRESS`) is not production's.
    streamOf: (serverName) => (/^[a-z][a-z0-9-]*_/.test(serverName) ? undefined : serverName),
    subject: (subject) => subject,
    local: (subject) => subject,
    bucket: (name) => name,
    redisPrefix: "",
  };
}

function prefixed(ns: string): Names {
  const streamPrefix = `${ns}_`;
  const subjectPrefix = `${ns}.`;
  const subject = (s: string) => `${subjectPrefix}${s}`;
  const streams = Object.fromEntries(
    Object.entries(Streams).map(([key, def]) => [
      key,
      { ...def, name: `${streamPrefix}${def.name}`, subjects: def.subjects.map(subject) },
    ]),
  ) as unknown as Readonly<Record<StreamName, StreamDefinition<string>>>;
  return {
    namespace: ns,
    streams,
    stream: (name) => `${streamPrefix}${name}`,
    streamOf: (serverName) =>
      serverName.startsWith(streamPrefix) ? serverName.slice(streamPrefix.length) : undefined,
    subject,
    local: (s) => (s.startsWith(subjectPrefix) ? s.slice(subjectPrefix.length) : s),
    bucket: (name) => `${streamPrefix}${name}`,
    redisPrefix: `${ns}:`,
  };
}
