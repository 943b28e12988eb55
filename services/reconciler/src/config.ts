import {
  BaseEnv,
  ConfigError,
  parseConfig,
  type StageProcessConfig,
  stageProcessConfig,
} from "@jetmesh/stage";
import { Type } from "@sinclair/typebox";
import { type DeclaredConsumer, DeclaredConsumers, type Step, Steps } from "./catalog.ts";

const ms = (def: number, minimum = 10) => Type.Integer({ minimum, default: def });

/** The reconciler's keys, on top of the runtime's {@link BaseEnv} (whose JETMESH_* values are the ones declared for the stages' consumers). */
export const ReconcilerEnv = {
  ...BaseEnv,
  /** The next port after the stages' defaults (8080 gateway … 8084 payout). */
  HTTP_PORT: Type.Integer({ minimum: 0, maximum: 65535, default: 8085 }),
  /** The bank's payout API: its list (`/admin/payouts`, `/admin/refusals`) and status (`/v1/payouts/{key}`). */
  RECONCILE_BANK_URL: Type.String({ pattern: "^https?://", default: "http://127.0.0.1:9090" }),
  RECONCILE_BANK_TIMEOUT_MS: ms(5000),
  /** Saga deadlines, per step: from the event that started the step to the event that ends it. */
  RECONCILE_DEADLINE_VALIDATE_MS: ms(60_000),
  RECONCILE_DEADLINE_SCORE_MS: ms(60_000),
  RECONCILE_DEADLINE_DECIDE_MS: ms(60_000),
  RECONCILE_DEADLINE_PAYOUT_MS: ms(300_000),
  RECONCILE_DEADLINE_REVERSE_MS: ms(60_000),
  /** How often open transfers are compared with their deadlines. */
  RECONCILE_SCAN_MS: ms(1000),
  /** Sampled projection check: accounts moved since the last one, plus random ones, up to the size. */
  RECONCILE_SAMPLE_MS: ms(5000),
  RECONCILE_SAMPLE_SIZE: Type.Integer({ minimum: 1, maximum: 10_000, default: 64 }),
  /** Every account of the fold and of Redis. */
  RECONCILE_FULL_CHECK_MS: ms(300_000),
  RECONCILE_BANK_CHECK_MS: ms(60_000),
  /** A bank record younger than this is not judged yet (the payout stage records its answer after it). */
  RECONCILE_BANK_GRACE_MS: ms(30_000, 0),
  RECONCILE_DLQ_CHECK_MS: ms(5000),
  /** A DLQ message older than this is a finding. */
  RECONCILE_DLQ_MAX_AGE_MS: ms(3_600_000, 0),
  RECONCILE_SETTINGS_CHECK_MS: ms(30_000),
  /** A declared stream or consumer missing for less than this is not a finding yet (a deploy in progress). */
  RECONCILE_MISSING_GRACE_MS: ms(60_000, 0),
  /**
   * How often the declared consumers' lag is read from the JetStream API and exported: the
   * stage exports its own, which vanishes exactly when the stage hangs or dies.
   */
  RECONCILE_CONSUMER_LAG_MS: ms(5000),
  /**
   * How often the NATS cluster's stream replication (leaders, replicas) and Redis's memory and
   * keys by kind are read and exported (infra-health.ts), from the start.
   */
  RECONCILE_INFRA_MS: ms(10_000),
  /** A stream-info request or a Redis round that takes longer counts as unanswered. */
  RECONCILE_INFRA_TIMEOUT_MS: ms(2000),
  /** Keys one round may SCAN to count keys by kind; past it the counts are scaled from the share seen. */
  RECONCILE_REDIS_SCAN_BUDGET: Type.Integer({ minimum: 0, default: 50_000 }),
  /**
   * nats-servers' monitoring URLs, comma-separated (`http://nats-1:8222,…`): each one's
   * /healthz and JetStream meta leader (/jsz) are exported too. Empty: only stream info.
   */
  RECONCILE_NATS_MONITOR_URLS: Type.String({ default: "" }),
  /**
   * Durable consumers whose settings are checked, `STREAM/durable` comma-separated, from the
   * declared list (catalog.ts); default every one. `none` checks none.
   */
  RECONCILE_CONSUMERS: Type.String({ default: "all" }),
};

export interface ReconcilerSettings {
  readonly bankUrl: string;
  readonly bankTimeoutMs: number;
  readonly deadlines: Readonly<Record<Step, number>>;
  readonly scanMs: number;
  readonly sampleMs: number;
  readonly sampleSize: number;
  readonly fullCheckMs: number;
  readonly bankCheckMs: number;
  readonly bankGraceMs: number;
  readonly dlqCheckMs: number;
  readonly dlqMaxAgeMs: number;
  readonly settingsCheckMs: number;
  readonly missingGraceMs: number;
  readonly consumerLagMs: number;
  readonly infraMs: number;
  readonly infraTimeoutMs: number;
  readonly redisScanBudget: number;
  readonly natsMonitorUrls: readonly string[];
  readonly consumers: readonly DeclaredConsumer[];
}

export interface ReconcilerConfig extends StageProcessConfig {
  readonly reconcile: ReconcilerSettings;
}

function consumersOf(list: string, problems: string[]): DeclaredConsumer[] {
  const v = list.trim();
  if (v === "all") return [...DeclaredConsumers];
  if (v === "none") return [];
  const out: DeclaredConsumer[] = [];
  for (const item of v.split(",").map((s) => s.trim())) {
    const c = DeclaredConsumers.find((d) => `${d.stream}/${d.durable}` === item);
    if (c) out.push(c);
    else
      problems.push(
        `RECONCILE_CONSUMERS names ${item}, not a declared consumer (${DeclaredConsumers.map((d) => `${d.stream}/${d.durable}`).join(", ")})`,
      );
  }
  return out;
}

/**
 * Reads the reconciler's environment once ("" counts as unset).
 * @throws ConfigError listing every bad key.
 */
export function loadConfig(env: Record<string, string | undefined> = process.env): ReconcilerConfig {
  const c = parseConfig(ReconcilerEnv, env);
  const problems: string[] = [];
  const consumers = consumersOf(c.RECONCILE_CONSUMERS, problems);
  const natsMonitorUrls = c.RECONCILE_NATS_MONITOR_URLS.split(",")
    .map((u) => u.trim())
    .filter((u) => u !== "");
  for (const u of natsMonitorUrls)
    if (!/^https?:\/\/[^/\s]+/.test(u))
      problems.push(
        `RECONCILE_NATS_MONITOR_URLS names ${u}: an http:// or https:// URL of a monitoring port is needed`,
      );
  if (problems.length) throw new ConfigError(problems);
  return {
    ...stageProcessConfig(c),
    reconcile: {
      bankUrl: c.RECONCILE_BANK_URL.replace(/\/+$/, ""),
      bankTimeoutMs: c.RECONCILE_BANK_TIMEOUT_MS,
      deadlines: {
        [Steps.Validate]: c.RECONCILE_DEADLINE_VALIDATE_MS,
        [Steps.Score]: c.RECONCILE_DEADLINE_SCORE_MS,
        [Steps.Decide]: c.RECONCILE_DEADLINE_DECIDE_MS,
        [Steps.Payout]: c.RECONCILE_DEADLINE_PAYOUT_MS,
        [Steps.Reverse]: c.RECONCILE_DEADLINE_REVERSE_MS,
      },
      scanMs: c.RECONCILE_SCAN_MS,
      sampleMs: c.RECONCILE_SAMPLE_MS,
      sampleSize: c.RECONCILE_SAMPLE_SIZE,
      fullCheckMs: c.RECONCILE_FULL_CHECK_MS,
      bankCheckMs: c.RECONCILE_BANK_CHECK_MS,
      bankGraceMs: c.RECONCILE_BANK_GRACE_MS,
      dlqCheckMs: c.RECONCILE_DLQ_CHECK_MS,
      dlqMaxAgeMs: c.RECONCILE_DLQ_MAX_AGE_MS,
      settingsCheckMs: c.RECONCILE_SETTINGS_CHECK_MS,
      missingGraceMs: c.RECONCILE_MISSING_GRACE_MS,
      consumerLagMs: c.RECONCILE_CONSUMER_LAG_MS,
      infraMs: c.RECONCILE_INFRA_MS,
      infraTimeoutMs: c.RECONCILE_INFRA_TIMEOUT_MS,
      redisScanBudget: c.RECONCILE_REDIS_SCAN_BUDGET,
      natsMonitorUrls,
      consumers,
    },
  };
}
