import { writeFile } from "node:fs/promises";
import { resolve } from "node:path";
import type { Socket } from "node:net";
import { namespaceProblem } from "@jetmesh/contracts";
import { ConfigError, configErrorBlock, createRedis, loadRedisSentinel } from "@jetmesh/stage";
import { stopAllProcesses } from "@jetmesh/testkit";
import { Command, InvalidArgumentError } from "commander";
import type { MeshHandle } from "./mesh.ts";
import { createProgressBar } from "./progress.ts";
import { formatReport } from "./report.ts";
import { runDemo } from "./run.ts";
import pkg from "../package.json" with { type: "json" };

// The CLI of the local runner (`pnpm mesh`). Reads NATS_URL, REDIS_URL and the Sentinel keys
// (REDIS_SENTINELS, REDIS_SENTINEL_NAME, REDIS_SENTINEL_USERNAME, REDIS_SENTINEL_PASSWORD_FILE),
// nothing else from the
// environment: every other setting is a flag.

const positive = (name: string) => (v: string) => {
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError(`${name} must be a positive number`);
  return n;
};

const program = new Command()
  .name("jetmesh-mesh")
  .version(pkg.version, "--version", "print the version and exit")
  .description(
    "Runs the whole mesh locally (nats-server, redis-server, every service as its own process), " +
      "sends demo traffic through the gateway, waits until the pipeline is quiet and checks I1 to I6.",
  )
  .option("-n, --transfers <n>", "transfers to send", positive("--transfers"), 3000)
  .option("-r, --rate <r>", "transfers started per second", positive("--rate"), 500)
  .option("-a, --accounts <n>", "customer accounts", positive("--accounts"), 100)
  .option("-k, --keep", "keep the mesh running after the report, until Ctrl-C", false)
  .option("--json <file>", "also write the report as JSON to this file")
  .option("--data-dir <dir>", "logs and JetStream store", ".mesh")
  .option("--log-level <level>", "LOG_LEVEL of the services", "warn")
  .option(
    "--quiet-timeout <s>",
    "seconds the pipeline may take to go quiet",
    positive("--quiet-timeout"),
    180,
  )
  .option(
    "--namespace <ns>",
    "dev isolation: the mesh's streams, buckets and Redis keys in this namespace (default $JETMESH_NAMESPACE)",
  )
  .option("--no-progress", "no progress bar")
  .addHelpText(
    "after",
    "\nEnvironment: NATS_URL and REDIS_URL are reused when they answer; otherwise nats-server and\n" +
      "redis-server are started on free ports; JETMESH_NAMESPACE (or --namespace) isolates this mesh on\n" +
      "shared ones. With REDIS_SENTINELS and REDIS_SENTINEL_NAME (and REDIS_SENTINEL_USERNAME,\n" +
      "REDIS_SENTINEL_PASSWORD_FILE), the primary those sentinels name is used and every service\n" +
      "gets the same keys, so it follows a failover. Exit status: 0 when every invariant holds,\n" +
      "1 otherwise, 2 for a bad setting.",
  )
  .parse();

const opts = program.opts<{
  transfers: number;
  rate: number;
  accounts: number;
  keep: boolean;
  json?: string;
  dataDir: string;
  logLevel: string;
  quietTimeout: number;
  progress: boolean;
  namespace?: string;
}>();

const namespace = opts.namespace ?? process.env.JETMESH_NAMESPACE ?? "";
const namespaceProblemText = namespaceProblem(namespace);
if (namespaceProblemText) {
  process.stderr.write(`mesh: namespace ${JSON.stringify(namespace)}: ${namespaceProblemText}\n`);
  process.exit(2);
}
const bar = createProgressBar({ enabled: opts.progress });
let mesh: MeshHandle | undefined;
let stopping = false;

/** Stops everything this process started, then exits. A second Ctrl-C exits at once. */
async function shutdown(code: number, why?: string): Promise<never> {
  if (stopping) process.exit(code);
  stopping = true;
  bar.done();
  if (why) process.stderr.write(`${why}\n`);
  await mesh?.stop().catch(() => {});
  // Anything started before the handle existed (a half-started mesh) is killed here.
  await stopAllProcesses().catch(() => {});
  process.exit(code);
}
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    void shutdown(130, `\n${signal}: stopping every process the mesh started`);
  });
}

/**
 * The Sentinel keys as every service reads them (a bad value: the services' readable block,
 * exit 2), and the primary the sentinels name now, as the URL the runner reuses.
 */
async function sentinelSetup(): Promise<{ env: Record<string, string>; redisUrl: string } | undefined> {
  let sentinel: ReturnType<typeof loadRedisSentinel>;
  try {
    sentinel = loadRedisSentinel(process.env);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(configErrorBlock("jetmesh-mesh", err));
    process.exit(2);
  }
  if (!sentinel) return undefined;
  const url = new URL(process.env.REDIS_URL || "redis://127.0.0.1:6379");
  const redis = createRedis({ url: url.href, name: "jetmesh-mesh", sentinel, onError: () => {} });
  try {
    await redis.ping();
    const socket = redis.stream as Socket;
    url.hostname = socket.remoteAddress ?? url.hostname;
    url.port = String(socket.remotePort ?? url.port);
  } finally {
    redis.disconnect();
  }
  const env: Record<string, string> = {};
  for (const k of [
    "REDIS_SENTINELS",
    "REDIS_SENTINEL_NAME",
    "REDIS_SENTINEL_USERNAME",
    "REDIS_SENTINEL_PASSWORD_FILE",
  ]) {
    const v = process.env[k];
    if (v) env[k] = v;
  }
  return { env, redisUrl: url.href };
}

try {
  const sentinel = await sentinelSetup();
  const redisUrl = sentinel?.redisUrl ?? process.env.REDIS_URL;
  const { report } = await runDemo({
    transfers: Math.floor(opts.transfers),
    rate: opts.rate,
    accounts: Math.floor(opts.accounts),
    dataDir: resolve(opts.dataDir),
    logLevel: opts.logLevel,
    quietTimeoutMs: opts.quietTimeout * 1000,
    progress: bar,
    onMesh: (m) => {
      mesh = m;
    },
    ...(process.env.NATS_URL ? { natsUrl: process.env.NATS_URL } : {}),
    ...(redisUrl ? { redisUrl } : {}),
    ...(sentinel ? { env: sentinel.env } : {}),
    namespace,
  });
  bar.done();
  process.stdout.write(`${formatReport(report)}\n`);
  if (opts.json) {
    await writeFile(opts.json, `${JSON.stringify(report, null, 2)}\n`);
    process.stderr.write(`report written to ${opts.json}\n`);
  }
  if (mesh) process.stderr.write(`logs: ${mesh.logDir}\n`);
  if (opts.keep && mesh) {
    const m = mesh;
    process.stderr.write(
      [
        "mesh running; Ctrl-C stops it",
        `  gateway   ${m.gatewayUrl}   (curl ${m.gatewayUrl}/v1/accounts/acc-1)`,
        `  nats      ${m.natsUrl}   (nats --server ${m.natsUrl} stream ls)`,
        `  redis     ${m.redisUrl}`,
        ...Object.values(m.services).map((s) => `  ${s.name.padEnd(10)}${s.url}  log ${s.logFile}`),
        "",
      ].join("\n"),
    );
    await new Promise(() => {}); // until a signal
  }
  await shutdown(report.ok ? 0 : 1);
} catch (err) {
  await shutdown(2, `mesh: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
}
