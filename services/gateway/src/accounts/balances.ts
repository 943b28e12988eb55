import { LedgerProjection } from "@jetmesh/contracts";
import type { Redis } from "ioredis";

export interface AccountView {
  readonly id: string;
  /** Currency → balance in minor units. */
  readonly balances: Readonly<Record<string, number | string>>;
}

/**
 * Reads an account's balances from the ledger's projection (the ledger is its only
 * writer). Balances are decimal strings there; they are returned as numbers while they
 * fit a safe integer and as the exact decimal string beyond, never rounded.
 * Undefined when the account has no balance hash.
 */
export async function readAccount(redis: Redis, id: string): Promise<AccountView | undefined> {
  const raw = await redis.hgetall(LedgerProjection.balanceKey(id));
  const entries = Object.entries(raw);
  if (entries.length === 0) return undefined;
  const balances: Record<string, number | string> = {};
  for (const [currency, value] of entries.sort(([a], [b]) => a.localeCompare(b))) {
    const n = Number(value);
    balances[currency] = Number.isSafeInteger(n) ? n : value;
  }
  return { id, balances };
}
