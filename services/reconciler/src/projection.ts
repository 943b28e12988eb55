import { FindingKinds, LedgerProjection } from "@jetmesh/contracts";
import type { Redis } from "ioredis";
import type { Discrepancy } from "./book.ts";
import type { LedgerFold } from "./fold.ts";

/** The outcome of comparing one account. */
export type AccountCheck =
  | { readonly kind: "equal"; readonly account: string; readonly appliedSeq: number }
  | {
      readonly kind: "differs";
      readonly account: string;
      readonly appliedSeq: number;
      readonly found: Discrepancy[];
      readonly equal: string[];
    }
  /** Not judged: the projection is being restored, or applied past what the fold has read, or too far behind. */
  | { readonly kind: "skipped"; readonly account: string; readonly why: string };

/**
 * Compares the balances Redis serves (the ledger's projection, LedgerProjection keys) with the
 * fold of LEDGER at the sequence Redis says it applied: one MULTI reads `ledger:applied-seq`,
 * the epoch and every account's hash together (the ledger's APPLY script moves them together),
 * so the comparison never mistakes a projection that lags for one that is wrong.
 */
export async function compareAccounts(
  redis: Redis,
  fold: LedgerFold,
  accounts: readonly string[],
): Promise<AccountCheck[]> {
  if (accounts.length === 0) return [];
  const tx = redis.multi();
  tx.get(LedgerProjection.appliedSeqKey);
  tx.exists(LedgerProjection.epochKey);
  for (const a of accounts) tx.hgetall(LedgerProjection.balanceKey(a));
  const replies = (await tx.exec()) ?? [];
  for (const [err] of replies) if (err) throw err;
  const appliedSeq = Number((replies[0]?.[1] as string | null) ?? 0);
  const whole = (replies[1]?.[1] as number) === 1;
  return accounts.map((account, i): AccountCheck => {
    if (!whole) return { kind: "skipped", account, why: "projection restoring (no ledger:epoch)" };
    const want = fold.balanceAt(account, appliedSeq);
    if (!want)
      return {
        kind: "skipped",
        account,
        why:
          appliedSeq > fold.seq ? "the fold is behind the projection" : "projection too far behind the fold",
      };
    const served = (replies[i + 2]?.[1] ?? {}) as Record<string, string>;
    const currencies = new Set([...want.keys(), ...Object.keys(served)]);
    const found: Discrepancy[] = [];
    const equal: string[] = [];
    for (const cur of currencies) {
      const fromFold = want.get(cur) ?? 0n;
      let fromRedis: bigint | undefined;
      try {
        fromRedis = BigInt(served[cur] ?? "0");
      } catch {
        fromRedis = undefined;
      }
      if (fromRedis === fromFold) {
        equal.push(cur);
        continue;
      }
      found.push({
        kind: FindingKinds.ProjectionMismatch,
        key: `${account}/${cur}`,
        account,
        summary: `Redis serves ${served[cur] ?? "nothing"} ${cur} for ${account}; the fold of LEDGER up to seq ${appliedSeq} gives ${fromFold}`,
        evidence: {
          currency: cur,
          served: served[cur] ?? null,
          fold: fromFold.toString(),
          appliedSeq,
          redisKey: LedgerProjection.balanceKey(account),
        },
        command: "pnpm jetmesh rebuild --check",
      });
    }
    return found.length
      ? { kind: "differs", account, appliedSeq, found, equal }
      : { kind: "equal", account, appliedSeq };
  });
}

/** Every account Redis has a balance hash for (`ledger:accounts`), read with SSCAN. */
export async function servedAccounts(redis: Redis): Promise<string[]> {
  const out: string[] = [];
  let cursor = "0";
  do {
    const [next, batch] = await redis.sscan(LedgerProjection.accountsKey, cursor, "COUNT", 1000);
    out.push(...batch);
    cursor = next;
  } while (cursor !== "0");
  return out;
}
