import {
  BaseEnv,
  ConfigError,
  parseConfig,
  stageProcessConfig,
  type StageProcessConfig,
} from "@jetmesh/stage";
import { Type } from "@sinclair/typebox";
import type { BankClientOptions } from "./bank-client.ts";

/** The payout stage's keys, on top of the runtime's {@link BaseEnv}. */
export const PayoutEnv = {
  ...BaseEnv,
  HTTP_PORT: Type.Integer({ minimum: 0, maximum: 65535, default: 8084 }),
  PAYOUT_BANK_URL: Type.String({ pattern: "^https?://", default: "http://127.0.0.1:9090" }),
  PAYOUT_BANK_TIMEOUT_MS: Type.Integer({ minimum: 10, maximum: 600_000, default: 2000 }),
};

export interface PayoutConfig extends StageProcessConfig {
  readonly bank: BankClientOptions;
}

/**
 * Reads the payout stage's environment once.
 * @throws ConfigError listing every bad key.
 */
export function loadConfig(env: Record<string, string | undefined> = process.env): PayoutConfig {
  const c = parseConfig(PayoutEnv, env);
  const base = stageProcessConfig(c);
  const stage = base.stage;
  // The runtime aborts an effect at its handler timeout; a longer bank timeout would never fire.
  if (c.PAYOUT_BANK_TIMEOUT_MS >= stage.handlerTimeoutMs) {
    throw new ConfigError([
      `PAYOUT_BANK_TIMEOUT_MS must be below the handler timeout of ${stage.handlerTimeoutMs} ms (JETMESH_HANDLER_TIMEOUT_MS, default 80% of JETMESH_ACK_WAIT_MS)`,
    ]);
  }
  return {
    ...base,
    bank: { url: c.PAYOUT_BANK_URL, timeoutMs: c.PAYOUT_BANK_TIMEOUT_MS },
  };
}
