import { encodeHeaders } from "./headers.ts";
import { tokensMatch } from "./subjects.ts";

const TE = new TextEncoder();
const TD = new TextDecoder();

/** A message on the simulated core NATS bus. */
export interface BusMsg {
  subject: string;
  /** Reply subject, "" when none. */
  reply: string;
  /** Raw header block (`NATS/1.0...`), undefined when the message has none. */
  hdr?: Uint8Array;
  data: Uint8Array;
  /** Routing subject when it differs from the subject written (JetStream deliveries to an inbox). */
  route?: string;
}

/** A subscription made inside the server (JetStream API, stream capture, acks); false = not a responder. */
type InternalHandler = (msg: BusMsg, from: Session | undefined) => boolean | undefined;

interface ClientSub {
  subject: string;
  /** The subject's tokens, split once (routing runs for every message). */
  tokens: readonly string[];
  queue: string;
  max: number;
  received: number;
}

/**
 * One client connection as the server sees it: parses the client's protocol (CONNECT, PING,
 * SUB, UNSUB, PUB, HPUB) and writes the server's (INFO, PONG, MSG, HMSG).
 */
export class Session {
  name = "";
  headers = false;
  noResponders = false;
  closed = false;
  readonly subs = new Map<string, ClientSub>();
  #pending: Uint8Array = new Uint8Array(0);
  readonly #bus: CoreBus;
  readonly #write: (bytes: Uint8Array) => void;
  readonly #kill: () => void;

  constructor(
    bus: CoreBus,
    readonly id: number,
    write: (b: Uint8Array) => void,
    kill: () => void,
  ) {
    this.#bus = bus;
    this.#write = write;
    this.#kill = kill;
  }

  /** Sends INFO; the client answers with CONNECT and PING. */
  greet(info: Record<string, unknown>): void {
    this.#write(TE.encode(`INFO ${JSON.stringify({ ...info, client_id: this.id })}\r\n`));
  }

  /** Bytes from the client; whole commands are processed, a partial one is kept. */
  receive(frame: Uint8Array): void {
    if (this.closed) return;
    let buf = this.#pending.length ? concat(this.#pending, frame) : frame;
    for (;;) {
      const eol = indexOfCrLf(buf, 0);
      if (eol < 0) break;
      const line = TD.decode(buf.subarray(0, eol));
      const [op = "", ...args] = line.split(" ").filter((t) => t !== "");
      const verb = op.toUpperCase();
      if (verb === "PUB" || verb === "HPUB") {
        const total = Number(args[args.length - 1]);
        if (buf.length < eol + 2 + total + 2) break;
        const body = buf.subarray(eol + 2, eol + 2 + total);
        buf = buf.subarray(eol + 2 + total + 2);
        if (verb === "PUB") {
          const [subject = "", reply = ""] = args.length === 3 ? args : [args[0], ""];
          this.#bus.publish({ subject, reply, data: body.slice() }, this);
        } else {
          const hlen = Number(args[args.length - 2]);
          const [subject = "", reply = ""] = args.length === 4 ? args : [args[0], ""];
          const hdr = body.slice(0, hlen);
          this.#bus.publish({ subject, reply, hdr, data: body.slice(hlen) }, this);
        }
        continue;
      }
      buf = buf.subarray(eol + 2);
      this.#command(verb, args, line);
      if (this.closed) return;
    }
    this.#pending = buf.slice();
  }

  #command(verb: string, args: string[], line: string): void {
    switch (verb) {
      case "CONNECT": {
        const c = JSON.parse(line.slice(line.indexOf("{"))) as {
          name?: string;
          headers?: boolean;
          no_responders?: boolean;
        };
        this.name = c.name ?? "";
        this.headers = c.headers === true;
        this.noResponders = c.no_responders === true;
        return;
      }
      case "PING":
        this.#write(TE.encode("PONG\r\n"));
        return;
      case "PONG":
        return;
      case "SUB": {
        const [subject = "", a = "", b] = args;
        const queue = b === undefined ? "" : a;
        const sid = b === undefined ? a : b;
        this.subs.set(sid, { subject, tokens: subject.split("."), queue, max: 0, received: 0 });
        this.#bus.interestChanged();
        return;
      }
      case "UNSUB": {
        const [sid = "", max] = args;
        const s = this.subs.get(sid);
        if (!s) return;
        if (max !== undefined && Number(max) > s.received) s.max = Number(max);
        else this.subs.delete(sid);
        this.#bus.interestChanged();
        return;
      }
      default:
        this.#write(TE.encode(`-ERR 'Unknown Protocol Operation'\r\n`));
    }
  }

  /** Writes one message for `sid`. */
  deliver(sid: string, msg: BusMsg): void {
    const s = this.subs.get(sid);
    if (!s || this.closed) return;
    s.received++;
    if (s.max > 0 && s.received >= s.max) this.subs.delete(sid);
    const reply = msg.reply ? ` ${msg.reply}` : "";
    if (msg.hdr && this.headers) {
      const total = msg.hdr.length + msg.data.length;
      const head = TE.encode(`HMSG ${msg.subject} ${sid}${reply} ${msg.hdr.length} ${total}\r\n`);
      this.#write(concat(head, msg.hdr, msg.data, CRLF));
    } else {
      const head = TE.encode(`MSG ${msg.subject} ${sid}${reply} ${msg.data.length}\r\n`);
      this.#write(concat(head, msg.data, CRLF));
    }
  }

  /** Closes the connection from the server side (restart, disconnect fault). */
  kill(): void {
    if (this.closed) return;
    this.closed = true;
    this.#bus.detach(this);
    this.#kill();
  }
}

/**
 * The core NATS bus of one simulated server: client sessions and internal subscriptions,
 * routed by subject with wildcards and queue groups; no-responder statuses for requests
 * nobody listens to, as nats-server sends them to clients that ask for them.
 */
export class CoreBus {
  readonly sessions = new Set<Session>();
  readonly #internal: { pattern: string; tokens: readonly string[]; fn: InternalHandler }[] = [];
  readonly #interest = new Set<() => void>();
  readonly #random: () => number;
  #nextId = 1;

  constructor(random: () => number) {
    this.#random = random;
  }

  /** A new client session writing through `write`; `kill` closes its transport. */
  attach(write: (b: Uint8Array) => void, kill: () => void): Session {
    const s = new Session(this, this.#nextId++, write, kill);
    this.sessions.add(s);
    return s;
  }

  detach(s: Session): void {
    this.sessions.delete(s);
    this.interestChanged();
  }

  /** Subscribes inside the server; returns the unsubscribe function. */
  subscribeInternal(pattern: string, fn: InternalHandler): () => void {
    const e = { pattern, tokens: pattern.split("."), fn };
    this.#internal.push(e);
    return () => {
      const i = this.#internal.indexOf(e);
      if (i >= 0) this.#internal.splice(i, 1);
    };
  }

  /** Called whenever client interest may have changed (SUB, UNSUB, disconnect). */
  onInterest(fn: () => void): () => void {
    this.#interest.add(fn);
    return () => this.#interest.delete(fn);
  }

  interestChanged(): void {
    for (const fn of [...this.#interest]) fn();
  }

  /** Whether any client subscription matches `subject`. */
  hasInterest(subject: string): boolean {
    const tokens = subject.split(".");
    for (const s of this.sessions)
      for (const sub of s.subs.values()) if (tokensMatch(sub.tokens, tokens)) return true;
    return false;
  }

  /** Routes a message to every matching subscription (one member per queue group). */
  publish(msg: BusMsg, from?: Session): void {
    let matched = 0;
    const target = msg.route ?? msg.subject;
    const tokens = target.split(".");
    const groups = new Map<string, [Session, string][]>();
    const plain: [Session, string][] = [];
    for (const s of this.sessions) {
      for (const [sid, sub] of s.subs) {
        if (!tokensMatch(sub.tokens, tokens)) continue;
        if (sub.queue) {
          const g = groups.get(sub.queue) ?? [];
          g.push([s, sid]);
          groups.set(sub.queue, g);
        } else plain.push([s, sid]);
      }
    }
    for (const [s, sid] of plain) {
      s.deliver(sid, msg);
      matched++;
    }
    for (const members of groups.values()) {
      const [s, sid] = members[Math.floor(this.#random() * members.length)] as [Session, string];
      s.deliver(sid, msg);
      matched++;
    }
    for (const e of [...this.#internal]) {
      if (tokensMatch(e.tokens, tokens)) {
        if (e.fn(msg, from) !== false) matched++;
      }
    }
    if (matched === 0 && msg.reply && from?.noResponders && from.headers) {
      this.publish({ subject: msg.reply, reply: "", hdr: encodeHeaders([], 503), data: new Uint8Array(0) });
    }
  }
}

const CRLF = TE.encode("\r\n");

function indexOfCrLf(b: Uint8Array, from: number): number {
  for (let i = from; i + 1 < b.length; i++) if (b[i] === 13 && b[i + 1] === 10) return i;
  return -1;
}

/** Concatenates byte arrays. */
export function concat(...parts: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}
