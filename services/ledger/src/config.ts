import {
  BaseEnv,
  ConfigError,
  parseConfig,
  type StageProcessConfig,
  stageProcessConfig,
} from "@jetmesh/stage";
import { Type } from "@sinclair/typebox";
import { DEFAULT_OUTCOME_TTL_MS, outcomeTtlProblems } from "./outcome-ttl.ts";

/** The ledger's own environment, on top of the stage runtime's {@link BaseEnv}. */
export const LedgerEnv = {
  HTTP_PORT: Type.Integer({ minimum: 0, maximum: 65535, default: 8083 }),
  /** Write a snapshot of the fold to KV every this many LEDGER events. */
  LEDGER_SNAPSHOT_EVERY: Type.Integer({ minimum: 1, default: 1000 }),
  LEDGER_SNAPSHOT_BUCKET: Type.String({ minLength: 1, pattern: "^[-\\w]+$", default: "ledger-snapshots" }),
  /** Largest value written to one KV key; must stay under the server's max_payload (1 MiB default). */
  LEDGER_SNAPSHOT_CHUNK_BYTES: Type.Integer({
    minimum: 1024,
    maximum: 64 * 1024 * 1024,
    default: 512 * 1024,
  }),
  /** How often a running ledger checks that Redis was not wiped or rolled back while the log is idle. */
  LEDGER_EPOCH_CHECK_MS: Type.Integer({ minimum: 50, default: 1000 }),
  /** How long a decision waits for the fold to reach the end of LEDGER after a conflict. */
  LEDGER_CATCH_UP_TIMEOUT_MS: Type.Integer({ minimum: 100, default: 10_000 }),
  /** `rebuild`: wait between comparisons before a difference counts. */
  LEDGER_REBUILD_SETTLE_MS: Type.Integer({ minimum: 0, default: 1000 }),
  /**
   * The ledger's horizon H (outcome-ttl.ts says why 14 days and what it must outlive): an
   * outcome's hash lives H from its last write, the fold decides on it for 3H/4 and drops it
   * after 5H/4, and an input of an unknown transfer older than H/2 is refused (parked).
   */
  LEDGER_OUTCOME_TTL_MS: Type.Integer({ minimum: 1, default: DEFAULT_OUTCOME_TTL_MS }),
};

export interface LedgerConfig extends StageProcessConfig {
  readonly ledger: {
    readonly snapshotEvery: number;
    readonly snapshotBucket: string;
    readonly snapshotChunkBytes: number;
    readonly epochCheckMs: number;
    readonly catchUpTimeoutMs: number;
    readonly rebuildSettleMs: number;
    readonly outcomeTtlMs: number;
  };
}

/**
 * Parses the ledger's environment once ("" counts as unset).
 * @throws ConfigError listing every bad key.
 */
export function loadConfig(env: Record<string, string | undefined> = process.env): LedgerConfig {
  const c = parseConfig({ ...BaseEnv, ...LedgerEnv }, env);
  const problems = outcomeTtlProblems(c.LEDGER_OUTCOME_TTL_MS, c.JETMESH_IDEMPOTENCY_TTL_MS);
  if (problems.length) throw new ConfigError(problems);
  return {
    ...stageProcessConfig(c),
    ledger: {
      snapshotEvery: c.LEDGER_SNAPSHOT_EVERY,
      snapshotBucket: c.LEDGER_SNAPSHOT_BUCKET,
      snapshotChunkBytes: c.LEDGER_SNAPSHOT_CHUNK_BYTES,
      epochCheckMs: c.LEDGER_EPOCH_CHECK_MS,
      catchUpTimeoutMs: c.LEDGER_CATCH_UP_TIMEOUT_MS,
      rebuildSettleMs: c.LEDGER_REBUILD_SETTLE_MS,
      outcomeTtlMs: c.LEDGER_OUTCOME_TTL_MS,
    },
  };
}
