import { type BankBehaviour, DEFAULT_BEHAVIOUR, parseBehaviour, parseOutage } from "./settings.ts";

/** Everything the simulator process takes from its environment. */
export interface BankSimConfig {
  readonly host: string;
  readonly port: number;
  readonly seed: string;
  readonly stateFile?: string;
  /** An outage of this many ms from the start; 0 for none. */
  readonly outageMs: number;
  readonly behaviour: BankBehaviour;
}

/** The variable behind each setting, in the order problems are listed. */
const ENV_OF_SETTING: { readonly [K in keyof BankBehaviour]: string } = {
  latencyMs: "BANK_LATENCY_MS",
  errorRate: "BANK_ERROR_RATE",
  refusalRate: "BANK_REFUSAL_RATE",
  refuseAccounts: "BANK_REFUSE_ACCOUNTS",
  processingMinMs: "BANK_PROCESSING_MIN_MS",
  processingMaxMs: "BANK_PROCESSING_MAX_MS",
  slowRate: "BANK_SLOW_RATE",
  slowMs: "BANK_SLOW_MS",
  retentionMs: "BANK_RETENTION_MS",
};

/**
 * Reads the simulator's settings once; "" counts as unset. The bank stands for a
 * system we do not own, so it parses its own environment rather than use the stage runtime.
 * @throws Error listing every bad key with its rule.
 */
export function loadConfig(env: Record<string, string | undefined> = process.env): BankSimConfig {
  const get = (key: string): string | undefined => (env[key] === "" ? undefined : env[key]);
  const problems: string[] = [];

  const rawPort = get("BANK_PORT");
  const port = rawPort === undefined ? 9090 : Number(rawPort);
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    problems.push("BANK_PORT must be an integer from 0 to 65535");

  // Numbers go to the same checks as POST /admin/config; the problem names the variable.
  const settings: Record<string, unknown> = {};
  for (const [field, name] of Object.entries(ENV_OF_SETTING)) {
    const raw = get(name);
    if (raw === undefined) continue;
    settings[field] =
      field === "refuseAccounts"
        ? raw
            .split(",")
            .map((s) => s.trim())
            .filter(Boolean)
        : Number(raw);
  }
  const { change, issues } = parseBehaviour(settings);
  for (const i of issues)
    problems.push(`${ENV_OF_SETTING[i.field as keyof BankBehaviour] ?? i.field} ${i.rule}`);

  const rawOutage = get("BANK_OUTAGE_MS");
  const outage = parseOutage({ durationMs: rawOutage === undefined ? 0 : Number(rawOutage) });
  for (const i of outage.issues) problems.push(`BANK_OUTAGE_MS ${i.rule}`);

  if (problems.length) throw new Error(`refusing to start: ${problems.join("; ")}`);

  const stateFile = get("BANK_STATE_FILE");
  return {
    host: get("BANK_HOST") ?? "127.0.0.1",
    port,
    seed: get("BANK_SEED") ?? "jetmesh",
    ...(stateFile !== undefined ? { stateFile } : {}),
    outageMs: outage.durationMs ?? 0,
    behaviour: { ...DEFAULT_BEHAVIOUR, ...change },
  };
}
