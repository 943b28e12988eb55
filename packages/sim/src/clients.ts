import type { Server } from "node:http";
import { type ClientEntry, EventTypes, hashKey, newTimedId, parseClients } from "@jetmesh/contracts";
import type { AcceptedTransfer, Prng, StoredEvent } from "@jetmesh/testkit";
import { type HttpAnswer, httpRequest } from "./http.ts";

/** The API client the world's mints come from: M1 holds only for it. */
export const SIM_MINTER = "sim-operator";
/** The API client of every customer transfer; it owns every customer account. */
export const SIM_CUSTOMER = "sim-customer";

/** The world's API keys (fixed: the world is not about secrets); only their hashes reach the gateway. */
const API_KEYS: Readonly<Record<string, string>> = {
  [SIM_MINTER]: "jm_sim-operator-key-000000000000",
  [SIM_CUSTOMER]: "jm_sim-customer-key-000000000000",
};

/**
 * The gateway's clients file of a world: an operator that mints, and a customer that owns
 * `accounts`. Both with a bucket large enough that a burst world (every request within 2 s)
 * stays a burst: the world is about decisions crowding on one account, not about 429s.
 */
export function simClients(accounts: readonly string[]): ClientEntry[] {
  const rate = { perSecond: 1000, burst: 1000 };
  return parseClients({
    clients: [
      {
        id: SIM_MINTER,
        role: "operator",
        accounts: ["*"],
        mintMaxMinor: 1_000_000_000,
        keys: [{ id: "k1", sha256: hashKey(API_KEYS[SIM_MINTER] as string) }],
        rate,
      },
      {
        id: SIM_CUSTOMER,
        role: "customer",
        accounts: [...accounts],
        keys: [{ id: "k1", sha256: hashKey(API_KEYS[SIM_CUSTOMER] as string) }],
        rate,
      },
    ],
  });
}

/** The transfer-id secrets of a world: one version, valid since the epoch. */
export const SIM_ID_SECRETS = {
  versions: [
    { version: 1, notBefore: "1970-01-01T00:00:00Z", secret: Buffer.alloc(32, 7).toString("base64") },
  ],
};

/** A UUIDv7 made at `ms` (contracts' own) with random bits from `prng`: a client's Idempotency-Key. */
export function timedKey(ms: number, prng: Prng): string {
  return newTimedId(ms, (size) => Uint8Array.from({ length: size }, () => prng.int(0, 255)));
}

/** One client request: who sends it, and the body. */
export interface ClientRequest {
  readonly client: string;
  readonly from: string;
  readonly to: string;
  readonly amountMinor: number;
  /** Its Idempotency-Key, made (with the virtual time) when it is first sent. */
  key?: string;
}

/** What a world's clients saw of the gateway. */
export interface ClientCounts {
  /** 409 "request in progress" answers: a repeat met its first request in flight. */
  readonly inProgress: number;
  /** 200 replays (Idempotent-Replayed). */
  readonly replayed: number;
  /** 503 and 429 answers, each followed by a retry after Retry-After. */
  readonly unavailable: number;
}

/** A request the gateway answered 202 or 200: its transfer. */
interface Answered {
  readonly transferId: string;
  readonly eventId: string;
  readonly from: string;
  readonly to: string;
}

/** The ids of a 202/200 answer; undefined when it names none. */
function parseIds(body: string): { transferId: string; eventId: string } | undefined {
  try {
    const v = JSON.parse(body) as { transferId?: unknown; eventId?: unknown } | null;
    return typeof v?.transferId === "string" && typeof v.eventId === "string"
      ? { transferId: v.transferId, eventId: v.eventId }
      : undefined;
  } catch {
    return undefined;
  }
}

/** After this many answers that say "again later", a client gives up (a violation: the world never served it). */
const MAX_ATTEMPTS = 60;

/**
 * The world's API clients: each request is a real HTTP/1.1 exchange with the gateway's API
 * server, retried as a client does (after Retry-After on 409 "in progress", 429 and 503),
 * until the gateway answers 202 or 200. G1 is checked as answers come: every answer to a key
 * names the transfer its first answer named, and no answer is one a client cannot retry.
 */
export class SimClients {
  readonly #answered = new Map<string, Answered>();
  readonly #accepted: AcceptedTransfer[] = [];
  readonly #violations: string[] = [];
  #inProgress = 0;
  #replayed = 0;
  #unavailable = 0;

  constructor(
    private readonly api: Server,
    private readonly trace: (line: string) => void,
  ) {}

  /**
   * Sends `q` (with its key; made at the virtual time now on its first send) until the gateway
   * accepts it. Resolves when it did, or when the answer was one no retry can change (recorded
   * as a violation).
   */
  async send(q: ClientRequest, keyPrng: Prng): Promise<void> {
    q.key ??= timedKey(Date.now(), keyPrng);
    const body = JSON.stringify({ from: q.from, to: q.to, amountMinor: q.amountMinor, currency: "EUR" });
    const id = `${q.client} ${q.key}`;
    for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
      const a = await httpRequest(this.api, {
        method: "POST",
        path: "/v1/transfers",
        headers: {
          authorization: `Bearer ${API_KEYS[q.client]}`,
          "content-type": "application/json",
          "idempotency-key": q.key,
        },
        body,
      }).catch(
        (err: unknown): HttpAnswer => ({
          status: 0,
          headers: {},
          body: err instanceof Error ? err.message : String(err),
        }),
      );
      if (a.status === 202 || a.status === 200) {
        if (a.status === 200) this.#replayed += 1;
        const ids = parseIds(a.body);
        if (ids) this.#answer(q, id, ids);
        else
          this.#violations.push(`G1 ${id}: answered ${a.status} without a transfer: ${a.body.slice(0, 200)}`);
        return;
      }
      const again = a.status === 409 && a.body.includes("request in progress");
      if (!again && a.status !== 503 && a.status !== 429) {
        this.#violations.push(`G1 ${id}: answered ${a.status} ${a.body.slice(0, 200)}`);
        return;
      }
      if (again) this.#inProgress += 1;
      else this.#unavailable += 1;
      const waitS = Number(a.headers["retry-after"] ?? 1);
      this.trace(`request ${q.key.slice(-8)} answered ${a.status}; again in ${waitS} s`);
      await new Promise((res) => setTimeout(res, (Number.isFinite(waitS) ? waitS : 1) * 1000));
    }
    this.#violations.push(`G1 ${id}: not accepted in ${MAX_ATTEMPTS} attempts`);
  }

  #answer(q: ClientRequest, id: string, a: { transferId: string; eventId: string }): void {
    const first = this.#answered.get(id);
    if (!first) {
      this.#answered.set(id, { transferId: a.transferId, eventId: a.eventId, from: q.from, to: q.to });
      this.#accepted.push({ transferId: a.transferId, from: q.from, to: q.to });
    } else if (first.transferId !== a.transferId || first.eventId !== a.eventId)
      this.#violations.push(
        `G1 ${id}: answered transfer ${a.transferId} (event ${a.eventId}), first answered ${first.transferId} (event ${first.eventId})`,
      );
  }

  /** What the invariant checker takes as accepted: every transfer answered 202 or 200, once. */
  accepted(): readonly AcceptedTransfer[] {
    return this.#accepted;
  }

  /** The transfer each key was first answered with, by `"<client> <key>"`. */
  answered(): ReadonlyMap<string, { readonly transferId: string; readonly eventId: string }> {
    return this.#answered;
  }

  /** The eventId the gateway answered for `q`, once it did. */
  eventIdOf(q: ClientRequest): string | undefined {
    return q.key === undefined ? undefined : this.#answered.get(`${q.client} ${q.key}`)?.eventId;
  }

  violations(): readonly string[] {
    return this.#violations;
  }

  counts(): ClientCounts {
    return { inProgress: this.#inProgress, replayed: this.#replayed, unavailable: this.#unavailable };
  }
}

/**
 * G2, one request per key: INGRESS holds exactly one `transfers.requested` per (client,
 * Idempotency-Key) the gateway accepted, carrying the transfer and event it answered, plus the
 * copies the world itself re-published as a faulty producer (`direct`, by eventId), and none
 * for a key it never accepted. Where Redis lost writes (`storedOnce` false), a key whose record
 * was lost and is repeated past INGRESS's duplicate window is published again, legitimately:
 * then every later copy must be stored at least `windowMs` after the one before it (within the
 * window the stream drops it, and the gateway answers from the stored one).
 */
export function requestsOnce(
  ingress: readonly StoredEvent[],
  o: {
    answered: ReadonlyMap<string, { readonly transferId: string; readonly eventId: string }>;
    direct: ReadonlyMap<string, number>;
    storedOnce: boolean;
    windowMs: number;
  },
): string[] {
  const out: string[] = [];
  const byKey = new Map<string, StoredEvent[]>();
  for (const e of ingress) {
    if (e.env?.type !== EventTypes.TransferRequested) continue;
    const id = `${e.env.actor ?? ""} ${e.env.causationId.replace(/^idempotency-key:/, "")}`;
    const copies = byKey.get(id);
    if (copies) copies.push(e);
    else byKey.set(id, [e]);
  }
  for (const [id, copies] of byKey)
    if (!o.answered.has(id)) out.push(`G2 ${id}: stored at INGRESS seq ${copies[0]?.seq}, never accepted`);
  for (const [id, a] of o.answered) {
    const copies = byKey.get(id) ?? [];
    if (copies.length === 0) {
      out.push(`G2 ${id}: accepted as ${a.transferId}, not in INGRESS`);
      continue;
    }
    for (const c of copies)
      if (c.env?.eventId !== a.eventId || c.env.data.transferId !== a.transferId)
        out.push(
          `G2 ${id}: INGRESS seq ${c.seq} holds event ${c.env?.eventId} of ${c.env?.data.transferId}; answered ${a.eventId} of ${a.transferId}`,
        );
    const want = 1 + (o.direct.get(a.eventId) ?? 0);
    if (o.storedOnce) {
      if (copies.length !== want)
        out.push(
          `G2 ${id}: ${copies.length} requests in INGRESS (seq ${copies.map((c) => c.seq).join(", ")}), expected ${want}`,
        );
      continue;
    }
    for (let i = 1; i < copies.length; i++) {
      const [prev, cur] = [copies[i - 1] as StoredEvent, copies[i] as StoredEvent];
      if (cur.timestampMs - prev.timestampMs < o.windowMs)
        out.push(
          `G2 ${id}: stored again at INGRESS seq ${cur.seq}, ${cur.timestampMs - prev.timestampMs} ms after seq ${prev.seq}: inside the duplicate window`,
        );
    }
  }
  return out;
}
