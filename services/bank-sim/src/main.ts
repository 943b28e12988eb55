import { loadConfig } from "./config.ts";
import { startBankSim } from "./server.ts";

// The bank is not a jetmesh service: plain JSON lines on stdout, no telemetry.
const log = (msg: string, fields: Record<string, unknown> = {}): void => {
  process.stdout.write(
    `${JSON.stringify({ time: new Date().toISOString(), service: "bank-sim", msg, ...fields })}\n`,
  );
};

const config = loadConfig();
const bank = await startBankSim({
  host: config.host,
  port: config.port,
  seed: config.seed,
  behaviour: config.behaviour,
  outageMs: config.outageMs,
  ...(config.stateFile !== undefined ? { stateFile: config.stateFile } : {}),
});
log("listening", {
  url: bank.url,
  behaviour: config.behaviour,
  outage_ms: config.outageMs,
  state_file: config.stateFile ?? null,
});

let stopping = false;
const stop = (signal: string): void => {
  if (stopping) return;
  stopping = true;
  log("stopping", { signal });
  bank.close().then(
    () => process.exit(0),
    (err: unknown) => {
      log("stop failed", { err: String(err) });
      process.exit(1);
    },
  );
};
process.on("SIGTERM", () => stop("SIGTERM"));
process.on("SIGINT", () => stop("SIGINT"));
