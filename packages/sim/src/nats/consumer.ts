import type { BusMsg, CoreBus } from "./core-bus.ts";
import { concat } from "./core-bus.ts";
import { encodeHeaders } from "./headers.ts";
import { matchesAny, type SimStream, type StoredMsg } from "./stream.ts";

const NS = 1_000_000;
const TE = new TextEncoder();
const ACK_WAIT_DELAY_MS = 1;
/**
 * nats-server 2.9.10's consumer file store writes its state file at most once per 100 ms
 * (`consumerFileStore.flushLoop`, filestore.go:6020): a change after a quiet spell is written
 * at once, later ones wait for 100 ms after the previous write (SERVER-BEHAVIOUR.md §8).
 */
const STATE_FLUSH_MS = 100;

/** The consumer's state as its file holds it: what a SIGKILLed server comes back with. */
interface SavedState {
  sseq: number;
  dseq: number;
  adflr: number;
  asflr: number;
  pending: Map<number, Pending>;
  exceeded: Map<number, Pending>;
  rdc: Map<number, number>;
}

/** What a SIGKILL did to one durable's state ({@link SimConsumer.crashed}). */
export interface CrashOutcome {
  consumer: string;
  /** The kill landed while the state file was being rewritten: the file is empty, the state gone. */
  torn: boolean;
  /** [consumer_seq, stream_seq] of the ack floor and of the last delivery, before and after. */
  ackFloor: { before: [number, number]; after: [number, number] };
  delivered: { before: [number, number]; after: [number, number] };
}

/** Consumer configuration as nats-server 2.9.10 stores and returns it. */
export type ConsumerConfig = Record<string, unknown> & {
  deliver_policy: string;
  ack_policy: string;
  ack_wait?: number;
  max_deliver?: number;
  backoff?: number[];
  filter_subject?: string;
  filter_subjects?: string[];
  max_ack_pending?: number;
  deliver_subject?: string;
  idle_heartbeat?: number;
  headers_only?: boolean;
  inactive_threshold?: number;
  opt_start_seq?: number;
};

/** Field order of nats-server 2.9.10's ConsumerConfig JSON. */
const CONSUMER_FIELDS = [
  "durable_name",
  "name",
  "description",
  "deliver_policy",
  "opt_start_seq",
  "opt_start_time",
  "ack_policy",
  "ack_wait",
  "max_deliver",
  "backoff",
  "filter_subject",
  "filter_subjects",
  "replay_policy",
  "rate_limit_bps",
  "sample_freq",
  "max_waiting",
  "max_ack_pending",
  "idle_heartbeat",
  "flow_control",
  "headers_only",
  "max_batch",
  "max_expires",
  "max_bytes",
  "deliver_subject",
  "deliver_group",
  "inactive_threshold",
  "num_replicas",
  "mem_storage",
];

/** Fills a requested consumer config with the server's defaults; an error text when refused. */
export function consumerConfigWithDefaults(
  req: Record<string, unknown>,
): ConsumerConfig | { error: [number, number, string] } {
  const c: Record<string, unknown> = {};
  for (const k of CONSUMER_FIELDS) {
    const v = req[k];
    if (v === undefined || v === null || v === "" || v === false) continue;
    if (typeof v === "number" && v === 0 && k !== "num_replicas") continue;
    if (Array.isArray(v) && v.length === 0) continue;
    c[k] = v;
  }
  c.deliver_policy ??= "all";
  c.ack_policy ??= "none";
  c.replay_policy ??= "instant";
  c.num_replicas ??= 0;
  if (c.max_deliver === undefined || c.max_deliver === 0) c.max_deliver = -1;
  if (c.ack_policy !== "none" && !c.ack_wait) c.ack_wait = 30_000 * NS;
  const backoff = c.backoff as number[] | undefined;
  if (backoff?.length) c.ack_wait = backoff[0];
  if (c.ack_policy !== "none" && !c.max_ack_pending) c.max_ack_pending = 1000;
  if (!c.deliver_subject && !c.max_waiting) c.max_waiting = 512;
  if (backoff?.length && (c.max_deliver as number) <= backoff.length)
    return { error: [400, 10116, "max deliver is required to be > length of backoff values"] };
  if (c.deliver_policy === "by_start_sequence" && !c.opt_start_seq)
    return {
      error: [
        400,
        10093,
        "consumer delivery policy is deliver by start sequence, but optional start sequence is not set",
      ],
    };
  return c as ConsumerConfig;
}

/** The config with its fields in the server's order (consumer info is compared as JSON). */
export function orderConsumerConfig(c: ConsumerConfig): ConsumerConfig {
  const out: Record<string, unknown> = {};
  for (const k of CONSUMER_FIELDS) if (c[k] !== undefined) out[k] = c[k];
  return out as ConsumerConfig;
}

interface Pending {
  dseq: number;
  ts: number;
}

interface WaitingRequest {
  reply: string;
  n: number;
  d: number;
  b: number;
  noWait: boolean;
  expires: number;
  hb: number;
  hbt: number;
}

/** What a consumer needs from its server. */
export interface ConsumerHost {
  bus: CoreBus;
  random: () => number;
  advisory(subject: string, body: Record<string, unknown>): void;
  /** Removes an ephemeral consumer whose interest is gone (inactive_threshold). */
  drop(c: SimConsumer): void;
}

/**
 * One consumer, following nats-server 2.9.10's consumer.go: a pending map with per-message
 * timestamps and one check timer (`checkPending`), a redelivery queue served before new
 * messages, delivery counts, MAX_DELIVERIES checked when a redelivery is taken for a waiting
 * pull (SERVER-BEHAVIOUR.md §1-§5), pull requests with batch, max_bytes, expires, no_wait and
 * idle heartbeats, and push delivery for ordered watchers.
 */
export class SimConsumer {
  readonly name: string;
  config: ConsumerConfig;
  readonly created: number;
  sseq = 1;
  dseq = 1;
  adflr = 0;
  asflr = 0;
  readonly pending = new Map<number, Pending>();
  readonly rdc = new Map<number, number>();
  rdq: number[] = [];
  /** Sequences dropped after max_deliver: still pending in the stored state (§3). */
  readonly exceeded = new Map<number, Pending>();
  waiting: WaitingRequest[] = [];
  #lss: { seqs: number[]; resume: number } | undefined;
  #ptmr: ReturnType<typeof setTimeout> | undefined;
  #wtmr: ReturnType<typeof setTimeout> | undefined;
  #hbtmr: ReturnType<typeof setTimeout> | undefined;
  #itmr: ReturnType<typeof setTimeout> | undefined;
  #signalled = false;
  #stopped = false;
  #offInterest: () => void;
  /** Last state written to the consumer's file; undefined: no file yet (or an empty one). */
  #saved: SavedState | undefined;
  /** Virtual ms at which the pending write of the state file happens; undefined: clean. */
  #writeAt: number | undefined;
  #lastWrite = Number.NEGATIVE_INFINITY;

  constructor(
    readonly stream: SimStream,
    name: string,
    config: ConsumerConfig,
    readonly host: ConsumerHost,
    now: number,
  ) {
    this.name = name;
    this.config = config;
    this.created = now;
    this.#selectStart();
    this.#offInterest = host.bus.onInterest(() => {
      this.signal();
      this.#checkInactive();
    });
    this.#armHeartbeat();
    this.#checkInactive();
  }

  get filters(): string[] {
    const c = this.config;
    if (c.filter_subjects?.length) return c.filter_subjects;
    return c.filter_subject && c.filter_subject !== ">" ? [c.filter_subject] : [];
  }
  get #ackWaitMs(): number {
    return (this.config.ack_wait ?? 30_000 * NS) / NS;
  }
  get #maxdc(): number {
    const m = this.config.max_deliver ?? -1;
    return Math.max(m, 0);
  }
  get #isPush(): boolean {
    return typeof this.config.deliver_subject === "string" && this.config.deliver_subject !== "";
  }
  get #explicit(): boolean {
    return this.config.ack_policy !== "none";
  }

  #selectStart(): void {
    const s = this.stream;
    const c = this.config;
    switch (c.deliver_policy) {
      case "new":
        this.sseq = s.lastSeq + 1;
        break;
      case "last":
        this.sseq = s.lastSeq || 1;
        break;
      case "by_start_sequence":
        this.sseq = c.opt_start_seq ?? 1;
        break;
      case "last_per_subject": {
        const last = new Map<string, number>();
        for (const m of s.ordered()) if (matchesAny(this.filters, m.subject)) last.set(m.subject, m.seq);
        const seqs = [...last.values()].sort((a, b) => a - b);
        if (seqs.length) {
          this.#lss = { seqs, resume: s.lastSeq };
          this.sseq = seqs[0] as number;
        } else this.sseq = s.lastSeq + 1;
        break;
      }
      default:
        this.sseq = Math.max(1, s.firstSeq);
    }
  }

  /** Messages not yet delivered (the server's `num_pending`). */
  numPending(): number {
    if (this.config.deliver_policy === "last_per_subject") {
      const last = new Map<string, number>();
      for (const m of this.stream.ordered())
        if (matchesAny(this.filters, m.subject)) last.set(m.subject, m.seq);
      let n = 0;
      for (const l of last.values()) if (this.sseq <= l) n++;
      return n;
    }
    let n = 0;
    for (const m of this.stream.ordered(this.sseq)) if (matchesAny(this.filters, m.subject)) n++;
    return n;
  }

  /** Wakes the delivery loop (coalesced to one run per microtask). */
  signal(): void {
    if (this.#signalled || this.#stopped) return;
    this.#signalled = true;
    queueMicrotask(() => {
      this.#signalled = false;
      if (!this.#stopped) this.#loop();
    });
  }

  // ---- pull requests ----

  /** `$JS.API.CONSUMER.MSG.NEXT` (processNextMsgRequest). */
  nextRequest(reply: string, body: Uint8Array): void {
    if (!reply) return;
    const sendErr = (code: number, desc: string) => this.#status(reply, code, desc);
    if (this.#isPush) {
      sendErr(409, "Consumer is push based");
      return;
    }
    const text = new TextDecoder().decode(body).trim();
    let n = 1;
    let b = 0;
    let noWait = false;
    let expiresNs = 0;
    let hbNs = 0;
    if (text.startsWith("{")) {
      const r = JSON.parse(text) as {
        batch?: number;
        max_bytes?: number;
        no_wait?: boolean;
        expires?: number;
        idle_heartbeat?: number;
      };
      n = r.batch ?? 0;
      b = r.max_bytes ?? 0;
      noWait = r.no_wait === true;
      expiresNs = r.expires ?? 0;
      hbNs = r.idle_heartbeat ?? 0;
      if (hbNs > 0 && hbNs * 2 > expiresNs) {
        sendErr(400, "Bad Request - heartbeat value too large");
        return;
      }
    } else if (text && Number.isInteger(Number(text))) n = Number(text);
    const now = Date.now();
    if (this.waiting.length >= ((this.config.max_waiting as number | undefined) ?? 512))
      this.#processWaiting(false);
    if (noWait) {
      const msgsPending = this.numPending() + this.rdq.length;
      if (msgsPending === 0 && expiresNs === 0) {
        sendErr(404, "No Messages");
        return;
      }
      if (msgsPending > 0) {
        const batchPending = this.#processWaiting(false);
        if (msgsPending < batchPending) {
          sendErr(408, "Requests Pending");
          return;
        }
      }
    }
    if (this.waiting.length >= ((this.config.max_waiting as number | undefined) ?? 512)) {
      sendErr(409, "Exceeded MaxWaiting");
      return;
    }
    this.waiting.push({
      reply,
      n,
      d: 0,
      b,
      noWait,
      expires: expiresNs ? now + expiresNs / NS : 0,
      hb: hbNs / NS,
      hbt: hbNs ? now + hbNs / NS : 0,
    });
    this.#touch();
    this.signal();
  }

  #status(subject: string, code: number, desc: string, pairs: [string, string][] = []): void {
    this.host.bus.publish({
      subject,
      reply: "",
      hdr: encodeHeaders(pairs, code, desc),
      data: new Uint8Array(0),
    });
  }

  /** Expires requests and sends due heartbeats; returns the batch still wanted (processWaiting). */
  #processWaiting(eos: boolean): number {
    const now = Date.now();
    let brp = 0;
    let fexp = 0;
    const keep: WaitingRequest[] = [];
    for (const wr of this.waiting) {
      if ((eos && wr.noWait && wr.d > 0) || (wr.expires && now >= wr.expires)) {
        this.#status(wr.reply, 408, "Request Timeout", [
          ["Nats-Pending-Messages", String(wr.n)],
          ["Nats-Pending-Bytes", String(wr.b)],
        ]);
        continue;
      }
      if (!this.host.bus.hasInterest(wr.reply)) continue;
      brp += wr.n;
      if (wr.hbt) {
        if (now >= wr.hbt) {
          this.#heartbeat(wr.reply);
          wr.hbt = now + wr.hb;
        }
        if (!fexp || wr.hbt < fexp) fexp = wr.hbt;
      }
      if (wr.expires && (!fexp || wr.expires < fexp)) fexp = wr.expires;
      keep.push(wr);
    }
    this.waiting = keep;
    if (this.#wtmr) clearTimeout(this.#wtmr);
    this.#wtmr = undefined;
    if (fexp && !this.#stopped) {
      this.#wtmr = setTimeout(
        () => {
          this.#wtmr = undefined;
          this.#processWaiting(true);
          this.signal();
        },
        Math.max(1, fexp - now),
      );
    }
    return brp;
  }

  #heartbeat(subject: string): void {
    this.#status(subject, 100, "Idle Heartbeat", [
      ["Nats-Last-Consumer", String(this.dseq - 1)],
      ["Nats-Last-Stream", String(this.sseq - 1)],
    ]);
  }

  #nextWaiting(sz: number): WaitingRequest | undefined {
    const now = Date.now();
    while (this.waiting.length) {
      const wr = this.waiting[0] as WaitingRequest;
      if (wr.b > 0) {
        if (sz <= wr.b) {
          wr.b -= sz;
          if (wr.b === 0) wr.n = 1;
        } else {
          this.#status(wr.reply, 409, "Message Size Exceeds MaxBytes", [
            ["Nats-Pending-Messages", String(wr.n)],
            ["Nats-Pending-Bytes", String(wr.b)],
          ]);
          this.waiting.shift();
          continue;
        }
      }
      if ((!wr.expires || now < wr.expires) && this.host.bus.hasInterest(wr.reply)) return wr;
      this.waiting.shift();
    }
    return undefined;
  }

  // ---- delivery ----

  #getNextMsg(): { m: StoredMsg; dc: number } | "maxp" | undefined {
    if (this.rdq.length) {
      for (let seq = this.rdq.shift(); seq !== undefined; seq = this.rdq.shift()) {
        const r = (this.rdc.get(seq) ?? 0) + 1;
        this.rdc.set(seq, r);
        const dc = r + 1;
        const maxdc = this.#maxdc;
        if (maxdc > 0 && dc > maxdc) {
          if (dc === maxdc + 1) this.#notifyDeliveryExceeded(seq, dc - 1);
          const p = this.pending.get(seq);
          if (p) this.exceeded.set(seq, p);
          this.pending.delete(seq);
          continue;
        }
        const m = this.stream.msgs.get(seq);
        if (m) return { m, dc };
      }
    }
    let seq = this.sseq;
    if (this.#lss) {
      seq = this.#lss.seqs[0] as number;
      if (this.#lss.seqs.length === 1) {
        this.sseq = this.#lss.resume;
        this.#lss = undefined;
      } else this.#lss.seqs = this.#lss.seqs.slice(1);
    }
    const maxp = (this.config.max_ack_pending as number | undefined) ?? 0;
    if (this.#explicit && maxp > 0 && this.pending.size >= maxp) return "maxp";
    const m = this.stream.nextMatching(seq, this.filters);
    if (!m) {
      if (this.sseq <= this.stream.lastSeq) this.sseq = this.stream.lastSeq + 1;
      return undefined;
    }
    if (m.seq >= this.sseq) this.sseq = m.seq + 1;
    return { m, dc: 1 };
  }

  #loop(): void {
    let maxp = false;
    for (let guard = 0; guard < 100_000; guard++) {
      if (this.#isPush) {
        if (!this.host.bus.hasInterest(this.config.deliver_subject as string)) break;
      } else if (this.waiting.length === 0) break;
      // Taking the next message moves sseq and the delivery counts: a write due before must
      // not see that.
      this.#flushDue();
      const next = this.#getNextMsg();
      if (next === "maxp") {
        maxp = true;
        break;
      }
      if (!next) break;
      const { m, dc } = next;
      const ackReply = `$JS.ACK.${this.stream.config.name}.${this.name}.${dc}.${m.seq}.${this.dseq}.${BigInt(m.ts) * 1_000_000n}.${this.numPending()}`;
      let hdr = m.hdr;
      let data = m.data;
      if (this.config.headers_only) {
        const base = hdr ? hdr.subarray(0, hdr.length - 2) : TE.encode("NATS/1.0\r\n");
        hdr = concat(base, TE.encode(`Nats-Msg-Size: ${data.length}\r\n\r\n`));
        data = new Uint8Array(0);
      }
      const sz = m.subject.length + ackReply.length + (hdr?.length ?? 0) + data.length;
      let dsubj: string;
      if (this.#isPush) dsubj = this.config.deliver_subject as string;
      else {
        const wr = this.#nextWaiting(sz);
        if (!wr) {
          // Put it back: the next pull gets it.
          if (dc === 1) this.sseq = m.seq;
          else {
            this.rdq.unshift(m.seq);
            this.rdc.set(m.seq, (this.rdc.get(m.seq) ?? 1) - 1);
          }
          break;
        }
        dsubj = wr.reply;
        wr.n--;
        wr.d++;
        if (wr.n <= 0) this.waiting.shift();
        else if (wr.hb > 0) wr.hbt = Date.now() + wr.hb;
      }
      this.#deliver(dsubj, ackReply, m, hdr, data, dc);
    }
    if (!this.#isPush) this.#processWaiting(!maxp);
    else this.#armHeartbeat();
  }

  #deliver(
    dsubj: string,
    ackReply: string,
    m: StoredMsg,
    hdr: Uint8Array | undefined,
    data: Uint8Array,
    _dc: number,
  ): void {
    this.#markDirty();
    const dseq = this.dseq++;
    if (this.#explicit) this.#trackPending(m.seq, dseq);
    else {
      this.adflr = dseq;
      this.asflr = m.seq;
    }
    // Routed to the requester's inbox, written with the message's own subject.
    const msg: BusMsg = { subject: m.subject, route: dsubj, reply: ackReply, data };
    if (hdr) msg.hdr = hdr;
    this.host.bus.publish(msg);
  }

  #trackPending(sseq: number, dseq: number): void {
    if (!this.#ptmr) this.#armCheck(this.#ackWaitMs + ACK_WAIT_DELAY_MS);
    const p = this.pending.get(sseq);
    if (p) p.ts = Date.now();
    else this.pending.set(sseq, { dseq, ts: Date.now() });
  }

  #armCheck(ms: number): void {
    if (this.#ptmr) clearTimeout(this.#ptmr);
    this.#ptmr = setTimeout(() => this.#checkPending(), Math.max(0, ms));
  }

  /** The server's checkPending: queues expired deliveries, re-arms for the next deadline. */
  #checkPending(): void {
    this.#ptmr = undefined;
    if (this.#stopped) return;
    this.#flushDue();
    const now = Date.now();
    const ttl = this.#ackWaitMs;
    const backoff = (this.config.backoff ?? []).map((b) => b / NS);
    let next = backoff.length ? (backoff[backoff.length - 1] as number) : ttl;
    const expired: number[] = [];
    for (const [seq, p] of this.pending) {
      if (seq < this.stream.firstSeq) {
        this.pending.delete(seq);
        this.rdc.delete(seq);
        this.rdq = this.rdq.filter((s) => s !== seq);
        continue;
      }
      const elapsed = now - p.ts;
      let deadline = ttl;
      if (backoff.length) {
        let dc = this.rdc.get(seq) ?? 0;
        let nbi = dc + 1;
        if (dc + 1 >= backoff.length) {
          dc = backoff.length - 1;
          nbi = dc;
        }
        deadline = backoff[dc] as number;
        if ((backoff[nbi] as number) < next) next = backoff[nbi] as number;
      }
      if (elapsed >= deadline) {
        if (!this.rdq.includes(seq)) expired.push(seq);
      } else if (deadline - elapsed < next) next = deadline - elapsed;
    }
    if (expired.length) {
      expired.sort((a, b) => a - b);
      this.rdq.push(...expired);
      const off = now - (this.pending.get(expired[0] as number) as Pending).ts;
      for (const seq of expired) {
        const p = this.pending.get(seq);
        if (p) p.ts += off;
      }
      this.signal();
    }
    if (this.pending.size > 0) this.#armCheck((next > 0 ? next : ttl) + ACK_WAIT_DELAY_MS);
  }

  #notifyDeliveryExceeded(seq: number, deliveries: number): void {
    this.host.advisory(`$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.${this.stream.config.name}.${this.name}`, {
      type: "io.nats.jetstream.advisory.v1.max_deliver",
      stream: this.stream.config.name,
      consumer: this.name,
      stream_seq: seq,
      deliveries,
    });
  }

  // ---- acks ----

  /** A message on `$JS.ACK.<stream>.<consumer>.<dc>.<sseq>.<dseq>.<ts>.<pending>`. */
  ack(subject: string, body: Uint8Array, reply: string): void {
    const t = subject.split(".");
    const dc = Number(t[4]);
    const sseq = Number(t[5]);
    const dseq = Number(t[6]);
    const text = new TextDecoder().decode(body);
    let skipReply = false;
    if (text === "" || text === "+ACK" || text === "+OK") this.#processAck(sseq, dseq);
    else if (text.startsWith("+NXT")) {
      this.#processAck(sseq, dseq);
      this.nextRequest(reply, TE.encode(text.slice(4)));
      skipReply = true;
    } else if (text.startsWith("-NAK")) this.#processNak(sseq, dseq, dc, text);
    else if (text === "+WPI") {
      const p = this.pending.get(sseq);
      if (p) {
        this.#willChange();
        p.ts = Date.now();
      }
    } else if (text === "+TERM") {
      this.#processAck(sseq, dseq);
      this.host.advisory(
        `$JS.EVENT.ADVISORY.CONSUMER.MSG_TERMINATED.${this.stream.config.name}.${this.name}`,
        {
          type: "io.nats.jetstream.advisory.v1.terminated",
          stream: this.stream.config.name,
          consumer: this.name,
          consumer_seq: dseq,
          stream_seq: sseq,
          deliveries: dc,
        },
      );
    }
    if (reply && !skipReply) this.host.bus.publish({ subject: reply, reply: "", data: new Uint8Array(0) });
  }

  #processAck(sseq: number, dseqIn: number): void {
    if (!this.#explicit) return;
    this.#willChange();
    let dseq = dseqIn;
    const p = this.pending.get(sseq);
    const wasFull = this.pending.size >= ((this.config.max_ack_pending as number | undefined) ?? 0);
    if (p) {
      this.pending.delete(sseq);
      dseq = p.dseq;
    }
    if (this.pending.size === 0) {
      this.adflr = this.dseq - 1;
      this.asflr = this.sseq - 1;
    } else if (dseq === this.adflr + 1) {
      this.adflr = dseq;
      this.asflr = sseq;
      for (let ss = sseq + 1; ss < this.sseq; ss++) {
        const q = this.pending.get(ss);
        if (q) {
          this.adflr = q.dseq - 1;
          this.asflr = ss - 1;
          break;
        }
      }
    }
    this.rdc.delete(sseq);
    this.rdq = this.rdq.filter((s) => s !== sseq);
    this.exceeded.delete(sseq);
    if (wasFull) this.signal();
  }

  #processNak(sseq: number, dseq: number, _dc: number, text: string): void {
    if (dseq <= this.adflr || dseq >= this.dseq) return;
    if (this.pending.size > 0 && !this.pending.has(sseq)) return;
    const arg = text.slice(4).trim();
    if (arg) {
      let d: number | undefined;
      if (arg.startsWith("{")) d = ((JSON.parse(arg) as { delay?: number }).delay ?? 0) / NS;
      else d = parseGoDuration(arg);
      if (d !== undefined) {
        this.rdq = this.rdq.filter((s) => s !== sseq);
        const p = this.pending.get(sseq);
        if (p) {
          this.#willChange();
          p.ts = Date.now() - this.#ackWaitMs + d;
          if (this.#ptmr) this.#armCheck(10);
        }
        return;
      }
    }
    if (!this.rdq.includes(sseq)) {
      this.rdq.push(sseq);
      this.signal();
    }
  }

  // ---- push heartbeats, inactivity ----

  #armHeartbeat(): void {
    if (!this.#isPush || !this.config.idle_heartbeat || this.#stopped) return;
    if (this.#hbtmr) clearTimeout(this.#hbtmr);
    const ms = this.config.idle_heartbeat / NS;
    this.#hbtmr = setTimeout(() => {
      this.#hbtmr = undefined;
      if (this.host.bus.hasInterest(this.config.deliver_subject as string))
        this.#heartbeat(this.config.deliver_subject as string);
      this.#armHeartbeat();
    }, ms);
  }

  #touch(): void {
    this.#checkInactive();
  }

  /** Ephemerals without interest are dropped after inactive_threshold (default 5 s). */
  #checkInactive(): void {
    if (this.config.durable_name || this.#stopped) return;
    const active = this.#isPush
      ? this.host.bus.hasInterest(this.config.deliver_subject as string)
      : this.waiting.length > 0;
    if (active) {
      if (this.#itmr) clearTimeout(this.#itmr);
      this.#itmr = undefined;
      return;
    }
    if (this.#itmr) return;
    const ms = this.config.inactive_threshold ? this.config.inactive_threshold / NS : 5_000;
    this.#itmr = setTimeout(() => {
      this.#itmr = undefined;
      const still = this.#isPush
        ? this.host.bus.hasInterest(this.config.deliver_subject as string)
        : this.waiting.some((w) => this.host.bus.hasInterest(w.reply));
      if (still) return;
      this.host.drop(this);
    }, ms);
  }

  // ---- the state file (what survives a SIGKILL) ----

  /**
   * Called before every change the server hands to its consumer store (UpdateDelivered on a
   * delivery, +WPI and a nak with delay; UpdateAcks on an ack or term). Writes the file lazily:
   * a write due at `#writeAt` holds the state as it stood then, which is the state now, as
   * nothing changed since; this change then waits for the next write, at once after a quiet
   * spell, else 100 ms after the last one. No timers: the file is only read on a crash.
   */
  /** The consumer has written its state file, or is about to: a kill can catch it mid-write. */
  get writesState(): boolean {
    return this.#saved !== undefined || this.#writeAt !== undefined;
  }

  #willChange(): void {
    this.#flushDue();
    this.#markDirty();
  }

  /** Writes the file if a write fell due before now (the state still is what it was then). */
  #flushDue(): void {
    if (this.#writeAt !== undefined && Date.now() > this.#writeAt) this.#write();
  }

  /** A change was made in this virtual ms, after `#flushDue()`: the next write carries it. */
  #markDirty(): void {
    this.#writeAt ??= Math.max(Date.now(), this.#lastWrite + STATE_FLUSH_MS);
  }

  #write(): void {
    this.#saved = {
      sseq: this.sseq,
      dseq: this.dseq,
      adflr: this.adflr,
      asflr: this.asflr,
      pending: copyPending(this.pending),
      exceeded: copyPending(this.exceeded),
      rdc: new Map(this.rdc),
    };
    this.#lastWrite = this.#writeAt as number;
    this.#writeAt = undefined;
  }

  /**
   * The server was killed (SIGKILL) while stopped: the state falls back to its file, which
   * misses every change the flusher had not written yet (a write due in the same virtual ms
   * as the kill is lost too). `torn`: the kill came while the file was being rewritten
   * (os.WriteFile truncates first), the file is empty and the consumer starts over as if just
   * created, from its deliver policy (measured, SERVER-BEHAVIOUR.md §8). Call between
   * `stop()` and `restarted()`.
   */
  crashed(torn: boolean): CrashOutcome {
    this.#flushDue();
    const before = {
      ackFloor: [this.adflr, this.asflr] as [number, number],
      delivered: [this.dseq - 1, this.sseq - 1] as [number, number],
    };
    const saved = torn ? undefined : this.#saved;
    this.#saved = saved;
    this.#writeAt = undefined;
    this.#lastWrite = Number.NEGATIVE_INFINITY;
    this.pending.clear();
    this.exceeded.clear();
    this.rdc.clear();
    this.rdq = [];
    this.#lss = undefined;
    if (saved) {
      this.sseq = saved.sseq;
      this.dseq = saved.dseq;
      this.adflr = saved.adflr;
      this.asflr = saved.asflr;
      for (const [seq, p] of saved.pending) this.pending.set(seq, { ...p });
      for (const [seq, p] of saved.exceeded) this.exceeded.set(seq, { ...p });
      for (const [seq, n] of saved.rdc) this.rdc.set(seq, n);
    } else {
      this.dseq = 1;
      this.adflr = 0;
      this.asflr = 0;
      this.#selectStart();
    }
    return {
      consumer: `${this.stream.config.name}/${this.name}`,
      torn,
      ackFloor: { before: before.ackFloor, after: [this.adflr, this.asflr] },
      delivered: { before: before.delivered, after: [this.dseq - 1, this.sseq - 1] },
    };
  }

  /** Stops every timer (delete, or the server going down). */
  stop(): void {
    this.#stopped = true;
    for (const t of [this.#ptmr, this.#wtmr, this.#hbtmr, this.#itmr]) if (t) clearTimeout(t);
    this.#ptmr = this.#wtmr = this.#hbtmr = this.#itmr = undefined;
    this.#offInterest();
  }

  /**
   * After a server restart: pull requests are gone, the stored pending state (dropped
   * max_deliver sequences included) comes back, and the first check runs 0.5-1.5 s later.
   */
  restarted(): void {
    this.#stopped = false;
    this.waiting = [];
    this.rdq = [];
    const maxdc = this.#maxdc;
    for (const [seq, p] of this.exceeded) {
      this.pending.set(seq, p);
      this.rdc.set(seq, Math.max(0, maxdc - 2));
    }
    this.exceeded.clear();
    this.#offInterest = this.host.bus.onInterest(() => {
      this.signal();
      this.#checkInactive();
    });
    if (this.pending.size) this.#armCheck(500 + Math.floor(this.host.random() * 1000));
    this.#armHeartbeat();
    this.#checkInactive();
  }

  /** CONSUMER.INFO body. */
  info(): Record<string, unknown> {
    let redelivered = 0;
    for (const seq of this.pending.keys()) if ((this.rdc.get(seq) ?? 0) > 0) redelivered++;
    for (const seq of this.exceeded.keys()) if ((this.rdc.get(seq) ?? 0) > 0) redelivered++;
    const out: Record<string, unknown> = {
      stream_name: this.stream.config.name,
      name: this.name,
      created: new Date(this.created).toISOString(),
      config: this.config,
      delivered: { consumer_seq: this.dseq - 1, stream_seq: this.sseq - 1 },
      ack_floor: { consumer_seq: this.adflr, stream_seq: this.asflr },
      num_ack_pending: this.pending.size,
      num_redelivered: redelivered,
      num_waiting: this.waiting.length,
      num_pending: this.numPending(),
      cluster: { leader: "sim" },
    };
    if (this.#isPush) out.push_bound = this.host.bus.hasInterest(this.config.deliver_subject as string);
    return out;
  }
}

function copyPending(from: Map<number, Pending>): Map<number, Pending> {
  const out = new Map<number, Pending>();
  for (const [seq, p] of from) out.set(seq, { dseq: p.dseq, ts: p.ts });
  return out;
}

/** Go's time.ParseDuration for the forms a NAK carries ("1s", "1500ms", "2m", "1.5s"). */
function parseGoDuration(s: string): number | undefined {
  const re = /(-?\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/g;
  const unit: Record<string, number> = {
    ns: 1e-6,
    us: 1e-3,
    µs: 1e-3,
    ms: 1,
    s: 1000,
    m: 60_000,
    h: 3_600_000,
  };
  let total = 0;
  let used = 0;
  for (let m = re.exec(s); m; m = re.exec(s)) {
    total += Number(m[1]) * (unit[m[2] as string] as number);
    used += m[0].length;
  }
  return used === s.length && used > 0 ? total : undefined;
}
