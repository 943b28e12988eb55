import { execFile } from "node:child_process";
import { constants } from "node:fs";
import { access } from "node:fs/promises";
import { delimiter, join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

/** Absolute paths of the server binaries the kit runs. */
export interface Binaries {
  /** Path of the nats-server executable. */
  natsServer: string;
  /** Path of the redis-server executable. */
  redisServer: string;
}

/** Where to look besides PATH: Debian installs nats-server in /usr/sbin. */
const EXTRA_DIRS = ["/usr/sbin", "/usr/bin", "/usr/local/bin", "/usr/local/sbin"];
/** Every binary the kit knows, with the Debian package that ships it. */
const KNOWN = {
  natsServer: { file: "nats-server", debian: "nats-server" },
  redisServer: { file: "redis-server", debian: "redis-server" },
  // Prometheus's rule checker and unit-test runner (test/alerts.test.ts).
  promtool: { file: "promtool", debian: "prometheus" },
  // The server itself, from the same package (test/observability/prometheus-e2e.test.ts).
  prometheus: { file: "prometheus", debian: "prometheus" },
} as const;
type Known = keyof typeof KNOWN;

const cached = new Map<string, Promise<Record<string, string>>>();

/**
 * Finds nats-server and redis-server on PATH, then in /usr/sbin and /usr/bin. When one is
 * missing and the process runs as root, runs `apt-get update` and
 * `apt-get install -y <the missing packages>` once (non-interactive) and looks again.
 * The result (or the failure) is cached for the life of the process.
 *
 * @throws Error naming the missing binaries and how to install them.
 */
export async function ensureBinaries(): Promise<Binaries> {
  const found = await ensure(["natsServer", "redisServer"]);
  return { natsServer: found.natsServer!, redisServer: found.redisServer! };
}

/**
 * Finds promtool (Debian package `prometheus`) like {@link ensureBinaries} finds the servers,
 * installing the package with apt-get when it is missing and the process runs as root.
 * Cached for the life of the process.
 *
 * @throws Error naming the missing binary and how to install it.
 */
export async function ensurePromtool(): Promise<string> {
  return (await ensure(["promtool"])).promtool!;
}

/**
 * Finds the Prometheus server (Debian package `prometheus`, the one that ships promtool) like
 * {@link ensurePromtool}, installing the package when it is missing and the process runs as
 * root. Cached for the life of the process.
 *
 * @throws Error naming the missing binary and how to install it.
 */
export async function ensurePrometheus(): Promise<string> {
  return (await ensure(["prometheus"])).prometheus!;
}

function ensure(names: readonly Known[]): Promise<Record<string, string>> {
  const key = names.join(",");
  let found = cached.get(key);
  if (!found) {
    found = locateOrInstall(names);
    cached.set(key, found);
  }
  return found;
}

async function locateOrInstall(names: readonly Known[]): Promise<Record<string, string>> {
  const found = await locate(names);
  const missing = names.filter((n) => found[n] === undefined);
  if (missing.length === 0) return found as Record<string, string>;
  const files = missing.map((n) => KNOWN[n].file).join(" and ");
  const packages = missing.map((n) => KNOWN[n].debian);
  if (process.getuid?.() !== 0) {
    throw new Error(
      `missing ${files}: install them (apt-get install -y ${packages.join(" ")}) or put them on PATH`,
    );
  }
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  try {
    await run("apt-get", ["update"], { env, maxBuffer: 64 * 1024 * 1024 });
    await run("apt-get", ["install", "-y", ...packages], { env, maxBuffer: 64 * 1024 * 1024 });
  } catch (err) {
    throw new Error(`missing ${files} and apt-get could not install them`, { cause: err });
  }
  const after = await locate(names);
  if (names.some((n) => after[n] === undefined)) {
    throw new Error(`apt-get ran but ${files} still cannot be found`);
  }
  return after as Record<string, string>;
}

async function locate(names: readonly Known[]): Promise<Partial<Record<Known, string>>> {
  const dirs = [...(process.env.PATH ?? "").split(delimiter).filter((d) => d !== ""), ...EXTRA_DIRS];
  const paths = await Promise.all(names.map((n) => findExecutable(KNOWN[n].file, dirs)));
  return Object.fromEntries(names.map((n, i) => [n, paths[i]]));
}

async function findExecutable(name: string, dirs: readonly string[]): Promise<string | undefined> {
  for (const dir of dirs) {
    const candidate = join(dir, name);
    try {
      await access(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}
