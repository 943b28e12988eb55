import type { BusMsg, CoreBus, Session } from "./core-bus.ts";
import {
  type CrashOutcome,
  consumerConfigWithDefaults,
  orderConsumerConfig,
  SimConsumer,
} from "./consumer.ts";
import { encodeHeaders, parseHeaders } from "./headers.ts";
import { SimStream, type StoreOutcome, streamConfigWithDefaults } from "./stream.ts";
import { subjectMatches, subjectsOverlap } from "./subjects.ts";

const TE = new TextEncoder();
const TD = new TextDecoder();
const API = "$JS.API.";

/** What the fault layer decides for one publish that a stream captures. */
export type PublishFate = "store" | "drop-ack" | "refuse";

/** Options of {@link SimJetStream}. */
export interface SimJetStreamOptions {
  bus: CoreBus;
  random: () => number;
  /** Decides per captured publish; default "store". */
  fate(subject: string, hdr: Uint8Array | undefined): PublishFate;
}

type Reply = Record<string, unknown>;

const apiError = (code: number, err_code: number, description: string) => ({
  error: { code, err_code, description },
});
const b64 = (b: Uint8Array) => Buffer.from(b).toString("base64");
const streamNotFound = () => apiError(404, 10059, "stream not found");
const consumerNotFound = () => apiError(404, 10014, "consumer not found");

/**
 * The JetStream side of a simulated server: the `$JS.API.>` requests nats.js and our runtime
 * send, stream capture with PubAcks, acks on `$JS.ACK.>`, and the streams and consumers.
 */
export class SimJetStream {
  readonly streams = new Map<string, SimStream>();
  readonly consumers = new Map<string, Map<string, SimConsumer>>();
  readonly #o: SimJetStreamOptions;
  #ageTimer: ReturnType<typeof setInterval> | undefined;

  constructor(o: SimJetStreamOptions) {
    this.#o = o;
    o.bus.subscribeInternal("$JS.API.>", (m) => {
      this.#api(m);
      return true;
    });
    o.bus.subscribeInternal("$JS.ACK.>", (m) => {
      this.#ack(m);
      return true;
    });
    o.bus.subscribeInternal(">", (m, from) => this.#capture(m, from));
  }

  #respond(m: BusMsg, body: Reply): void {
    if (!m.reply) return;
    this.#o.bus.publish({ subject: m.reply, reply: "", data: TE.encode(JSON.stringify(body)) });
  }

  #capture(m: BusMsg, _from: Session | undefined): boolean {
    if (m.route !== undefined || m.subject.startsWith("$JS.API.") || m.subject.startsWith("$JS.ACK."))
      return false;
    const stream = this.#streamFor(m.subject);
    if (!stream) return false;
    const fate = this.#o.fate(m.subject, m.hdr);
    if (fate === "refuse") {
      this.#respond(m, { ...apiError(503, 10077, "simulated refusal"), stream: stream.config.name, seq: 0 });
      return true;
    }
    const out: StoreOutcome = stream.store(m.subject, m.hdr, m.data, Date.now());
    if (fate === "drop-ack") return true;
    if ("error" in out) this.#respond(m, { ...out, stream: stream.config.name, seq: 0 });
    else
      this.#respond(
        m,
        out.duplicate
          ? { stream: stream.config.name, seq: out.seq, duplicate: true }
          : { stream: stream.config.name, seq: out.seq },
      );
    return true;
  }

  /** The stream whose subjects take `subject` (streams never overlap), in creation order. */
  #streamFor(subject: string): SimStream | undefined {
    for (const s of this.streams.values())
      for (const p of s.config.subjects) if (subjectMatches(p, subject)) return s;
    return undefined;
  }

  #ack(m: BusMsg): void {
    const t = m.subject.split(".");
    const c = this.consumers.get(t[2] as string)?.get(t[3] as string);
    c?.ack(m.subject, m.data, m.reply);
  }

  #api(m: BusMsg): void {
    const op = m.subject.slice(API.length);
    let req: Record<string, unknown> = {};
    const text = TD.decode(m.data).trim();
    if (text && !op.startsWith("CONSUMER.MSG.NEXT.")) {
      try {
        req = JSON.parse(text) as Record<string, unknown>;
      } catch {
        this.#respond(m, apiError(400, 10025, "invalid JSON"));
        return;
      }
    }
    const t = op.split(".");
    const name = t[2] ?? "";
    const typed = (type: string, body: Reply) =>
      this.#respond(m, { type: `io.nats.jetstream.api.v1.${type}`, ...body });
    if (op === "INFO") {
      typed("account_info_response", this.#accountInfo());
      return;
    }
    if (op.startsWith("STREAM.CREATE.")) {
      typed("stream_create_response", this.#streamCreate(name, req, false));
      return;
    }
    if (op.startsWith("STREAM.UPDATE.")) {
      typed("stream_update_response", this.#streamCreate(name, req, true));
      return;
    }
    if (op.startsWith("STREAM.INFO.")) {
      typed("stream_info_response", this.#streamInfoReply(name));
      return;
    }
    if (op.startsWith("STREAM.DELETE.")) {
      typed("stream_delete_response", this.#streamDelete(name));
      return;
    }
    if (op.startsWith("STREAM.PURGE.")) {
      typed("stream_purge_response", this.#streamPurge(name, req));
      return;
    }
    if (op === "STREAM.NAMES") {
      typed("stream_names_response", this.#names(req));
      return;
    }
    if (op === "STREAM.LIST") {
      typed("stream_list_response", this.#list(req));
      return;
    }
    if (op.startsWith("STREAM.MSG.GET.")) {
      typed("stream_msg_get_response", this.#msgGet(t[3] ?? "", req));
      return;
    }
    if (op.startsWith("STREAM.MSG.DELETE.")) {
      typed("stream_msg_delete_response", this.#msgDelete(t[3] ?? "", req));
      return;
    }
    if (op.startsWith("DIRECT.GET.")) {
      this.#directGet(m, name, t.slice(3).join("."), req);
      return;
    }
    if (op.startsWith("CONSUMER.DURABLE.CREATE.")) {
      typed("consumer_create_response", this.#consumerCreate(t[3] ?? "", t[4] ?? "", req));
      return;
    }
    if (op.startsWith("CONSUMER.CREATE.")) {
      typed("consumer_create_response", this.#consumerCreate(name, t[3] ?? "", req));
      return;
    }
    if (op.startsWith("CONSUMER.INFO.")) {
      typed("consumer_info_response", this.#consumerInfo(name, t[3] ?? ""));
      return;
    }
    if (op.startsWith("CONSUMER.DELETE.")) {
      typed("consumer_delete_response", this.#consumerDelete(name, t[3] ?? ""));
      return;
    }
    if (op.startsWith("CONSUMER.LIST.")) {
      typed("consumer_list_response", this.#consumerList(name, req, false));
      return;
    }
    if (op.startsWith("CONSUMER.NAMES.")) {
      typed("consumer_names_response", this.#consumerList(name, req, true));
      return;
    }
    if (op.startsWith("CONSUMER.MSG.NEXT.")) {
      const c = this.consumers.get(t[3] ?? "")?.get(t[4] ?? "");
      if (!c) {
        if (m.reply)
          this.#o.bus.publish({
            subject: m.reply,
            reply: "",
            hdr: encodeHeaders([], 404, "No Such Consumer"),
            data: new Uint8Array(0),
          });
        return;
      }
      c.nextRequest(m.reply, m.data);
      return;
    }
    this.#respond(m, apiError(400, 10025, "unknown api"));
  }

  #accountInfo(): Reply {
    let storage = 0;
    let consumers = 0;
    for (const s of this.streams.values()) storage += s.bytes;
    for (const c of this.consumers.values()) consumers += c.size;
    return {
      memory: 0,
      storage,
      streams: this.streams.size,
      consumers,
      limits: {
        max_memory: -1,
        max_storage: -1,
        max_streams: -1,
        max_consumers: -1,
        max_ack_pending: -1,
        memory_max_stream_bytes: -1,
        storage_max_stream_bytes: -1,
        max_bytes_required: false,
      },
      api: { total: 0, errors: 0 },
    };
  }

  #streamInfo(s: SimStream): Reply {
    return {
      config: s.config,
      created: new Date(s.created).toISOString(),
      state: s.state(this.consumers.get(s.config.name)?.size ?? 0),
      cluster: { leader: "sim" },
    };
  }

  #streamInfoReply(name: string): Reply {
    const s = this.streams.get(name);
    return s ? this.#streamInfo(s) : streamNotFound();
  }

  #streamCreate(name: string, req: Record<string, unknown>, update: boolean): Reply {
    if (req.name !== undefined && req.name !== name)
      return apiError(400, 10056, "stream name in subject does not match request");
    const cfg = streamConfigWithDefaults({ ...req, name });
    const existing = this.streams.get(name);
    if (update && !existing) return streamNotFound();
    for (const other of this.streams.values()) {
      if (other.config.name === name) continue;
      for (const a of cfg.subjects)
        for (const b of other.config.subjects)
          if (subjectsOverlap(a, b)) return apiError(400, 10065, "subjects overlap with an existing stream");
    }
    if (existing && !update) {
      if (JSON.stringify(existing.config) !== JSON.stringify(cfg))
        return apiError(400, 10058, "stream name already in use with a different configuration");
      return this.#streamInfo(existing);
    }
    if (existing) {
      existing.config = cfg;
      return this.#streamInfo(existing);
    }
    const s = new SimStream(cfg, Date.now());
    s.onStored = () => {
      for (const c of this.consumers.get(name)?.values() ?? []) c.signal();
    };
    this.streams.set(name, s);
    this.consumers.set(name, new Map());
    this.#armAges();
    return { ...this.#streamInfo(s), did_create: true };
  }

  #armAges(): void {
    if (this.#ageTimer) return;
    if (![...this.streams.values()].some((s) => s.config.max_age > 0)) return;
    this.#ageTimer = setInterval(() => {
      for (const s of this.streams.values()) s.expire(Date.now());
    }, 1000);
  }

  #streamDelete(name: string): Reply {
    if (!this.streams.has(name)) return streamNotFound();
    for (const c of this.consumers.get(name)?.values() ?? []) c.stop();
    this.streams.delete(name);
    this.consumers.delete(name);
    return { success: true };
  }

  #streamPurge(name: string, req: Record<string, unknown>): Reply {
    const s = this.streams.get(name);
    if (!s) return streamNotFound();
    if (s.config.deny_purge) return apiError(500, 10110, "stream purge not permitted");
    const purged = s.purge({
      filter: req.filter as string | undefined,
      seq: req.seq as number | undefined,
      keep: req.keep as number | undefined,
    });
    return { success: true, purged };
  }

  #names(req: Record<string, unknown>): Reply {
    const subject = req.subject as string | undefined;
    const names = [...this.streams.values()]
      .filter(
        (s) =>
          !subject ||
          s.config.subjects.some((p) => subjectMatches(p, subject) || subjectsOverlap(p, subject)),
      )
      .map((s) => s.config.name)
      .sort();
    const offset = (req.offset as number | undefined) ?? 0;
    return { total: names.length, offset, limit: 1024, streams: names.slice(offset, offset + 1024) };
  }

  #list(req: Record<string, unknown>): Reply {
    const all = [...this.streams.values()].sort((a, b) => (a.config.name < b.config.name ? -1 : 1));
    const offset = (req.offset as number | undefined) ?? 0;
    return {
      total: all.length,
      offset,
      limit: 256,
      streams: all.slice(offset, offset + 256).map((s) => this.#streamInfo(s)),
    };
  }

  #find(s: SimStream, req: Record<string, unknown>) {
    if (typeof req.last_by_subj === "string") return s.lastBySubject(req.last_by_subj);
    const seq = req.seq as number | undefined;
    if (typeof req.next_by_subj === "string") return s.nextMatching(seq ?? 0, [req.next_by_subj]);
    return seq === undefined ? undefined : s.msgs.get(seq);
  }

  #msgGet(name: string, req: Record<string, unknown>): Reply {
    const s = this.streams.get(name);
    if (!s) return streamNotFound();
    const m = this.#find(s, req);
    if (!m) return apiError(404, 10037, "no message found");
    const message: Reply = { subject: m.subject, seq: m.seq };
    if (m.hdr) message.hdrs = b64(m.hdr);
    message.data = b64(m.data);
    message.time = new Date(m.ts).toISOString();
    return { message };
  }

  #msgDelete(name: string, req: Record<string, unknown>): Reply {
    const s = this.streams.get(name);
    if (!s) return streamNotFound();
    if (s.config.deny_delete) return apiError(500, 10057, "message delete not permitted");
    const ok = s.remove(req.seq as number);
    if (!ok) return apiError(500, 10057, "no message found");
    return { success: true };
  }

  #directGet(m: BusMsg, name: string, lastBySubj: string, req: Record<string, unknown>): void {
    const s = this.streams.get(name);
    const status = (code: number, desc: string) =>
      this.#o.bus.publish({
        subject: m.reply,
        reply: "",
        hdr: encodeHeaders([], code, desc),
        data: new Uint8Array(0),
      });
    if (!m.reply) return;
    if (!s?.config.allow_direct) return; // no responder: the client gets 503
    const found = this.#find(s, lastBySubj ? { last_by_subj: lastBySubj } : req);
    if (!found) {
      status(404, "Message Not Found");
      return;
    }
    const pairs = parseHeaders(found.hdr).pairs;
    pairs.push(
      ["Nats-Stream", name],
      ["Nats-Subject", found.subject],
      ["Nats-Sequence", String(found.seq)],
      ["Nats-Time-Stamp", new Date(found.ts).toISOString()],
    );
    this.#o.bus.publish({ subject: m.reply, reply: "", hdr: encodeHeaders(pairs), data: found.data });
  }

  #consumerCreate(stream: string, nameIn: string, req: Record<string, unknown>): Reply {
    const s = this.streams.get(stream);
    if (!s) return streamNotFound();
    const reqCfg = (req.config ?? {}) as Record<string, unknown>;
    const cfg = consumerConfigWithDefaults(reqCfg);
    if ("error" in cfg) return apiError(...(cfg.error as [number, number, string]));
    if (
      !cfg.deliver_subject &&
      cfg.ack_policy !== "explicit" &&
      cfg.ack_policy !== "all" &&
      cfg.ack_policy !== "none"
    )
      return apiError(400, 10084, "consumer in pull mode requires ack policy");
    const name =
      nameIn ||
      (cfg.durable_name as string | undefined) ||
      (cfg.name as string | undefined) ||
      this.#ephemeralName();
    cfg.name ??= name;
    const ordered = orderConsumerConfig(cfg);
    const map = this.consumers.get(stream) as Map<string, SimConsumer>;
    const existing = map.get(name);
    if (existing) {
      existing.config = ordered;
      existing.signal();
      return existing.info();
    }
    const c = new SimConsumer(s, name, ordered, this.#host(stream), Date.now());
    map.set(name, c);
    c.signal();
    return c.info();
  }

  #ephemeralName(): string {
    const abc = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let n = "";
    for (let i = 0; i < 22; i++) n += abc[Math.floor(this.#o.random() * abc.length)];
    return n;
  }

  #host(stream: string) {
    return {
      bus: this.#o.bus,
      random: this.#o.random,
      advisory: (subject: string, body: Record<string, unknown>) => {
        const full = {
          type: body.type,
          id: this.#ephemeralName(),
          timestamp: new Date().toISOString(),
          ...body,
        };
        this.#o.bus.publish({ subject, reply: "", data: TE.encode(JSON.stringify(full)) });
      },
      drop: (c: SimConsumer) => {
        c.stop();
        this.consumers.get(stream)?.delete(c.name);
      },
    };
  }

  #consumerInfo(stream: string, name: string): Reply {
    if (!this.streams.has(stream)) return streamNotFound();
    const c = this.consumers.get(stream)?.get(name);
    return c ? c.info() : consumerNotFound();
  }

  #consumerDelete(stream: string, name: string): Reply {
    if (!this.streams.has(stream)) return streamNotFound();
    const c = this.consumers.get(stream)?.get(name);
    if (!c) return consumerNotFound();
    c.stop();
    this.consumers.get(stream)?.delete(name);
    return { success: true };
  }

  #consumerList(stream: string, req: Record<string, unknown>, namesOnly: boolean): Reply {
    if (!this.streams.has(stream)) return streamNotFound();
    const all = [...(this.consumers.get(stream)?.values() ?? [])].sort((a, b) => (a.name < b.name ? -1 : 1));
    const offset = (req.offset as number | undefined) ?? 0;
    const page = all.slice(offset, offset + 256);
    return {
      total: all.length,
      offset,
      limit: 256,
      consumers: namesOnly ? page.map((c) => c.name) : page.map((c) => c.info()),
    };
  }

  /** Server going down: consumers stop their timers; state stays. */
  stopAll(): void {
    for (const m of this.consumers.values()) for (const c of m.values()) c.stop();
    if (this.#ageTimer) clearInterval(this.#ageTimer);
    this.#ageTimer = undefined;
  }

  /** Server back: consumers restore their stored state (SimConsumer.restarted). */
  startAll(): void {
    // The last Msg-Id lives in memory only; the server rebuilds it from the messages inside
    // the duplicate window (SERVER-BEHAVIOUR.md §6 b).
    for (const s of this.streams.values())
      if (Date.now() - s.lastTs >= s.config.duplicate_window / 1_000_000) s.lmsgId = "";
    for (const m of this.consumers.values()) for (const c of m.values()) c.restarted();
    this.#armAges();
  }

  /**
   * The server was SIGKILLed (call between `stopAll` and `startAll`): every durable falls back
   * to its state file (SimConsumer.crashed); the one `torn` names (`STREAM/durable`) lost its
   * file. Stored messages are all kept: a stream writes each one before its PubAck.
   */
  crashAll(torn: string | undefined): CrashOutcome[] {
    const out: CrashOutcome[] = [];
    for (const m of this.consumers.values())
      for (const c of m.values())
        if (c.config.durable_name) out.push(c.crashed(`${c.stream.config.name}/${c.name}` === torn));
    return out;
  }

  /** `STREAM/durable` of every durable that has a state file to tear, in creation order. */
  durables(): string[] {
    const out: string[] = [];
    for (const m of this.consumers.values())
      for (const c of m.values())
        if (c.config.durable_name && c.writesState) out.push(`${c.stream.config.name}/${c.name}`);
    return out;
  }

  /** Ephemeral consumers do not outlive a restart; ordered consumers recreate theirs. */
  dropEphemerals(): void {
    for (const m of this.consumers.values())
      for (const [name, c] of m)
        if (!c.config.durable_name) {
          c.stop();
          m.delete(name);
        }
  }

  /** Stops everything for good. */
  close(): void {
    this.stopAll();
  }
}
