import {
  BaseEnv,
  ConfigError,
  parseConfig,
  stageProcessConfig,
  type StageProcessConfig,
} from "@jetmesh/stage";
import { Type } from "@sinclair/typebox";
import type { ValidationRules } from "./handler.ts";

/** The validator's own keys, on top of the runtime's {@link BaseEnv}. */
export const ValidatorEnv = {
  ...BaseEnv,
  HTTP_PORT: Type.Integer({ minimum: 0, maximum: 65535, default: 8081 }),
  VALIDATOR_MAX_AMOUNT_MINOR: Type.Integer({
    minimum: 1,
    maximum: Number.MAX_SAFE_INTEGER,
    default: 10_000_000,
  }),
  /** Comma-separated ISO 4217 codes. */
  VALIDATOR_CURRENCIES: Type.String({ default: "EUR,USD,GBP,CHF,JPY" }),
};

export interface ValidatorConfig extends StageProcessConfig {
  readonly rules: ValidationRules;
}

/**
 * Reads the validator's environment once.
 * @throws ConfigError listing every bad key.
 */
export function loadConfig(env: Record<string, string | undefined> = process.env): ValidatorConfig {
  const c = parseConfig(ValidatorEnv, env);
  const currencies = c.VALIDATOR_CURRENCIES.split(",")
    .map((s) => s.trim())
    .filter(Boolean);
  if (currencies.length === 0 || currencies.some((code) => !/^[A-Z]{3}$/.test(code))) {
    throw new ConfigError(["VALIDATOR_CURRENCIES must be a comma-separated list of 3-letter capital codes"]);
  }
  return {
    ...stageProcessConfig(c),
    rules: { maxAmountMinor: c.VALIDATOR_MAX_AMOUNT_MINOR, currencies: new Set(currencies) },
  };
}
