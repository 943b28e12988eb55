import {
  EventTypes,
  Headers,
  LedgerProjection,
  type Names,
  namesFor,
  StreamNames,
  Streams,
} from "@jetmesh/contracts";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import type { Balances, BalanceSource } from "./invariants-balances.ts";
import {
  readStoredEvents,
  type StoredEvent,
  type StreamPosition,
  streamPosition,
} from "./invariants-read.ts";

/**
 * The invariant checker: reads the pipeline's streams directly (a plain JetStream client
 * and the contracts codec) and the live balances from outside the ledger, and reports
 * every way BRIEF.md's I1 to I6 are broken. It shares no code with the stages, so a bug
 * in a stage cannot hide itself from the check.
 */

/** The invariants of BRIEF.md. */
export const Invariants = {
  I1: "no loss: every accepted transfer reaches exactly one terminal outcome",
  I2: "no duplicate effect: a transfer moves money at most once and is reversed at most once",
  I3: "conservation: every currency's balances, external included, sum to 0",
  I4: "determinism: folding LEDGER from its first message gives the live balances",
  I5: "lineage: eventId, correlationId, an existing cause, traceparent, one trace per transfer",
  I6: "flow: every DLQ message carries its reason",
  S1: "solvency: folding LEDGER up to any sequence leaves no account but external below 0",
  M1: "mint authority: money enters from external only for a request an authorised minter made, as requested",
} as const;
export type InvariantName = keyof typeof Invariants;
const ALL = Object.keys(Invariants) as InvariantName[];

/** A transfer the gateway answered 202 for (extra fields are ignored). */
export interface AcceptedTransfer {
  readonly transferId: string;
  /** Accounts to include in the balance checks even when LEDGER never names them. */
  readonly from?: string;
  readonly to?: string;
}

/** Names one stored message in a violation. */
export interface EventRef {
  readonly type: string;
  readonly stream: string;
  readonly seq: number;
  readonly eventId?: string;
  /** Stream store time, ms since the epoch. */
  readonly timestampMs: number;
}

/** One broken invariant, as precise as the log allows. */
export interface Violation {
  readonly invariant: InvariantName;
  readonly transferId?: string;
  readonly message: string;
  readonly events: readonly EventRef[];
}

/** What happened to one transfer, by its terminal events. */
export type TransferOutcome = "rejected" | "declined" | "posted" | "reversed" | "lost" | "multiple" | "aged";

/** A checked transfer: its outcome and the events that decided it. */
export interface TransferView {
  readonly transferId: string;
  readonly outcome: TransferOutcome;
  /** The first terminal event (transfers.rejected, ledger.declined or ledger.posted). */
  readonly terminal?: EventRef;
  /** The first ledger.reversed. */
  readonly reversal?: EventRef;
}

/** Numbers of the check; outcomes count the transfers checked for I1. */
export interface InvariantCounts {
  /** Transfers checked for I1 (the accepted ones, or every requested one when none were given). */
  accepted: number;
  rejected: number;
  declined: number;
  /** Posted and not reversed. */
  posted: number;
  /** Posted, then reversed once. */
  reversed: number;
  lost: number;
  /** More than one terminal outcome. */
  multiple: number;
  /**
   * Accepted transfers requested before what the streams still hold (their retention
   * dropped the oldest messages: `agedBeforeMs`) with no outcome left to see: LEDGER keeps
   * everything, so such a transfer was either rejected by the validator (VALIDATION
   * dropped it) or lost. Not a violation; a run without rejections expects 0.
   */
  aged: number;
  /**
   * Store time before which some event stream (not LEDGER, not the DLQ) dropped messages:
   * transfers requested after it are checked whole, older ones by what is left (LEDGER).
   * Absent when no stream dropped anything.
   */
  agedBeforeMs?: number;
  /** Transfers requested in INGRESS that were not in `accepted` (not checked for I1). */
  unaccepted: number;
  /** Messages in the DLQ. */
  dlq: number;
  /** Accounts whose balances were compared. */
  accounts: number;
  /** Messages read per stream. */
  events: Record<string, number>;
}

/** The checker's answer. */
export interface InvariantReport {
  /** True when no checked invariant is broken. */
  readonly ok: boolean;
  readonly checked: readonly InvariantName[];
  /** Invariants that could not be checked, and why (e.g. no balance source). */
  readonly skipped: readonly { readonly invariant: InvariantName; readonly why: string }[];
  readonly counts: InvariantCounts;
  /** The violations, I1 first; at most `maxViolations` per invariant. */
  readonly violations: readonly Violation[];
  /** Every violation found per invariant, including those left out of `violations`. */
  readonly violationCounts: Readonly<Record<InvariantName, number>>;
  /** Live sum of every balance per currency (decimal strings). */
  readonly totals: Readonly<Record<string, string>>;
  /** Checked transfers by id. */
  readonly transfers: ReadonlyMap<string, TransferView>;
}

/** Options of {@link checkInvariants}. Give `nc` or `natsUrl`. */
export interface CheckInvariantsOptions {
  /** A connection to use (left open). */
  readonly nc?: NatsConnection;
  /** Or a URL to connect to (the connection is closed at the end). */
  readonly natsUrl?: string;
  /** The transfers the gateway answered 202 for; default: every transfers.requested in INGRESS. */
  readonly accepted?: readonly AcceptedTransfer[];
  /** Live balances (gatewayBalances / redisBalances); without it I3 and I4 are skipped. */
  readonly balances?: BalanceSource;
  /** More accounts to compare (besides those LEDGER, the source's list and `accepted` name). */
  readonly accounts?: readonly string[];
  /** Check only these invariants (default all six). */
  readonly only?: readonly InvariantName[];
  /** Violations kept per invariant (default 200); all are counted. */
  readonly maxViolations?: number;
  /**
   * Reads again when LEDGER grew while balances were read, up to this many times
   * (default 3): balances and log must describe the same moment for I4.
   */
  readonly settleAttempts?: number;
  /**
   * The live balances are a projection of LEDGER that follows it (the ledger's Redis read
   * model): while they differ from the fold, read them again for up to this long before
   * reporting I4 (default 15 000 ms). A projection that never catches up is still reported.
   */
  readonly projectionSettleMs?: number;
  /**
   * The API clients allowed to mint (the gateway's operators). M1 holds when every posting
   * from `external` descends from a transfers.requested whose actor (the client the gateway
   * authenticated) is one of them, for the same accounts and amount. Without it M1 is skipped.
   */
  readonly minters?: readonly string[];
  /**
   * The namespace whose streams are checked (JETMESH_NAMESPACE; default none): only its
   * streams are read, named as the contracts name them, and another namespace's never are.
   */
  readonly namespace?: string;
}

/** The streams every check needs, read even when the server has none of them yet. */
const KNOWN = [
  StreamNames.Ingress,
  StreamNames.Validation,
  StreamNames.Risk,
  StreamNames.Ledger,
  StreamNames.Payouts,
  StreamNames.Dlq,
] as const;

/** KV buckets and object stores are streams too, but hold no events. */
const STORE_PREFIXES = ["KV_", "OBJ_"];

/**
 * Streams the contracts declare as records, not events (no event types: the reconciler's
 * findings, operators' actions), the DLQ aside: their messages are no envelopes, so I5 skips
 * them. A stream the contracts do not declare is still read and checked.
 */
const RECORDS: readonly string[] = Object.values(Streams)
  .filter((d) => d.eventTypes.length === 0 && d.name !== StreamNames.Dlq)
  .map((d) => d.name);

/** The event types a stage consumes to produce each type: the valid types of a cause. */
const CAUSE_TYPES: Readonly<Record<string, readonly string[] | "request">> = {
  [EventTypes.TransferRequested]: "request",
  [EventTypes.TransferValidated]: [EventTypes.TransferRequested],
  [EventTypes.TransferRejected]: [EventTypes.TransferRequested],
  [EventTypes.TransferScored]: [EventTypes.TransferValidated],
  [EventTypes.LedgerPosted]: [EventTypes.TransferScored],
  [EventTypes.LedgerDeclined]: [EventTypes.TransferScored],
  [EventTypes.LedgerReversed]: [EventTypes.PayoutFailed],
  [EventTypes.PayoutCompleted]: [EventTypes.LedgerPosted],
  [EventTypes.PayoutFailed]: [EventTypes.LedgerPosted],
};

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$/;
const ZERO_TRACE = "0".repeat(32);

const typeOf = (e: StoredEvent): string => e.env?.type ?? e.headers[Headers.EventType.toLowerCase()] ?? "?";

/** A stored message as a violation names it. */
export function eventRef(e: StoredEvent): EventRef {
  const eventId = e.env?.eventId ?? e.headers[Headers.EventId.toLowerCase()];
  return {
    type: typeOf(e),
    stream: e.stream,
    seq: e.seq,
    ...(eventId ? { eventId } : {}),
    timestampMs: e.timestampMs,
  };
}

/** transferId of a decoded event (data.transferId, which I5 checks equals correlationId). */
function transferOf(e: StoredEvent): string | undefined {
  const d = e.env?.data as { transferId?: unknown } | undefined;
  return typeof d?.transferId === "string" ? d.transferId : undefined;
}

class Collector {
  readonly violations: Violation[] = [];
  readonly counts = Object.fromEntries(ALL.map((i) => [i, 0])) as Record<InvariantName, number>;
  constructor(readonly max: number) {}
  add(v: Violation): void {
    this.counts[v.invariant] += 1;
    if (this.counts[v.invariant] <= this.max) this.violations.push(v);
  }
}

interface Snapshot {
  readonly positions: Map<string, StreamPosition>;
  readonly events: Map<string, StoredEvent[]>;
  /** See {@link InvariantCounts.agedBeforeMs}. */
  readonly agedBeforeMs: number | undefined;
}

/**
 * The time before which an event stream dropped messages (retention by age: the contracts'
 * retention plan): the store time of the first message each stream still holds, or, for a
 * stream that dropped everything, of its last message (the read time when the server does
 * not say); the latest of those. Every stream holds every message stored after it, so a
 * transfer requested after it is seen whole.
 */
function agedBefore(
  positions: ReadonlyMap<string, StreamPosition>,
  events: ReadonlyMap<string, readonly StoredEvent[]>,
  readAt: number,
): number | undefined {
  let before: number | undefined;
  for (const [name, pos] of positions) {
    if (name === StreamNames.Ledger || name === StreamNames.Dlq || !pos.exists || pos.firstSeq <= 1) continue;
    const first = events.get(name)?.[0];
    const t = first ? first.timestampMs : (pos.lastTimestampMs ?? readAt);
    before = before === undefined ? t : Math.max(before, t);
  }
  return before;
}

async function readAll(nc: NatsConnection, ns: Names): Promise<Snapshot> {
  const jsm = await jetstreamManager(nc);
  const js = jetstream(nc);
  // Every stream the server has in the namespace, not a list of ours (nor the services'
  // catalog): an output stream nobody declared is read, and its events must pass I5 like the
  // others. Streams are keyed by their contract names; another namespace's are not read.
  const names: string[] = [...KNOWN];
  for await (const server of jsm.streams.names()) {
    if (STORE_PREFIXES.some((p) => server.startsWith(p))) continue;
    const n = ns.streamOf(server);
    if (n !== undefined && !names.includes(n) && !RECORDS.includes(n)) names.push(n);
  }
  const positions = new Map<string, StreamPosition>();
  const readAt = Date.now();
  for (const [i, p] of (await Promise.all(names.map((n) => streamPosition(jsm, ns.stream(n))))).entries())
    positions.set(names[i] as string, p);
  const read = await Promise.all(
    names.map((n) =>
      readStoredEvents(js, ns.stream(n), positions.get(n) as StreamPosition, {
        decode: n !== StreamNames.Dlq,
      }),
    ),
  );
  const events = new Map<string, StoredEvent[]>();
  for (const [i, list] of read.entries()) events.set(names[i] as string, list);
  return { positions, events, agedBeforeMs: agedBefore(positions, events, readAt) };
}

/** True when every account's balances agree (a missing currency counts as 0). */
function sameBalances(a: Balances, b: Balances): boolean {
  for (const acc of new Set([...a.keys(), ...b.keys()])) {
    const x = a.get(acc) ?? new Map<string, bigint>();
    const y = b.get(acc) ?? new Map<string, bigint>();
    for (const c of new Set([...x.keys(), ...y.keys()]))
      if ((x.get(c) ?? 0n) !== (y.get(c) ?? 0n)) return false;
  }
  return true;
}

function addBalance(b: Balances, account: string, currency: string, delta: bigint): void {
  let m = b.get(account);
  if (!m) {
    m = new Map();
    b.set(account, m);
  }
  m.set(currency, (m.get(currency) ?? 0n) + delta);
}

/**
 * I4's reference: LEDGER folded from its first message as the event log states it:
 * ledger.posted debits `from` and credits `to`, ledger.reversed does the opposite with
 * its own accounts and amount, ledger.declined moves nothing. Deliberately naive: a
 * doubled posting in the log moves money twice here, which is what the log says.
 */
export function foldLedger(events: readonly LedgerEntry[]): Balances {
  const b: Balances = new Map();
  for (const e of [...events].sort((x, y) => x.seq - y.seq)) foldOne(b, e);
  return b;
}

/** What the folds need of a stored LEDGER message. */
export type LedgerEntry = Pick<StoredEvent, "seq" | "env">;

/** Applies one LEDGER event to `b`; returns the accounts it moved. */
function foldOne(b: Balances, e: LedgerEntry): readonly string[] {
  const env = e.env;
  if (env?.type !== EventTypes.LedgerPosted && env?.type !== EventTypes.LedgerReversed) return [];
  const { from, to, currency } = env.data;
  const amount = BigInt(env.data.amountMinor);
  const sign = env.type === EventTypes.LedgerPosted ? 1n : -1n;
  addBalance(b, from, currency, -sign * amount);
  addBalance(b, to, currency, sign * amount);
  return [from, to];
}

/** An account below zero after some prefix of LEDGER. */
export interface Overdraft {
  /** The LEDGER sequence whose event took it below zero. */
  readonly seq: number;
  readonly account: string;
  readonly currency: string;
  readonly balance: bigint;
}

/**
 * Folds LEDGER in sequence order and reports, per account, the first event after which an
 * account other than `external` is below zero: log order is decision order, so a ledger that
 * decided on whole balances never writes such a prefix.
 */
export function overdrafts(events: readonly LedgerEntry[]): Overdraft[] {
  const b: Balances = new Map();
  const out: Overdraft[] = [];
  const seen = new Set<string>();
  for (const e of [...events].sort((x, y) => x.seq - y.seq)) {
    for (const account of foldOne(b, e)) {
      if (account === LedgerProjection.externalAccount || seen.has(account)) continue;
      for (const [currency, balance] of b.get(account) ?? []) {
        if (balance >= 0n) continue;
        seen.add(account);
        out.push({ seq: e.seq, account, currency, balance });
      }
    }
  }
  return out;
}

/**
 * Checks I1 to I6 (or `only` some) against the streams as stored and the live balances.
 * Read the report after the pipeline is quiet: a transfer still in flight shows as lost.
 * Never throws for a broken invariant (that is a violation); throws when NATS or the
 * balance source cannot be read.
 */
export async function checkInvariants(opts: CheckInvariantsOptions): Promise<InvariantReport> {
  if (!opts.nc && !opts.natsUrl) throw new Error("checkInvariants needs nc or natsUrl");
  const nc = opts.nc ?? (await connect({ servers: opts.natsUrl as string, name: "invariant-checker" }));
  try {
    return await check(nc, opts);
  } finally {
    if (!opts.nc) await nc.close().catch(() => {});
  }
}

async function check(nc: NatsConnection, opts: CheckInvariantsOptions): Promise<InvariantReport> {
  const wanted = new Set<InvariantName>(opts.only ?? ALL);
  const skipped: { invariant: InvariantName; why: string }[] = [];
  const needBalances = wanted.has("I3") || wanted.has("I4");
  if (needBalances && !opts.balances) {
    for (const i of ["I3", "I4"] as const)
      if (wanted.has(i)) skipped.push({ invariant: i, why: "no balance source given" });
  }
  if (wanted.has("M1") && !opts.minters) {
    wanted.delete("M1");
    skipped.push({ invariant: "M1", why: "no minters given" });
  }
  const jsm = await jetstreamManager(nc);
  const ns = namesFor(opts.namespace);

  // Read the log, then the balances; read again if LEDGER moved in between, so that I4
  // compares balances and a log of the same moment.
  let snap = await readAll(nc, ns);
  let live: Balances | undefined;
  let accounts: string[] = [];
  let settleNote: string | undefined;
  if (needBalances && opts.balances) {
    const settleUntil = Date.now() + (opts.projectionSettleMs ?? 15_000);
    for (let attempt = 1; ; attempt++) {
      accounts = await accountsToCompare(snap, opts);
      live = await opts.balances.fetch(accounts);
      const after = await streamPosition(jsm, ns.stream(StreamNames.Ledger));
      const before = snap.positions.get(StreamNames.Ledger) as StreamPosition;
      if (after.lastSeq === before.lastSeq) {
        // Same moment: done, unless the projection is still catching up with the log.
        if (!wanted.has("I4") || sameBalances(foldLedger(snap.events.get(StreamNames.Ledger) ?? []), live))
          break;
        if (Date.now() >= settleUntil) break;
        await new Promise((r) => setTimeout(r, 250));
        continue;
      }
      if (attempt >= (opts.settleAttempts ?? 3)) {
        settleNote = `LEDGER kept growing while balances were read (seq ${before.lastSeq} → ${after.lastSeq})`;
        break;
      }
      snap = await readAll(nc, ns);
    }
  }

  const out = new Collector(opts.maxViolations ?? 200);
  const events = (s: string) => snap.events.get(s) ?? [];
  const pipeline = [...snap.events.keys()].filter((s) => s !== StreamNames.Dlq).flatMap((s) => events(s));
  const byEventId = new Map<string, StoredEvent[]>();
  const byTransfer = new Map<string, StoredEvent[]>();
  for (const e of pipeline) {
    if (!e.env) continue;
    const ids = byEventId.get(e.env.eventId) ?? [];
    ids.push(e);
    byEventId.set(e.env.eventId, ids);
    const t = transferOf(e) ?? e.env.correlationId;
    const list = byTransfer.get(t) ?? [];
    list.push(e);
    byTransfer.set(t, list);
  }
  // Messages parked in the DLQ are poison by definition: I6 covers them, not I5.
  const parked = new Set<string>();
  const parkedByTransfer = new Map<string, StoredEvent[]>();
  for (const d of events(StreamNames.Dlq)) {
    const stream = d.headers[Headers.DlqStream.toLowerCase()];
    const seq = d.headers[Headers.DlqSequence.toLowerCase()];
    if (stream && seq) parked.add(`${stream}:${seq}`);
    const corr = d.headers[Headers.CorrelationId.toLowerCase()];
    if (corr) parkedByTransfer.set(corr, [...(parkedByTransfer.get(corr) ?? []), d]);
  }

  // ---- I1 and I2: outcomes per transfer ----
  const requested = new Map<string, StoredEvent>();
  for (const e of events(StreamNames.Ingress)) {
    if (e.env?.type === EventTypes.TransferRequested) {
      const t = transferOf(e);
      if (t && !requested.has(t)) requested.set(t, e);
    }
  }
  // A transfer whose request the streams still hold, stored after every stream's dropped
  // head, is seen whole; an older one only by what is left (LEDGER keeps everything).
  const aged = snap.agedBeforeMs;
  const whole = (t: string | undefined): boolean => {
    if (aged === undefined) return true;
    const r = t === undefined ? undefined : requested.get(t);
    return r !== undefined && r.timestampMs > aged;
  };
  const acceptedIds = opts.accepted
    ? [...new Set(opts.accepted.map((a) => a.transferId))]
    : [...requested.keys()];
  const acceptedSet = new Set(acceptedIds);
  const transfers = new Map<string, TransferView>();
  const counts: InvariantCounts = {
    accepted: acceptedIds.length,
    rejected: 0,
    declined: 0,
    posted: 0,
    reversed: 0,
    lost: 0,
    multiple: 0,
    aged: 0,
    ...(snap.agedBeforeMs !== undefined ? { agedBeforeMs: snap.agedBeforeMs } : {}),
    unaccepted: [...requested.keys()].filter((t) => !acceptedSet.has(t)).length,
    dlq: events(StreamNames.Dlq).length,
    accounts: accounts.length,
    events: Object.fromEntries([...snap.events].map(([s, l]) => [s, l.length])),
  };

  const outcomeEvents = (t: string) => {
    const all = byTransfer.get(t) ?? [];
    const pick = (type: string) => all.filter((e) => e.env?.type === type).sort((a, b) => a.seq - b.seq);
    return {
      all,
      rejected: pick(EventTypes.TransferRejected),
      declined: pick(EventTypes.LedgerDeclined),
      posted: pick(EventTypes.LedgerPosted),
      reversed: pick(EventTypes.LedgerReversed),
    };
  };

  for (const t of acceptedIds) {
    const o = outcomeEvents(t);
    const terminal = [...o.rejected, ...o.declined, ...o.posted].sort(
      (a, b) => a.timestampMs - b.timestampMs || a.seq - b.seq,
    );
    let outcome: TransferOutcome;
    if (terminal.length === 0 && !whole(t)) outcome = "aged";
    else if (terminal.length === 0) outcome = "lost";
    else if (terminal.length > 1 || o.reversed.length > 1) outcome = "multiple";
    else if (o.posted.length === 1 && o.reversed.length === 1) outcome = "reversed";
    else if (o.rejected.length === 1) outcome = "rejected";
    else if (o.declined.length === 1) outcome = "declined";
    else outcome = "posted";
    counts[outcome] += 1;
    const first = terminal[0];
    const rev = o.reversed[0];
    transfers.set(t, {
      transferId: t,
      outcome,
      ...(first ? { terminal: eventRef(first) } : {}),
      ...(rev ? { reversal: eventRef(rev) } : {}),
    });
    if (!wanted.has("I1") || outcome === "aged") continue;
    if (terminal.length === 0) {
      const seen = [...o.all].sort((a, b) => a.timestampMs - b.timestampMs);
      const last = seen.at(-1);
      const dlq = parkedByTransfer.get(t) ?? [];
      const where = !requested.has(t)
        ? "accepted (202) but no transfers.requested is stored in INGRESS"
        : `no terminal outcome; last event ${last ? `${typeOf(last)} (${last.stream} seq ${last.seq})` : "none"}`;
      const parkedWhy = dlq.length
        ? `; parked in the DLQ: ${dlq.map((d) => d.headers[Headers.DlqReason.toLowerCase()] ?? "no reason").join(" | ")}`
        : "";
      out.add({
        invariant: "I1",
        transferId: t,
        message: `transfer ${t} lost: ${where}${parkedWhy}`,
        events: [...seen, ...dlq].map(eventRef),
      });
    } else if (terminal.length > 1) {
      out.add({
        invariant: "I1",
        transferId: t,
        message: `transfer ${t} has ${terminal.length} terminal outcomes: ${terminal.map(typeOf).join(", ")}`,
        events: terminal.map(eventRef),
      });
    }
    if (o.reversed.length > 0 && o.posted.length === 0) {
      out.add({
        invariant: "I1",
        transferId: t,
        message: `transfer ${t} reversed without a posting`,
        events: [...o.reversed, ...o.declined, ...o.rejected].map(eventRef),
      });
    } else if (o.reversed.length > 1) {
      out.add({
        invariant: "I1",
        transferId: t,
        message: `transfer ${t} posted then reversed ${o.reversed.length} times`,
        events: [...o.posted, ...o.reversed].map(eventRef),
      });
    }
  }

  if (wanted.has("I2")) {
    // Over every transfer in LEDGER, accepted or not: money moved twice is wrong either way.
    const ledgerTransfers = new Set(events(StreamNames.Ledger).map(transferOf).filter(Boolean) as string[]);
    for (const t of ledgerTransfers) {
      const o = outcomeEvents(t);
      if (o.posted.length > 1) {
        out.add({
          invariant: "I2",
          transferId: t,
          message: `transfer ${t} posted ${o.posted.length} times (${new Set(o.posted.map((e) => e.env?.eventId)).size} distinct event ids)`,
          events: o.posted.map(eventRef),
        });
      }
      if (o.reversed.length > 1) {
        out.add({
          invariant: "I2",
          transferId: t,
          message: `transfer ${t} reversed ${o.reversed.length} times`,
          events: o.reversed.map(eventRef),
        });
      }
      const p = o.posted[0]?.env;
      for (const r of o.reversed) {
        if (!p || !r.env || p.type !== EventTypes.LedgerPosted || r.env.type !== EventTypes.LedgerReversed)
          continue;
        const a = p.data;
        const b = r.env.data;
        if (
          a.from !== b.from ||
          a.to !== b.to ||
          a.amountMinor !== b.amountMinor ||
          a.currency !== b.currency
        ) {
          out.add({
            invariant: "I2",
            transferId: t,
            message: `reversal of ${t} moves ${b.amountMinor} ${b.currency} ${b.to}→${b.from}, the posting moved ${a.amountMinor} ${a.currency} ${a.from}→${a.to}`,
            events: [o.posted[0] as StoredEvent, r].map(eventRef),
          });
        }
      }
      if (o.posted.length === 0 && o.reversed.length > 0) {
        out.add({
          invariant: "I2",
          transferId: t,
          message: `transfer ${t} reversed without a posting: money moved that was never posted`,
          events: o.reversed.map(eventRef),
        });
      }
    }
  }

  // ---- I3 and I4: balances ----
  const totals: Record<string, string> = {};
  if (live) {
    const sums = new Map<string, bigint>();
    for (const m of live.values()) for (const [c, v] of m) sums.set(c, (sums.get(c) ?? 0n) + v);
    for (const [c, v] of [...sums].sort()) totals[c] = v.toString();
    if (wanted.has("I3")) {
      for (const [c, v] of sums) {
        if (v === 0n) continue;
        out.add({
          invariant: "I3",
          message: `${c} balances sum to ${v} over ${live.size} accounts (${opts.balances?.name})${settleNote ? `; ${settleNote}` : ""}`,
          events: [],
        });
      }
    }
    if (wanted.has("I4")) {
      const fold = foldLedger(events(StreamNames.Ledger));
      const names = new Set([...fold.keys(), ...live.keys()]);
      const ledgerByAccount = new Map<string, StoredEvent[]>();
      for (const e of events(StreamNames.Ledger)) {
        const d = e.env?.data as { from?: string; to?: string } | undefined;
        for (const acc of [d?.from, d?.to])
          if (acc) ledgerByAccount.set(acc, [...(ledgerByAccount.get(acc) ?? []), e]);
      }
      for (const acc of [...names].sort()) {
        const f = fold.get(acc) ?? new Map<string, bigint>();
        const l = live.get(acc) ?? new Map<string, bigint>();
        for (const c of new Set([...f.keys(), ...l.keys()])) {
          const fv = f.get(c) ?? 0n;
          const lv = l.get(c) ?? 0n;
          if (fv === lv) continue;
          out.add({
            invariant: "I4",
            message: `account ${acc} ${c}: live ${lv}, fold of LEDGER ${fv} (difference ${lv - fv})${settleNote ? `; ${settleNote}` : ""}`,
            events: (ledgerByAccount.get(acc) ?? []).slice(-10).map(eventRef),
          });
        }
      }
    }
  }

  // ---- S1: every prefix of the log is solvent ----
  if (wanted.has("S1")) {
    const ledger = events(StreamNames.Ledger);
    const bySeq = new Map(ledger.map((e) => [e.seq, e]));
    for (const o of overdrafts(ledger)) {
      const e = bySeq.get(o.seq);
      out.add({
        invariant: "S1",
        ...(e ? { transferId: transferOf(e) } : {}),
        message: `account ${o.account} ${o.currency} is ${o.balance} after LEDGER seq ${o.seq}: a decision was made on balances the log did not have`,
        events: e ? [eventRef(e)] : [],
      });
    }
  }

  // ---- M1: money is created only by an authorised mint ----
  if (wanted.has("M1")) {
    const minters = new Set(opts.minters);
    for (const e of events(StreamNames.Ledger)) {
      if (e.env?.type !== EventTypes.LedgerPosted) continue;
      const d = e.env.data as {
        transferId: string;
        from: string;
        to: string;
        amountMinor: number;
        currency: string;
      };
      if (d.from !== LedgerProjection.externalAccount) continue;
      // A mint whose request the streams no longer hold cannot be checked.
      if (!whole(d.transferId)) continue;
      const req = requested.get(d.transferId);
      const asked = req?.env?.data as typeof d | undefined;
      const actor = req?.env?.actor;
      const problem = !req
        ? "no transfers.requested in INGRESS asked for it"
        : actor === undefined
          ? "its request names no client"
          : !minters.has(actor)
            ? `its request came from client ${actor}, not an authorised minter`
            : asked?.to !== d.to || asked?.amountMinor !== d.amountMinor || asked?.currency !== d.currency
              ? `it moved ${d.amountMinor} ${d.currency} to ${d.to}; the request asked ${asked?.amountMinor} ${asked?.currency} to ${asked?.to}`
              : undefined;
      if (problem)
        out.add({
          invariant: "M1",
          transferId: d.transferId,
          message: `LEDGER seq ${e.seq} minted ${d.amountMinor} ${d.currency} from external: ${problem}`,
          events: [eventRef(e), ...(req ? [eventRef(req)] : [])],
        });
    }
  }

  // ---- I5: lineage ----
  if (wanted.has("I5")) {
    const traces = new Map<string, Map<string, StoredEvent[]>>();
    for (const e of pipeline) {
      if (!e.env) {
        if (parked.has(`${e.stream}:${e.seq}`)) continue;
        out.add({
          invariant: "I5",
          message: `${e.stream} seq ${e.seq} is not a valid event and was not parked: ${e.decodeError ?? "undecodable"}`,
          events: [eventRef(e)],
        });
        continue;
      }
      const env = e.env;
      const t = transferOf(e);
      const ref = eventRef(e);
      if (!env.eventId)
        out.add({ invariant: "I5", message: `${e.stream} seq ${e.seq} has no eventId`, events: [ref] });
      if (!env.correlationId || (t !== undefined && env.correlationId !== t)) {
        out.add({
          invariant: "I5",
          ...(t ? { transferId: t } : {}),
          message: `${env.type} ${env.eventId}: correlationId ${JSON.stringify(env.correlationId)} is not its transferId ${t}`,
          events: [ref],
        });
      }
      const causeTypes = CAUSE_TYPES[env.type];
      if (causeTypes && causeTypes !== "request") {
        const causes = (byEventId.get(env.causationId) ?? []).filter((c) => causeTypes.includes(typeOf(c)));
        if (causes.length === 0 && !whole(t)) {
          // The cause of an event of a transfer older than what the streams hold was dropped
          // by retention: nothing to compare; its trace is still checked below.
        } else if (causes.length === 0) {
          out.add({
            invariant: "I5",
            ...(t ? { transferId: t } : {}),
            message: `${env.type} ${env.eventId}: causationId ${env.causationId} names no stored ${causeTypes.join(" or ")}`,
            events: [ref],
          });
        } else if (causes.every((c) => c.env?.correlationId !== env.correlationId)) {
          out.add({
            invariant: "I5",
            ...(t ? { transferId: t } : {}),
            message: `${env.type} ${env.eventId}: its cause belongs to transfer ${causes[0]?.env?.correlationId}`,
            events: [ref, ...causes.map(eventRef)],
          });
        }
      } else if (!env.causationId) {
        out.add({ invariant: "I5", message: `${env.type} ${env.eventId} has no causationId`, events: [ref] });
      }
      const tp = e.headers[Headers.TraceParent];
      const match = tp ? TRACEPARENT.exec(tp) : null;
      if (!match || match[1] === ZERO_TRACE) {
        out.add({
          invariant: "I5",
          ...(t ? { transferId: t } : {}),
          message: `${env.type} ${env.eventId}: ${tp ? `traceparent ${JSON.stringify(tp)} is not valid W3C trace context` : "no traceparent header"}`,
          events: [ref],
        });
        continue;
      }
      const key = env.correlationId;
      const perTrace = traces.get(key) ?? new Map<string, StoredEvent[]>();
      perTrace.set(match[1] as string, [...(perTrace.get(match[1] as string) ?? []), e]);
      traces.set(key, perTrace);
    }
    for (const [t, perTrace] of traces) {
      if (perTrace.size <= 1) continue;
      out.add({
        invariant: "I5",
        transferId: t,
        message: `transfer ${t} spans ${perTrace.size} traces: ${[...perTrace]
          .map(([id, es]) => `${id} (${es.map(typeOf).join(", ")})`)
          .join("; ")}`,
        events: [...perTrace.values()].flat().map(eventRef),
      });
    }
  }

  // ---- I6: the DLQ names its reasons ----
  if (wanted.has("I6")) {
    for (const d of events(StreamNames.Dlq)) {
      const reason = d.headers[Headers.DlqReason.toLowerCase()];
      if (reason && reason.trim() !== "") continue;
      const corr = d.headers[Headers.CorrelationId.toLowerCase()];
      out.add({
        invariant: "I6",
        ...(corr ? { transferId: corr } : {}),
        message: `DLQ seq ${d.seq} (${d.subject}) has no ${Headers.DlqReason} header`,
        events: [eventRef(d)],
      });
    }
  }

  const checked = ALL.filter((i) => wanted.has(i) && !skipped.some((s) => s.invariant === i));
  const order = (v: Violation) => ALL.indexOf(v.invariant);
  const violations = [...out.violations].sort((a, b) => order(a) - order(b));
  return {
    ok: violations.length === 0,
    checked,
    skipped,
    counts,
    violations,
    violationCounts: out.counts,
    totals,
    transfers,
  };
}

async function accountsToCompare(snap: Snapshot, opts: CheckInvariantsOptions): Promise<string[]> {
  const names = new Set<string>([LedgerProjection.externalAccount]);
  for (const e of snap.events.get(StreamNames.Ledger) ?? []) {
    const d = e.env?.data as { from?: string; to?: string } | undefined;
    if (d?.from) names.add(d.from);
    if (d?.to) names.add(d.to);
  }
  for (const a of opts.accepted ?? []) {
    if (a.from) names.add(a.from);
    if (a.to) names.add(a.to);
  }
  for (const a of opts.accounts ?? []) names.add(a);
  if (opts.balances?.listAccounts) for (const a of await opts.balances.listAccounts()) names.add(a);
  return [...names].sort();
}
