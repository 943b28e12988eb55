import { LedgerProjection, namesFor } from "@jetmesh/contracts";
import { Redis } from "ioredis";

/** account → currency → balance in minor units. */
export type Balances = Map<string, Map<string, bigint>>;

/**
 * Where the checker reads live balances from. Implementations read what the outside
 * world sees (the gateway's account endpoint, or the ledger's Redis projection through
 * the key layout in @jetmesh/contracts), never the ledger's code.
 */
export interface BalanceSource {
  /** Human-readable origin, shown in violations (`gateway http://…`, `redis …`). */
  readonly name: string;
  /**
   * Balances of `accounts`; an account without balances maps to an empty map.
   * @throws when the source cannot answer (a 5xx, Redis down).
   */
  fetch(accounts: readonly string[]): Promise<Balances>;
  /** Every account the source knows of, when it can list them (Redis can, the gateway cannot). */
  listAccounts?(): Promise<string[]>;
  /** Releases connections the source opened itself. */
  close?(): Promise<void>;
}

function toBigint(v: unknown, where: string): bigint {
  if (typeof v === "bigint") return v;
  if (typeof v === "number" && Number.isSafeInteger(v)) return BigInt(v);
  if (typeof v === "string" && /^-?\d+$/.test(v)) return BigInt(v);
  throw new Error(`${where}: balance ${JSON.stringify(v)} is not an integer`);
}

async function inBatches<T>(
  items: readonly T[],
  size: number,
  fn: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const item = items[next++] as T;
      await fn(item);
    }
  };
  await Promise.all(Array.from({ length: Math.min(size, items.length) }, worker));
}

/**
 * Balances from the gateway's `GET /v1/accounts/:id` (`{id, balances: {EUR: 1250}}`;
 * 404 = no balances). Balances beyond a safe integer arrive as decimal strings.
 * @param concurrency requests in flight at once (default 16).
 */
export function gatewayBalances(
  gatewayUrl: string,
  opts: {
    concurrency?: number;
    /** An operator's API key: balances are shown to their owner only, `external` to operators. */
    apiKey?: string;
  } = {},
): BalanceSource {
  const base = gatewayUrl.replace(/\/$/, "");
  return {
    name: `gateway ${base}`,
    async fetch(accounts) {
      const out: Balances = new Map();
      await inBatches(accounts, opts.concurrency ?? 16, async (id) => {
        const url = `${base}/v1/accounts/${encodeURIComponent(id)}`;
        const res = await fetch(
          url,
          opts.apiKey ? { headers: { authorization: `Bearer ${opts.apiKey}` } } : {},
        );
        const text = await res.text();
        if (res.status === 404) {
          out.set(id, new Map());
          return;
        }
        if (res.status !== 200) throw new Error(`GET ${url} answered ${res.status}: ${text.slice(0, 200)}`);
        const body = JSON.parse(text) as { balances?: Record<string, unknown> };
        const m = new Map<string, bigint>();
        for (const [cur, v] of Object.entries(body.balances ?? {})) m.set(cur, toBigint(v, `${id} ${cur}`));
        out.set(id, m);
      });
      return out;
    },
  };
}

/**
 * Balances straight from the ledger's Redis projection (`ledger:bal:<account>` hashes and
 * the `ledger:accounts` set, as named by contracts' LedgerProjection). Given a URL it opens
 * (and `close()` closes) its own connection; a given client is left open.
 */
export function redisBalances(redis: Redis | string, opts: { namespace?: string } = {}): BalanceSource {
  const own = typeof redis === "string";
  // A namespace's keys (JETMESH_NAMESPACE) carry its prefix; a client given keeps its own.
  const keyPrefix = namesFor(opts.namespace).redisPrefix;
  const client = own
    ? new Redis(redis, { maxRetriesPerRequest: 2, lazyConnect: false, ...(keyPrefix ? { keyPrefix } : {}) })
    : redis;
  if (own) client.on("error", () => {});
  return {
    name: `redis ${own ? redis : "client"}`,
    async fetch(accounts) {
      const out: Balances = new Map();
      const ids = [...accounts];
      for (let i = 0; i < ids.length; i += 500) {
        const slice = ids.slice(i, i + 500);
        const p = client.pipeline();
        for (const id of slice) p.hgetall(LedgerProjection.balanceKey(id));
        const replies = (await p.exec()) ?? [];
        slice.forEach((id, j) => {
          const [err, raw] = replies[j] ?? [new Error("no reply"), null];
          if (err) throw err;
          const m = new Map<string, bigint>();
          for (const [cur, v] of Object.entries((raw ?? {}) as Record<string, string>))
            m.set(cur, toBigint(v, `${id} ${cur}`));
          out.set(id, m);
        });
      }
      return out;
    },
    async listAccounts() {
      return client.smembers(LedgerProjection.accountsKey);
    },
    async close() {
      if (own) client.disconnect();
    },
  };
}
