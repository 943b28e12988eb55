import {
  BaseEnv,
  ConfigError,
  parseConfig,
  stageProcessConfig,
  type StageProcessConfig,
} from "@jetmesh/stage";
import { redeliveryHorizonMs } from "@jetmesh/stage";
import { Type } from "@sinclair/typebox";
import type { Thresholds } from "./handler.ts";

/** The risk stage's keys, on top of the runtime's {@link BaseEnv}. */
export const RiskEnv = {
  ...BaseEnv,
  HTTP_PORT: Type.Integer({ minimum: 0, maximum: 65535, default: 8082 }),
  RISK_REVIEW_SCORE: Type.Integer({ minimum: 0, maximum: 100, default: 60 }),
  RISK_DENY_SCORE: Type.Integer({ minimum: 0, maximum: 100, default: 85 }),
  RISK_VELOCITY_WINDOW_MS: Type.Integer({ minimum: 1000, default: 60_000 }),
  /** How long a velocity window is kept after its last bump; must outlast a window plus the redelivery horizon. */
  RISK_VELOCITY_RETENTION_MS: Type.Integer({ minimum: 1000, default: 3_600_000 }),
};

export interface RiskConfig extends StageProcessConfig {
  readonly thresholds: Thresholds;
  readonly velocity: { readonly windowMs: number; readonly retentionMs: number };
}

/**
 * Reads the risk stage's environment once.
 * @throws ConfigError listing every bad key.
 */
export function loadConfig(env: Record<string, string | undefined> = process.env): RiskConfig {
  const c = parseConfig(RiskEnv, env);
  const base = stageProcessConfig(c);
  const stage = base.stage;
  const problems: string[] = [];
  if (c.RISK_REVIEW_SCORE >= c.RISK_DENY_SCORE)
    problems.push("RISK_REVIEW_SCORE must be below RISK_DENY_SCORE");
  // A redelivered input re-applies its bump; the window's records must still be there
  // for the replay to find its first answer.
  const needed = c.RISK_VELOCITY_WINDOW_MS + redeliveryHorizonMs(stage);
  if (c.RISK_VELOCITY_RETENTION_MS < needed) {
    problems.push(
      `RISK_VELOCITY_RETENTION_MS must be at least ${needed} (the window plus the redelivery horizon)`,
    );
  }
  if (problems.length) throw new ConfigError(problems);
  return {
    ...base,
    thresholds: { reviewScore: c.RISK_REVIEW_SCORE, denyScore: c.RISK_DENY_SCORE },
    velocity: { windowMs: c.RISK_VELOCITY_WINDOW_MS, retentionMs: c.RISK_VELOCITY_RETENTION_MS },
  };
}
