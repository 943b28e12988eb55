import {
  BaseEnv,
  ConfigError,
  parseConfig,
  stageProcessConfig,
  type StageProcessConfig,
} from "@jetmesh/stage";
import { redeliveryHorizonMs } from "@jetmesh/stage";
import { Type } from "@sinclair/typebox";
import type { BankClientOptions } from "./bank-client.ts";

/** The payout stage's keys, on top of the runtime's {@link BaseEnv}. */
export const PayoutEnv = {
  ...BaseEnv,
  HTTP_PORT: Type.Integer({ minimum: 0, maximum: 65535, default: 8084 }),
  PAYOUT_BANK_URL: Type.String({ pattern: "^https?://", default: "http://127.0.0.1:9090" }),
  PAYOUT_BANK_TIMEOUT_MS: Type.Integer({ minimum: 10, maximum: 600_000, default: 2000 }),
  /** How long the bank remembers an idempotency key (its documented retention). */
  PAYOUT_BANK_RETENTION_MS: Type.Integer({ minimum: 1000, default: 24 * 3600_000 }),
  /** KV bucket of the payout intent and outcome per transfer. */
  PAYOUT_RECORDS_BUCKET: Type.String({ minLength: 1, pattern: "^[-\\w]+$", default: "payout-records" }),
};

export interface PayoutConfig extends StageProcessConfig {
  readonly bank: BankClientOptions & { readonly retentionMs: number };
  readonly recordsBucket: string;
}

/**
 * Reads the payout stage's environment once.
 * @throws ConfigError listing every bad key.
 */
export function loadConfig(env: Record<string, string | undefined> = process.env): PayoutConfig {
  const c = parseConfig(PayoutEnv, env);
  const base = stageProcessConfig(c);
  const stage = base.stage;
  const problems: string[] = [];
  // The runtime aborts an effect at its handler timeout; a longer bank timeout would never fire.
  if (c.PAYOUT_BANK_TIMEOUT_MS >= stage.handlerTimeoutMs) {
    problems.push(
      `PAYOUT_BANK_TIMEOUT_MS must be below the handler timeout of ${stage.handlerTimeoutMs} ms (JETMESH_HANDLER_TIMEOUT_MS, default 80% of JETMESH_ACK_WAIT_MS)`,
    );
  }
  // A payout retried after the bank forgot its key can only be parked: retries must end well within it.
  const horizon = redeliveryHorizonMs(stage);
  if (horizon * 2 > c.PAYOUT_BANK_RETENTION_MS) {
    problems.push(
      `PAYOUT_BANK_RETENTION_MS ${c.PAYOUT_BANK_RETENTION_MS} must be at least twice the redelivery horizon ${horizon} ms: an unknown outcome found after the bank forgot its key cannot be resolved`,
    );
  }
  if (problems.length) throw new ConfigError(problems);
  return {
    ...base,
    bank: {
      url: c.PAYOUT_BANK_URL,
      timeoutMs: c.PAYOUT_BANK_TIMEOUT_MS,
      retentionMs: c.PAYOUT_BANK_RETENTION_MS,
    },
    recordsBucket: c.PAYOUT_RECORDS_BUCKET,
  };
}
