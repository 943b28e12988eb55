import {
  type EventType,
  type Names,
  namesFor,
  replayDurable,
  replaySubject,
  type StreamDefinition,
  StreamNames,
  subjectFilter,
} from "@jetmesh/contracts";
import { REGISTRY_BUCKET } from "@jetmesh/contracts/evolution";
import {
  connectionNames,
  type ManifestInput,
  ownedBuckets,
  type ServiceManifest,
  usesNats,
} from "./manifests.ts";

/** Subjects a user may (allow) and may never (deny) publish or subscribe to; deny wins. */
export interface SubjectRules {
  readonly allow: readonly string[];
  readonly deny: readonly string[];
}

/** A nats-server `permissions` block. */
export interface UserPermissions {
  readonly publish: SubjectRules;
  readonly subscribe: SubjectRules;
}

/** Who a generated user is for. */
export const UserKinds = {
  /** One per service, from its manifest. */
  Service: "service",
  /** Operators: every JetStream API call, except destroying or shortening the source of truth. */
  Ops: "ops",
  /** The deploy step: creates the contracts' streams and the KV buckets, nothing else. */
  Deploy: "deploy",
  /** The system account's user (`nats server report ...`). */
  System: "system",
} as const;
export type UserKind = (typeof UserKinds)[keyof typeof UserKinds];

/** One generated user. */
export interface UserAccess {
  /** The user's name: the service name, `ops`, `deploy` or `sys`; its seed file is `<name>.nk`. */
  readonly name: string;
  readonly kind: UserKind;
  /** Account it belongs to. */
  readonly account: string;
  /** Connection names it is expected to use (services: the inbox prefixes it may subscribe to). */
  readonly connectionNames: readonly string[];
  /** Undefined for the system user: the system account has no JetStream and no application data. */
  readonly permissions?: UserPermissions;
}

/** The authorization of the mesh: its accounts and users. */
export interface NatsAccess {
  /** The account holding JetStream and every pipeline user. */
  readonly account: string;
  /** The system account (`system_account`). */
  readonly systemAccount: string;
  readonly users: readonly UserAccess[];
}

/** Options of {@link natsAccess}. */
export interface NatsAccessOptions {
  /** The services' manifests ({@link readManifests}); those that do not speak NATS get no user. */
  readonly services: readonly ServiceManifest[];
  /** Stream definitions (default: the contracts' `Streams`). */
  readonly streams?: Readonly<Record<string, StreamDefinition>>;
  /**
   * The KV bucket of consumer positions every stage shares, one key `<STREAM>.<durable>` per
   * consumer (default `jetmesh-positions`, `POSITIONS_BUCKET` of @jetmesh/stage).
   */
  readonly positionsBucket?: string;
  /**
   * Whether a service may create, when missing, what the runtime creates at start (default
   * true): its own output streams (not a deploy-only one: LEDGER), the DLQ, the positions
   * bucket and its own buckets. False leaves every creation to the deploy user.
   */
  readonly runtimeCreates?: boolean;
  /** Account name (default `JETMESH`). */
  readonly account?: string;
  /** System account name (default `SYS`). */
  readonly systemAccount?: string;
  /**
   * Dev isolation (JETMESH_NAMESPACE): every stream, subject and bucket named as in that
   * namespace (`namesFor`); default none, production's names. `streams` defaults to its streams.
   */
  readonly namespace?: string;
}

const API = "$JS.API";

/** The inbox prefix of a connection name, as `inboxPrefixOf` in @jetmesh/stage derives it. */
export function inboxPrefixOf(name: string): string {
  return `_INBOX_${name.replace(/[^A-Za-z0-9_-]/g, "_")}`;
}

/** JetStream calls no service may make: destroying, shortening or reconfiguring a stream. */
export const SERVICE_DENIED_API: readonly string[] = [
  `${API}.STREAM.DELETE.>`,
  `${API}.STREAM.PURGE.>`,
  `${API}.STREAM.MSG.DELETE.>`,
  `${API}.STREAM.UPDATE.>`,
];

/** Ordered, de-duplicated subject lists. */
class Rules {
  readonly #allow = new Set<string>();
  readonly #deny = new Set<string>();
  allow(...subjects: string[]): this {
    for (const s of subjects) this.#allow.add(s);
    return this;
  }
  deny(...subjects: string[]): this {
    for (const s of subjects) this.#deny.add(s);
    return this;
  }
  done(): SubjectRules {
    return { allow: [...this.#allow], deny: [...this.#deny] };
  }
}

/**
 * The filter subject the runtime gives a durable consumer (run-stage.ts): none when the
 * input takes every type of its stream, the type's subjects when it takes exactly one, and
 * none otherwise (nats-server 2.9 takes a single filter; the processor skips other types).
 */
export function durableFilterOf(input: ManifestInput, def: StreamDefinition<string>): string | undefined {
  const wholeStream = def.eventTypes.every((t) => input.types.includes(t));
  const only = input.types[0];
  return !wholeStream && input.types.length === 1 && only ? subjectFilter(only as EventType) : undefined;
}

/** Everything one durable consumer of the runtime needs (provision.ts, consume-loop.ts). */
function durableConsumer(pub: Rules, input: ManifestInput, def: StreamDefinition<string>, n: Names): void {
  const filter = durableFilterOf(input, def);
  durableOf(pub, def.name, input.durable, filter === undefined ? undefined : n.subject(filter));
}

/** A durable's info, its creation with its own filter, its pulls and the acks of what it is delivered. */
function durableOf(pub: Rules, stream: string, durable: string, filter: string | undefined): void {
  pub.allow(
    `${API}.CONSUMER.INFO.${stream}.${durable}`,
    // nats.js (2.9+ servers) names the consumer, and its filter when it has one, in the subject:
    // the stage can create its own durable, with its own filter, and no other.
    `${API}.CONSUMER.CREATE.${stream}.${durable}${filter ? `.${filter}` : ""}`,
    `${API}.CONSUMER.MSG.NEXT.${stream}.${durable}`,
    // ack, nak, term, working: the reply subject of each message delivered to it
    `$JS.ACK.${stream}.${durable}.>`,
  );
}

/**
 * Ordered consumers (ephemeral, named by the client: a `*` for the name) on a stream: create
 * them (with `filter` in the subject when they have one), read their info after a reconnect,
 * and delete them on a reset.
 */
function orderedConsumers(pub: Rules, stream: string, filter?: string): void {
  pub.allow(
    `${API}.CONSUMER.CREATE.${stream}.*${filter ? `.${filter}` : ""}`,
    `${API}.CONSUMER.INFO.${stream}.*`,
    `${API}.CONSUMER.DELETE.${stream}.*`,
  );
}

/** Validates the manifests against the stream definitions; every problem at once. */
function check(
  services: readonly ServiceManifest[],
  streams: Readonly<Record<string, StreamDefinition<string>>>,
) {
  const problems: string[] = [];
  const known = (where: string, stream: string) => {
    if (!streams[stream]) problems.push(`${where}: unknown stream ${stream}`);
  };
  for (const m of services) {
    for (const i of m.inputs ?? []) {
      known(`${m.name} input`, i.stream);
      if (!/^[A-Za-z0-9_-]+$/.test(i.durable ?? ""))
        problems.push(`${m.name} input on ${i.stream}: durable ${JSON.stringify(i.durable)} is not a name`);
    }
    for (const o of m.outputs ?? []) {
      known(`${m.name} output`, o.stream);
      const def = streams[o.stream];
      for (const t of o.types) {
        if (def && !def.eventTypes.includes(t as EventType))
          problems.push(`${m.name} output: ${o.stream} does not store ${t}`);
      }
      if (def && def.eventTypes.length === 0 && def.owner !== m.name && o.stream !== "DLQ")
        problems.push(`${m.name} output: ${o.stream} is written by ${def.owner} alone`);
    }
    for (const f of m.follows ?? []) known(`${m.name} follows`, f.stream);
    for (const w of m.watches ?? []) known(`${m.name} watches`, w.stream);
    if (m.dlq !== undefined && !/^dlq\.[A-Za-z0-9_-]+$/.test(m.dlq))
      problems.push(`${m.name}: dlq ${JSON.stringify(m.dlq)} is not dlq.<stage>`);
  }
  if (problems.length) throw new Error(`manifests do not match the contracts:\n  ${problems.join("\n  ")}`);
}

/**
 * The permissions of one service, from its manifest: exactly the subjects the runtime, and
 * the service's own code the manifest describes, use.
 */
function servicePermissions(
  m: ServiceManifest,
  all: readonly ServiceManifest[],
  streams: Readonly<Record<string, StreamDefinition<string>>>,
  o: { positionsBucket: string; runtimeCreates: boolean; names: Names },
): UserPermissions {
  const pub = new Rules();
  const sub = new Rules();
  // Manifests name streams, subjects and buckets as the contracts do; the server, as the namespace does.
  const n = o.names;
  const stream = (name: string) => (streams[name] as StreamDefinition<string>).name;
  const pos = n.bucket(o.positionsBucket);
  // Account info: jetstreamManager() asks it once to see that JetStream answers.
  pub.allow(`${API}.INFO`);
  // Replies (API answers, PubAcks, pulled messages) come to the connection's own inbox.
  for (const c of connectionNames(m)) sub.allow(`${inboxPrefixOf(c)}.>`);

  const streamInfo = (s: string) => pub.allow(`${API}.STREAM.INFO.${s}`);
  const create = (s: string) => {
    if (o.runtimeCreates) pub.allow(`${API}.STREAM.CREATE.${s}`);
  };

  for (const i of m.inputs ?? []) {
    const s = stream(i.stream);
    streamInfo(s);
    // A message that exhausted its deliveries is read back by sequence to be parked.
    pub.allow(`${API}.STREAM.MSG.GET.${s}`);
    durableConsumer(pub, i, streams[i.stream] as StreamDefinition<string>, n);
    sub.allow(`$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.${s}.${i.durable}`);
    // Its own position records, and no other consumer's.
    pub.allow(`$KV.${pos}.${s}.${i.durable}`, `${API}.DIRECT.GET.KV_${pos}.$KV.${pos}.${s}.${i.durable}`);
  }
  if (m.inputs?.length) {
    streamInfo(`KV_${pos}`);
    create(`KV_${pos}`);
  }
  // Operators' replays of what the stage parked: its durable `<stage>-replay` on REPLAY,
  // filtered on `replay.<stage>` (run-stage.ts; the stage is its inputs' durable). It may look
  // whether REPLAY exists, never create it, and never publish to it.
  const stages = [...new Set((m.inputs ?? []).map((i) => i.durable))];
  if (stages.length && streams[StreamNames.Replay]) {
    const replay = stream(StreamNames.Replay);
    streamInfo(replay);
    for (const stage of stages) {
      const durable = replayDurable(stage);
      durableOf(pub, replay, durable, n.subject(replaySubject(stage)));
      pub.allow(
        `$KV.${pos}.${replay}.${durable}`,
        `${API}.DIRECT.GET.KV_${pos}.$KV.${pos}.${replay}.${durable}`,
      );
    }
  }

  for (const out of m.outputs ?? []) {
    const def = streams[out.stream] as StreamDefinition<string>;
    streamInfo(def.name);
    if (def.createdAtRuntime) create(def.name);
    // A duplicate PubAck is checked against the stored message; the gateway reads its requests back.
    pub.allow(`${API}.STREAM.MSG.GET.${def.name}`);
    for (const t of out.types) pub.allow(n.subject(subjectFilter(t as EventType)));
    // A stream that stores no pipeline event (RECONCILE) is written on its own subjects, by
    // its owner alone.
    if (def.eventTypes.length === 0 && def.owner === m.name) pub.allow(...def.subjects);
  }

  if (m.dlq) {
    pub.allow(n.subject(m.dlq));
    streamInfo(stream(StreamNames.Dlq));
    create(stream(StreamNames.Dlq));
  }

  const wildcardStreams: string[] = [];
  for (const f of m.follows ?? []) {
    const s = stream(f.stream);
    streamInfo(s);
    pub.allow(`${API}.STREAM.MSG.GET.${s}`, `${API}.CONSUMER.MSG.NEXT.${s}.*`);
    orderedConsumers(pub, s);
    wildcardStreams.push(f.stream);
  }

  for (const w of m.watches ?? []) {
    const s = stream(w.stream);
    pub.allow(`${API}.CONSUMER.INFO.${s}.${w.durable}`);
    // What the consumer's stage declares for it, recorded next to its position: read only.
    pub.allow(`${API}.DIRECT.GET.KV_${pos}.$KV.${pos}.${s}.${w.durable}`);
  }
  if (m.watches?.length) {
    streamInfo(`KV_${pos}`);
    // A bucket without direct get is read by sequence/subject (positions only, read-only).
    pub.allow(`${API}.STREAM.MSG.GET.KV_${pos}`);
  }

  // The schema registry, read at start (read only: the deploy step publishes it).
  if (m.inputs?.length || m.outputs?.length) {
    const registry = n.bucket(REGISTRY_BUCKET);
    const reg = `KV_${registry}`;
    streamInfo(reg);
    pub.allow(`${API}.STREAM.MSG.GET.${reg}`, `${API}.DIRECT.GET.${reg}.$KV.${registry}.>`);
  }

  for (const b of ownedBuckets(m).map(n.bucket)) {
    const s = `KV_${b}`;
    streamInfo(s);
    create(s);
    pub.allow(`$KV.${b}.>`, `${API}.DIRECT.GET.${s}.$KV.${b}.>`);
    // Listing keys (kv.keys) is an ordered push consumer filtered on the bucket's keys, with
    // flow control (the client answers the server's $JS.FC requests).
    orderedConsumers(pub, s, `$KV.${b}.>`);
    pub.allow(`$JS.FC.${s}.>`);
  }

  pub.deny(...SERVICE_DENIED_API);
  // Where it may name consumers freely (ordered ones), it still may not touch another
  // service's durable: neither pull its messages nor delete or redefine it.
  for (const s of wildcardStreams) {
    for (const other of all) {
      if (other.name === m.name) continue;
      for (const i of other.inputs ?? []) {
        if (i.stream !== s) continue;
        pub.deny(
          `${API}.CONSUMER.CREATE.${stream(s)}.${i.durable}`,
          `${API}.CONSUMER.DELETE.${stream(s)}.${i.durable}`,
          `${API}.CONSUMER.MSG.NEXT.${stream(s)}.${i.durable}`,
        );
      }
    }
  }
  return { publish: pub.done(), subscribe: sub.done() };
}

/**
 * Streams nothing may destroy or shorten, ops included: those whose definition denies purge
 * (LEDGER, the source of truth; AUDIT, the operators' trail). Being deploy-only is not the
 * reason: REPLAY is deploy-only and holds nothing that must outlive its stage's run.
 */
function protectedStreams(streams: Readonly<Record<string, StreamDefinition<string>>>): string[] {
  return Object.values(streams)
    .filter((d) => d.denyPurge)
    .map((d) => d.name);
}

/**
 * Generates the mesh's NATS authorization from the services' manifests and the contracts:
 * one user per service that speaks NATS, allowed exactly the subjects its stage needs (its
 * output subjects and DLQ subject, its own durable consumers, acks and position records, the
 * JetStream calls the runtime makes for them, its own KV buckets, the replies to its own
 * inbox), with explicit denies for deleting, purging or reconfiguring any stream; an `ops`
 * user (every JetStream API call, `replay.>` and `audit.>` but no event subject, never deleting
 * or purging LEDGER or AUDIT); a
 * `deploy` user (creates the contracts' streams and the buckets, nothing else); and a `sys`
 * user in the system account. Pure: no keys, no files ({@link writeNatsAccess} does those).
 * @throws Error listing every manifest entry that names an unknown stream or type.
 */
export function natsAccess(opts: NatsAccessOptions): NatsAccess {
  const n = namesFor(opts.namespace);
  const streams: Readonly<Record<string, StreamDefinition<string>>> = opts.streams ?? n.streams;
  const positionsBucket = opts.positionsBucket ?? "jetmesh-positions";
  const runtimeCreates = opts.runtimeCreates ?? true;
  const account = opts.account ?? "JETMESH";
  const systemAccount = opts.systemAccount ?? "SYS";
  const services = opts.services.filter(usesNats);
  check(services, streams);
  const names = new Set<string>();
  for (const m of services) {
    if (names.has(m.name)) throw new Error(`two manifests name the service ${m.name}`);
    names.add(m.name);
  }
  for (const reserved of ["ops", "deploy", "sys"])
    if (names.has(reserved)) throw new Error(`a service may not be named ${reserved}`);

  const users: UserAccess[] = services.map((m) => ({
    name: m.name,
    kind: UserKinds.Service,
    account,
    connectionNames: connectionNames(m),
    permissions: servicePermissions(m, services, streams, { positionsBucket, runtimeCreates, names: n }),
  }));

  const guarded = protectedStreams(streams);
  users.push({
    name: "ops",
    kind: UserKinds.Ops,
    account,
    connectionNames: [],
    permissions: {
      // Operators' own subjects: replays of parked messages (`jetmesh dlq replay`) and their
      // audit trail; never an event subject. Reading and deleting DLQ entries are API calls.
      publish: new Rules()
        .allow(`${API}.>`, "$JS.ACK.>", "$JS.FC.>", "$KV.>", n.subject("replay.>"), n.subject("audit.>"))
        .deny(
          ...guarded.flatMap((s) => [
            `${API}.STREAM.DELETE.${s}`,
            `${API}.STREAM.PURGE.${s}`,
            `${API}.STREAM.MSG.DELETE.${s}`,
          ]),
        )
        .done(),
      // The nats CLI's default inbox, and advisories; events are read through consumers.
      subscribe: new Rules().allow("_INBOX.>", "$JS.EVENT.>").done(),
    },
  });

  const buckets = [positionsBucket, REGISTRY_BUCKET, ...services.flatMap(ownedBuckets)].map(n.bucket);
  const registry = n.bucket(REGISTRY_BUCKET);
  const deployable = [...Object.values(streams).map((d) => d.name), ...buckets.map((b) => `KV_${b}`)];
  users.push({
    name: "deploy",
    kind: UserKinds.Deploy,
    account,
    connectionNames: [],
    permissions: {
      publish: new Rules()
        .allow(
          `${API}.INFO`,
          `${API}.STREAM.NAMES`,
          `${API}.STREAM.LIST`,
          ...deployable.flatMap((s) => [`${API}.STREAM.INFO.${s}`, `${API}.STREAM.CREATE.${s}`]),
          // Publishing the schema registry (pnpm contracts:publish): each key is read, then written when it differs.
          `$KV.${registry}.>`,
          `${API}.STREAM.MSG.GET.KV_${registry}`,
          `${API}.DIRECT.GET.KV_${registry}.$KV.${registry}.>`,
        )
        .deny(...SERVICE_DENIED_API)
        .done(),
      subscribe: new Rules().allow("_INBOX.>").done(),
    },
  });
  users.push({ name: "sys", kind: UserKinds.System, account: systemAccount, connectionNames: [] });
  return { account, systemAccount, users };
}
