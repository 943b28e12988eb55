import { OpsError, oneLine } from "./errors.ts";

/** What the bank says of a payout's idempotency key (`GET /v1/payouts/{key}`). */
export type BankKeyStatus =
  | { readonly state: "paid"; readonly reference: string }
  | { readonly state: "refused"; readonly reason: string }
  | { readonly state: "processing" }
  /** 404: never received, or forgotten after the bank's retention; nothing tells which. */
  | { readonly state: "unknown" };

/**
 * The bank's idempotency key of a transfer's payout. The payout stage's own rule
 * (services/payout `bankKeyOf`: one key per transfer, whatever event asks); repeated here
 * because a package never imports a service.
 */
export function payoutBankKey(transferId: string): string {
  return `payout:${transferId}`;
}

/**
 * Asks the bank for the outcome of `key`, read as the payout stage's bank client reads it.
 * A read with no side effect at the bank.
 * @throws OpsError when the bank does not answer, or answers something else.
 */
export async function askBank(bankUrl: string, key: string, timeoutMs = 5_000): Promise<BankKeyStatus> {
  const url = new URL(`/v1/payouts/${encodeURIComponent(key)}`, bankUrl).toString();
  let res: Response;
  let text: string;
  try {
    res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    text = await res.text();
  } catch (err) {
    throw new OpsError(`bank at ${bankUrl} did not answer for ${key}: ${oneLine(err)}`, { cause: err });
  }
  if (res.status === 404) return { state: "unknown" };
  let body: Record<string, unknown> = {};
  try {
    const v: unknown = JSON.parse(text);
    if (typeof v === "object" && v !== null) body = v as Record<string, unknown>;
  } catch {
    // answered below as not understood
  }
  if (res.status === 200 && body.status === "processing") return { state: "processing" };
  if (res.status === 200 && body.status === "paid" && typeof body.reference === "string")
    return { state: "paid", reference: body.reference };
  if (res.status === 200 && body.status === "refused")
    return {
      state: "refused",
      reason: typeof body.reason === "string" ? body.reason : "refused by the bank",
    };
  throw new OpsError(`bank at ${bankUrl} answered ${res.status} for ${key}: not understood`);
}
