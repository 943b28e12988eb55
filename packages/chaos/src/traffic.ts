import type { Prng } from "@jetmesh/testkit";
import {
  type AcceptedTransfer,
  type CopyPattern,
  startTraffic as startToolsTraffic,
  STEADY_MIX,
  type Traffic,
  type TrafficOptions,
  type TrafficStats,
  type TransferKind,
} from "@jetmesh/tools";

/**
 * Steady client traffic for a chaos run: the tools' traffic in its steady mode
 * (@jetmesh/tools). A new transfer every 1/rate s until told to stop, each retried with its
 * Idempotency-Key (and the same body) until the answer is final; every choice drawn from
 * the scenario's PRNG when the transfer is created, so a seed replays the same requests.
 * It keeps what a chaos report needs: 503s with Retry-After (load shed or outage), copies
 * sent on purpose (all of them in a duplicate storm), keys given up on, the last 202.
 */

export type ChaosTransferKind = TransferKind;
export type ChaosAccepted = AcceptedTransfer;
export type { CopyPattern, Traffic, TrafficStats };

/** Options of {@link startTraffic}. */
export interface ChaosTrafficOptions
  extends Omit<TrafficOptions, "mode" | "prng" | "mix" | "funding" | "clients" | "durationMs"> {
  /** Draws every choice; fork one for the traffic. */
  readonly prng: Prng;
  /** Every request sent three times, some copies concurrently (the duplicate storm). */
  readonly storm?: boolean;
  /** Outside a storm, share of requests sent twice with the same key (default 0.05). */
  readonly duplicateShare?: number;
  /** Share of transfers paid out to a `bank:` account the bank pays (default 0.05). */
  readonly payoutShare?: number;
  /** Share paid out to an account the bank refuses (default 0.03; the ledger reverses them). */
  readonly refusedShare?: number;
}

/** Starts sending at once; see {@link Traffic.stop}. */
export function startTraffic(o: ChaosTrafficOptions): Traffic {
  const { storm, duplicateShare, payoutShare, refusedShare, ...rest } = o;
  return startToolsTraffic({
    ...rest,
    mode: "steady",
    mix: {
      storm: storm ?? false,
      duplicate: duplicateShare ?? STEADY_MIX.duplicate,
      payout: payoutShare ?? STEADY_MIX.payout,
      refusedPayout: refusedShare ?? STEADY_MIX.refusedPayout,
    },
  });
}
