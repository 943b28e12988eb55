import { headerValue, parseHeaders, type RawHeaders } from "./headers.ts";
import { subjectMatches } from "./subjects.ts";

const NS = 1_000_000;

/** A message as the simulated store holds it. */
export interface StoredMsg {
  seq: number;
  subject: string;
  hdr: Uint8Array | undefined;
  data: Uint8Array;
  /** Virtual milliseconds. */
  ts: number;
  /** The store's accounting size (nats-server's file or memory record size). */
  size: number;
}

/** A JetStream API error as nats-server answers it. */
export interface ApiError {
  code: number;
  err_code: number;
  description: string;
}

/** The outcome of one publish into a stream. */
export type StoreOutcome = { seq: number; duplicate: boolean } | { error: ApiError };

/** Stream configuration, filled with nats-server 2.9.10's defaults and field order. */
export type StreamConfig = Record<string, unknown> & {
  name: string;
  subjects: string[];
  max_msgs: number;
  max_bytes: number;
  max_age: number;
  max_msgs_per_subject: number;
  max_msg_size: number;
  discard: string;
  storage: string;
  duplicate_window: number;
  deny_delete: boolean;
  deny_purge: boolean;
  allow_rollup_hdrs: boolean;
  allow_direct: boolean;
};

/** Fills a requested stream config with the server's defaults. */
export function streamConfigWithDefaults(req: Record<string, unknown>): StreamConfig {
  const num = (k: string, d: number) => (typeof req[k] === "number" && req[k] !== 0 ? (req[k] as number) : d);
  const maxAge = num("max_age", 0);
  let dup = num("duplicate_window", 120_000 * NS);
  if (maxAge > 0 && dup > maxAge) dup = maxAge;
  const out: Record<string, unknown> = { name: req.name };
  if (req.description) out.description = req.description;
  out.subjects = Array.isArray(req.subjects) && req.subjects.length ? req.subjects : [req.name];
  out.retention = req.retention ?? "limits";
  out.max_consumers = num("max_consumers", -1);
  out.max_msgs = num("max_msgs", -1);
  out.max_bytes = num("max_bytes", -1);
  out.max_age = maxAge;
  out.max_msgs_per_subject = num("max_msgs_per_subject", -1);
  out.max_msg_size = num("max_msg_size", -1);
  out.discard = req.discard ?? "old";
  out.storage = req.storage ?? "file";
  out.num_replicas = num("num_replicas", 1);
  if (req.no_ack) out.no_ack = true;
  out.duplicate_window = dup;
  out.allow_direct = req.allow_direct === true;
  out.mirror_direct = req.mirror_direct === true;
  out.sealed = req.sealed === true;
  out.deny_delete = req.deny_delete === true;
  out.deny_purge = req.deny_purge === true;
  out.allow_rollup_hdrs = req.allow_rollup_hdrs === true;
  if (req.discard_new_per_subject) out.discard_new_per_subject = true;
  return out as StreamConfig;
}

const err = (code: number, err_code: number, description: string): { error: ApiError } => ({
  error: { code, err_code, description },
});

/**
 * One stream of the simulated server: a limits-retention store with the publish checks of
 * nats-server 2.9.10 in its order (SERVER-BEHAVIOUR.md §6) and its discard rules (§7).
 */
export class SimStream {
  config: StreamConfig;
  readonly created: number;
  readonly msgs = new Map<number, StoredMsg>();
  firstSeq = 0;
  lastSeq = 0;
  lastTs = 0;
  bytes = 0;
  /** Nats-Msg-Id → (seq, stored at). */
  readonly dedupe = new Map<string, { seq: number; ts: number }>();
  /** Id of the last stored message ("" when it had none); memory only, like the server's. */
  lmsgId = "";
  /** Stored messages per subject (STREAM.INFO's num_subjects, asked for often). */
  readonly #perSubject = new Map<string, number>();
  /** Called after a message is stored (consumers wake up). */
  onStored: () => void = () => {};

  constructor(config: StreamConfig, now: number) {
    this.config = config;
    this.created = now;
  }

  /** Messages in sequence order. */
  *ordered(from = 0): Generator<StoredMsg> {
    const start = Math.max(from, this.firstSeq);
    // Sparse after deletes; walking the range is fine for simulated stream sizes.
    for (let s = start; s <= this.lastSeq; s++) {
      const m = this.msgs.get(s);
      if (m) yield m;
    }
  }

  /** The first stored message with seq ≥ `from` whose subject matches one of `filters`. */
  nextMatching(from: number, filters: string[]): StoredMsg | undefined {
    for (const m of this.ordered(from)) if (matchesAny(filters, m.subject)) return m;
    return undefined;
  }

  /** Last message on exactly `subject`. */
  lastBySubject(subject: string): StoredMsg | undefined {
    let found: StoredMsg | undefined;
    for (const m of this.msgs.values())
      if (subjectMatches(subject, m.subject) && (!found || m.seq > found.seq)) found = m;
    return found;
  }

  #dupOf(id: string, now: number): number | undefined {
    const d = this.dedupe.get(id);
    if (!d) return undefined;
    if (now - d.ts >= this.config.duplicate_window / NS) {
      this.dedupe.delete(id);
      return undefined;
    }
    return d.seq;
  }

  /** Runs the publish checks and stores; the order is the server's (§6). */
  store(subject: string, hdr: Uint8Array | undefined, data: Uint8Array, now: number): StoreOutcome {
    const h: RawHeaders = parseHeaders(hdr);
    const expStream = headerValue(h, "Nats-Expected-Stream");
    if (expStream !== undefined && expStream !== this.config.name)
      return err(400, 10060, "expected stream does not match");
    const msgId = headerValue(h, "Nats-Msg-Id") ?? "";
    if (msgId) {
      const dup = this.#dupOf(msgId, now);
      if (dup !== undefined) return { seq: dup, duplicate: true };
    }
    const lss = headerValue(h, "Nats-Expected-Last-Subject-Sequence");
    if (lss !== undefined) {
      const want = Number(lss);
      const have = this.lastBySubject(subject)?.seq ?? 0;
      if (want !== have) return err(400, 10071, `wrong last sequence: ${have}`);
    }
    const ls = headerValue(h, "Nats-Expected-Last-Sequence");
    if (ls !== undefined && Number(ls) !== this.lastSeq)
      return err(400, 10071, `wrong last sequence: ${this.lastSeq}`);
    const lid = headerValue(h, "Nats-Expected-Last-Msg-Id");
    if (lid !== undefined && lid !== this.lmsgId) return err(400, 10070, `wrong last msg ID: ${this.lmsgId}`);
    const rollup = headerValue(h, "Nats-Rollup");
    if (rollup !== undefined) {
      if (!this.config.allow_rollup_hdrs) return err(500, 10111, "rollup not permitted");
      if (rollup !== "sub" && rollup !== "all") return err(500, 10111, `rollup value invalid: "${rollup}"`);
    }
    const hlen = hdr?.length ?? 0;
    if (this.config.max_msg_size > 0 && hlen + data.length > this.config.max_msg_size)
      return err(400, 10054, "message size exceeds maximum allowed");
    const refused = this.#discardNew(subject, hlen + data.length);
    if (refused) return err(503, 10077, refused);
    const seq = this.lastSeq + 1;
    const size =
      this.config.storage === "memory"
        ? subject.length + hlen + data.length + 16
        : hlen
          ? 22 + subject.length + 4 + hlen + data.length + 8
          : 22 + subject.length + data.length + 8;
    this.msgs.set(seq, { seq, subject, hdr: hlen ? hdr : undefined, data, ts: now, size });
    this.#perSubject.set(subject, (this.#perSubject.get(subject) ?? 0) + 1);
    if (this.firstSeq === 0 || this.msgs.size === 1) this.firstSeq = seq;
    this.lastSeq = seq;
    this.lastTs = now;
    this.bytes += size;
    this.lmsgId = msgId;
    if (msgId) this.dedupe.set(msgId, { seq, ts: now });
    if (rollup === "sub")
      for (const m of [...this.msgs.values()]) if (m.subject === subject && m.seq !== seq) this.remove(m.seq);
    if (rollup === "all") for (const m of [...this.msgs.values()]) if (m.seq !== seq) this.remove(m.seq);
    this.#enforceLimits(subject);
    this.onStored();
    return { seq, duplicate: false };
  }

  #discardNew(subject: string, len: number): string | undefined {
    const c = this.config;
    if (c.discard !== "new") return undefined;
    let perSubjectFull = false;
    if (c.max_msgs_per_subject > 0) {
      if ((this.#perSubject.get(subject) ?? 0) >= c.max_msgs_per_subject) {
        if (c.discard_new_per_subject) return "maximum messages per subject exceeded";
        perSubjectFull = true;
      }
    }
    if (c.max_msgs > 0 && this.msgs.size >= c.max_msgs && !perSubjectFull) return "maximum messages exceeded";
    if (c.max_bytes > 0 && this.bytes + len >= c.max_bytes && !perSubjectFull)
      return "maximum bytes exceeded";
    return undefined;
  }

  #enforceLimits(subject: string): void {
    const c = this.config;
    if (c.max_msgs_per_subject > 0 && (this.#perSubject.get(subject) ?? 0) > c.max_msgs_per_subject) {
      const same = [...this.msgs.values()].filter((m) => m.subject === subject);
      for (let i = 0; i < same.length - c.max_msgs_per_subject; i++) this.remove((same[i] as StoredMsg).seq);
    }
    while (c.max_msgs > 0 && this.msgs.size > c.max_msgs) this.remove(this.firstSeq);
    while (c.max_bytes > 0 && this.bytes > c.max_bytes && this.msgs.size > 0) this.remove(this.firstSeq);
  }

  /** Drops messages older than max_age (called from the server's timer). */
  expire(now: number): void {
    if (this.config.max_age <= 0) return;
    const cutoff = now - this.config.max_age / NS;
    for (const m of [...this.msgs.values()]) if (m.ts <= cutoff) this.remove(m.seq);
  }

  /** Removes one message; the first sequence moves past a removed head. */
  remove(seq: number): boolean {
    const m = this.msgs.get(seq);
    if (!m) return false;
    this.msgs.delete(seq);
    const left = (this.#perSubject.get(m.subject) ?? 1) - 1;
    if (left > 0) this.#perSubject.set(m.subject, left);
    else this.#perSubject.delete(m.subject);
    this.bytes -= m.size;
    if (seq === this.firstSeq) {
      let s = seq + 1;
      while (s <= this.lastSeq && !this.msgs.has(s)) s++;
      this.firstSeq = s;
    }
    return true;
  }

  /** Purges everything, or one subject (`filter`), or up to `seq`, or all but `keep`. */
  purge(opts: { filter?: string; seq?: number; keep?: number }): number {
    let doomed = [...this.msgs.values()].filter(
      (m) => !opts.filter || subjectMatches(opts.filter, m.subject),
    );
    if (opts.seq) doomed = doomed.filter((m) => m.seq < (opts.seq as number));
    if (opts.keep) doomed = doomed.slice(0, Math.max(0, doomed.length - opts.keep));
    for (const m of doomed) this.remove(m.seq);
    if (this.msgs.size === 0) this.firstSeq = this.lastSeq + 1;
    return doomed.length;
  }

  /** The state block of STREAM.INFO. */
  state(consumers: number): Record<string, unknown> {
    const iso = (ms: number) => (ms ? new Date(ms).toISOString() : "0001-01-01T00:00:00Z");
    const first = this.msgs.get(this.firstSeq);
    const s: Record<string, unknown> = {
      messages: this.msgs.size,
      bytes: this.bytes,
      first_seq: this.firstSeq,
      first_ts: iso(first?.ts ?? 0),
      last_seq: this.lastSeq,
      last_ts: iso(this.lastTs),
    };
    if (this.#perSubject.size > 0) s.num_subjects = this.#perSubject.size;
    const deleted = this.msgs.size ? this.lastSeq - this.firstSeq + 1 - this.msgs.size : 0;
    if (deleted > 0) s.num_deleted = deleted;
    s.consumer_count = consumers;
    return s;
  }
}

/** Whether `subject` matches one of `filters` (no filters: everything). */
export function matchesAny(filters: string[], subject: string): boolean {
  if (filters.length === 0) return true;
  return filters.some((f) => subjectMatches(f, subject));
}
