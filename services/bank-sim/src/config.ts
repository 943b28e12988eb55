import { type BankBehaviour, DEFAULT_BEHAVIOUR, parseBehaviour } from "./bank.ts";

/** Everything the simulator process takes from its environment. */
export interface BankSimConfig {
  readonly host: string;
  readonly port: number;
  readonly seed: string;
  readonly stateFile?: string;
  readonly behaviour: BankBehaviour;
}

/**
 * Reads the simulator's settings once; "" counts as unset. The bank stands for a
 * system we do not own, so it parses its own environment rather than use the stage runtime.
 * @throws Error listing every bad key with its rule.
 */
export function loadConfig(env: Record<string, string | undefined> = process.env): BankSimConfig {
  const get = (key: string): string | undefined => (env[key] === "" ? undefined : env[key]);
  const problems: string[] = [];
  const int = (key: string, fallback: number, min: number, max: number): number => {
    const raw = get(key);
    if (raw === undefined) return fallback;
    const n = Number(raw);
    if (Number.isInteger(n) && n >= min && n <= max) return n;
    problems.push(`${key} must be an integer from ${min} to ${max}`);
    return fallback;
  };
  const rate = (key: string): number | undefined => (get(key) === undefined ? undefined : Number(get(key)));

  const port = int("BANK_PORT", 9090, 0, 65535);
  const { change, issues } = parseBehaviour({
    latencyMs: int("BANK_LATENCY_MS", DEFAULT_BEHAVIOUR.latencyMs, 0, 600_000),
    ...(rate("BANK_ERROR_RATE") !== undefined ? { errorRate: rate("BANK_ERROR_RATE") } : {}),
    ...(rate("BANK_REFUSAL_RATE") !== undefined ? { refusalRate: rate("BANK_REFUSAL_RATE") } : {}),
    refuseAccounts: (get("BANK_REFUSE_ACCOUNTS") ?? "")
      .split(",")
      .map((s) => s.trim())
      .filter(Boolean),
  });
  const envName: Record<string, string> = {
    errorRate: "BANK_ERROR_RATE",
    refusalRate: "BANK_REFUSAL_RATE",
  };
  for (const i of issues) problems.push(`${envName[i.field] ?? i.field} ${i.rule}`);
  if (problems.length) throw new Error(`refusing to start: ${problems.join("; ")}`);

  const stateFile = get("BANK_STATE_FILE");
  return {
    host: get("BANK_HOST") ?? "127.0.0.1",
    port,
    seed: get("BANK_SEED") ?? "jetmesh",
    ...(stateFile !== undefined ? { stateFile } : {}),
    behaviour: { ...DEFAULT_BEHAVIOUR, ...change },
  };
}
