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

/** A client subscription as the bus' index holds it. */
interface Route {
  readonly session: Session;
  readonly sid: string;
  readonly sub: ClientSub;
  /**
   * Where the subscription stands in its session's `subs` (insertion order, kept when a sid
   * is subscribed again): matches are delivered in (session, order) order, the order of a
   * walk over every session's subscriptions.
   */
  readonly order: number;
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

  /**
   * Bytes from the client; whole commands are processed, a partial one is kept. The frame
   * is the server's own (the transport copied it), so messages keep views into it.
   */
  receive(frame: Uint8Array): void {
    if (this.closed) return;
    let buf = this.#pending.length ? concat(this.#pending, frame) : frame;
    for (;;) {
      const eol = indexOfCrLf(buf, 0);
      if (eol < 0) break;
      const line = asciiString(buf, 0, eol);
      const [op = "", ...args] = words(line);
      const verb = op.toUpperCase();
      if (verb === "PUB" || verb === "HPUB") {
        const total = Number(args[args.length - 1]);
        if (buf.length < eol + 2 + total + 2) break;
        const body = buf.subarray(eol + 2, eol + 2 + total);
        buf = buf.subarray(eol + 2 + total + 2);
        if (verb === "PUB") {
          const [subject = "", reply = ""] = args.length === 3 ? args : [args[0], ""];
          this.#bus.publish({ subject, reply, data: body }, this);
        } else {
          const hlen = Number(args[args.length - 2]);
          const [subject = "", reply = ""] = args.length === 4 ? args : [args[0], ""];
          this.#bus.publish({ subject, reply, hdr: body.subarray(0, hlen), data: body.subarray(hlen) }, this);
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
        this.#subscribe(sid, { subject, tokens: subject.split("."), queue, max: 0, received: 0 });
        this.#bus.interestChanged();
        return;
      }
      case "UNSUB": {
        const [sid = "", max] = args;
        const s = this.subs.get(sid);
        if (!s) return;
        if (max !== undefined && Number(max) > s.received) s.max = Number(max);
        else this.#unsubscribe(sid);
        this.#bus.interestChanged();
        return;
      }
      default:
        this.#write(TE.encode(`-ERR 'Unknown Protocol Operation'\r\n`));
    }
  }

  /** Orders of this session's subscriptions, by sid (a sid subscribed again keeps its place). */
  readonly #orders = new Map<string, number>();

  #subscribe(sid: string, sub: ClientSub): void {
    const old = this.subs.get(sid);
    if (old) this.#bus.unroute(old);
    let order = this.#orders.get(sid);
    if (order === undefined) {
      order = this.#bus.nextOrder();
      this.#orders.set(sid, order);
    }
    this.subs.set(sid, sub);
    this.#bus.route({ session: this, sid, sub, order });
  }

  #unsubscribe(sid: string): void {
    const s = this.subs.get(sid);
    if (!s) return;
    this.subs.delete(sid);
    this.#orders.delete(sid);
    this.#bus.unroute(s);
  }

  /** Writes one message for `sid`. */
  deliver(sid: string, msg: BusMsg): void {
    const s = this.subs.get(sid);
    if (!s || this.closed) return;
    s.received++;
    if (s.max > 0 && s.received >= s.max) this.#unsubscribe(sid);
    const reply = msg.reply ? ` ${msg.reply}` : "";
    if (msg.hdr && this.headers) {
      const total = msg.hdr.length + msg.data.length;
      this.#write(
        msgFrame(`HMSG ${msg.subject} ${sid}${reply} ${msg.hdr.length} ${total}\r\n`, msg.hdr, msg.data),
      );
    } else {
      this.#write(msgFrame(`MSG ${msg.subject} ${sid}${reply} ${msg.data.length}\r\n`, undefined, msg.data));
    }
  }

  /** Closes the connection from the server side (restart, disconnect fault). */
  kill(): void {
    if (this.closed) return;
    this.closed = true;
    for (const sub of this.subs.values()) this.#bus.unroute(sub);
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
  /** Internal subscriptions; replaced, never changed, so a publish walks a stable list. */
  #internal: readonly { pattern: string; tokens: readonly string[]; fn: InternalHandler }[] = [];
  readonly #interest = new Set<() => void>();
  readonly #random: () => number;
  /** Client subscriptions by subject tokens, as nats-server's sublist. */
  readonly #index = new SubjectIndex<Route>();
  /** The index entry of each client subscription. */
  readonly #routes = new Map<ClientSub, Route>();
  #nextId = 1;
  #nextOrder = 1;

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

  /** The order of a new subscription (see {@link Route.order}). */
  nextOrder(): number {
    return this.#nextOrder++;
  }

  /** Indexes a client subscription. */
  route(r: Route): void {
    this.#routes.set(r.sub, r);
    this.#index.add(r.sub.tokens, r);
  }

  /** Drops a client subscription from the index. */
  unroute(sub: ClientSub): void {
    const r = this.#routes.get(sub);
    if (!r) return;
    this.#routes.delete(sub);
    this.#index.remove(sub.tokens, r);
  }

  /** Subscribes inside the server; returns the unsubscribe function. */
  subscribeInternal(pattern: string, fn: InternalHandler): () => void {
    const e = { pattern, tokens: pattern.split("."), fn };
    this.#internal = [...this.#internal, e];
    return () => {
      this.#internal = this.#internal.filter((x) => x !== e);
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
    return this.#index.any(subject.split("."));
  }

  /** Routes a message to every matching subscription (one member per queue group). */
  publish(msg: BusMsg, from?: Session): void {
    let matched = 0;
    const target = msg.route ?? msg.subject;
    const tokens = target.split(".");
    const found = this.#index.match(tokens);
    if (found.length > 1) found.sort(byPlace);
    let groups: Map<string, Route[]> | undefined;
    for (const r of found) {
      if (r.sub.queue) {
        groups ??= new Map();
        const g = groups.get(r.sub.queue);
        if (g) g.push(r);
        else groups.set(r.sub.queue, [r]);
      } else {
        r.session.deliver(r.sid, msg);
        matched++;
      }
    }
    if (groups)
      for (const members of groups.values()) {
        const r = members[Math.floor(this.#random() * members.length)] as Route;
        r.session.deliver(r.sid, msg);
        matched++;
      }
    for (const e of this.#internal) {
      if (tokensMatch(e.tokens, tokens)) {
        if (e.fn(msg, from) !== false) matched++;
      }
    }
    if (matched === 0 && msg.reply && from?.noResponders && from.headers) {
      this.publish({ subject: msg.reply, reply: "", hdr: encodeHeaders([], 503), data: new Uint8Array(0) });
    }
  }
}

/** Sessions in attach order, then each session's subscriptions in its order. */
const byPlace = (a: Route, b: Route): number => a.session.id - b.session.id || a.order - b.order;

interface IndexNode<T> {
  readonly literal: Map<string, IndexNode<T>>;
  star: IndexNode<T> | undefined;
  /** Subscriptions ending here. */
  readonly here: Set<T>;
  /** Subscriptions ending here with `>`. */
  readonly rest: Set<T>;
}

const node = <T>(): IndexNode<T> => ({
  literal: new Map(),
  star: undefined,
  here: new Set(),
  rest: new Set(),
});

/**
 * Subscriptions by their subject's tokens (`*` one token, `>` the rest), matched in time
 * proportional to a subject's tokens rather than to every subscription.
 */
class SubjectIndex<T> {
  readonly #root: IndexNode<T> = node();

  add(tokens: readonly string[], v: T): void {
    let n = this.#root;
    for (let i = 0; i < tokens.length; i++) {
      const t = tokens[i] as string;
      if (t === ">") {
        n.rest.add(v);
        return;
      }
      if (t === "*") n = n.star ??= node();
      else {
        let next = n.literal.get(t);
        if (!next) {
          next = node();
          n.literal.set(t, next);
        }
        n = next;
      }
    }
    n.here.add(v);
  }

  remove(tokens: readonly string[], v: T): void {
    const path: [IndexNode<T>, string][] = [];
    let n: IndexNode<T> | undefined = this.#root;
    for (let i = 0; i < tokens.length && n; i++) {
      const t = tokens[i] as string;
      if (t === ">") {
        n.rest.delete(v);
        break;
      }
      path.push([n, t]);
      n = t === "*" ? n.star : n.literal.get(t);
      if (n && i === tokens.length - 1) n.here.delete(v);
    }
    // Prune the branches left empty (inbox subjects are many and short-lived).
    for (let i = path.length - 1; i >= 0; i--) {
      const [parent, t] = path[i] as [IndexNode<T>, string];
      const child = t === "*" ? parent.star : parent.literal.get(t);
      if (!child || child.here.size || child.rest.size || child.literal.size || child.star) break;
      if (t === "*") parent.star = undefined;
      else parent.literal.delete(t);
    }
  }

  /** Every subscription matching the literal subject `tokens`, in no particular order. */
  match(tokens: readonly string[]): T[] {
    const out: T[] = [];
    collect(this.#root, tokens, 0, out);
    return out;
  }

  any(tokens: readonly string[]): boolean {
    return anyMatch(this.#root, tokens, 0);
  }
}

function collect<T>(n: IndexNode<T>, tokens: readonly string[], i: number, out: T[]): void {
  if (i < tokens.length && n.rest.size) for (const v of n.rest) out.push(v);
  if (i === tokens.length) {
    if (n.here.size) for (const v of n.here) out.push(v);
    return;
  }
  if (n.literal.size) {
    const lit = n.literal.get(tokens[i] as string);
    if (lit) collect(lit, tokens, i + 1, out);
  }
  if (n.star) collect(n.star, tokens, i + 1, out);
}

function anyMatch<T>(n: IndexNode<T>, tokens: readonly string[], i: number): boolean {
  if (i < tokens.length && n.rest.size) return true;
  if (i === tokens.length) return n.here.size > 0;
  const lit = n.literal.get(tokens[i] as string);
  if (lit && anyMatch(lit, tokens, i + 1)) return true;
  return n.star !== undefined && anyMatch(n.star, tokens, i + 1);
}

/** Bytes as a string, one char each: protocol lines are ASCII (anything else goes through UTF-8). */
function asciiString(b: Uint8Array, from: number, to: number): string {
  for (let i = from; i < to; i++) if ((b[i] as number) > 127) return TD.decode(b.subarray(from, to));
  return to - from < 4096
    ? String.fromCharCode.apply(null, b.subarray(from, to) as unknown as number[])
    : TD.decode(b.subarray(from, to));
}

/** The space-separated words of a protocol line. */
function words(line: string): string[] {
  const out: string[] = [];
  let start = 0;
  for (let i = 0; i <= line.length; i++) {
    if (i === line.length || line.charCodeAt(i) === 32) {
      if (i > start) out.push(line.slice(start, i));
      start = i + 1;
    }
  }
  return out;
}

/** One MSG or HMSG frame: `head` in UTF-8, the header block, the payload, CRLF; one allocation. */
function msgFrame(head: string, hdr: Uint8Array | undefined, data: Uint8Array): Uint8Array {
  const h = isAscii(head) ? head.length : TE.encode(head).length;
  const hlen = hdr?.length ?? 0;
  const out = new Uint8Array(h + hlen + data.length + 2);
  TE.encodeInto(head, out);
  let o = h;
  if (hdr) {
    out.set(hdr, o);
    o += hlen;
  }
  out.set(data, o);
  o += data.length;
  out[o] = 13;
  out[o + 1] = 10;
  return out;
}

function isAscii(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 127) return false;
  return true;
}

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
