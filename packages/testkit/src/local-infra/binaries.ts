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
const PACKAGES = ["nats-server", "redis-server"];

let cached: Promise<Binaries> | undefined;

/**
 * Finds nats-server and redis-server on PATH, then in /usr/sbin and /usr/bin. When one is
 * missing and the process runs as root, runs `apt-get update` and
 * `apt-get install -y nats-server redis-server` once (non-interactive) and looks again.
 * The result (or the failure) is cached for the life of the process.
 *
 * @throws Error naming the missing binaries and how to install them.
 */
export function ensureBinaries(): Promise<Binaries> {
  cached ??= locateOrInstall();
  return cached;
}

async function locateOrInstall(): Promise<Binaries> {
  const found = await locate();
  if (found.natsServer !== undefined && found.redisServer !== undefined) {
    return { natsServer: found.natsServer, redisServer: found.redisServer };
  }
  const missing = PACKAGES.filter((_, i) => (i === 0 ? found.natsServer : found.redisServer) === undefined);
  if (process.getuid?.() !== 0) {
    throw new Error(
      `missing ${missing.join(" and ")}: install them (apt-get install -y ${PACKAGES.join(" ")}) or put them on PATH`,
    );
  }
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  try {
    await run("apt-get", ["update"], { env, maxBuffer: 64 * 1024 * 1024 });
    await run("apt-get", ["install", "-y", ...PACKAGES], { env, maxBuffer: 64 * 1024 * 1024 });
  } catch (err) {
    throw new Error(`missing ${missing.join(" and ")} and apt-get could not install them`, { cause: err });
  }
  const after = await locate();
  if (after.natsServer === undefined || after.redisServer === undefined) {
    throw new Error(`apt-get ran but ${missing.join(" and ")} still cannot be found`);
  }
  return { natsServer: after.natsServer, redisServer: after.redisServer };
}

async function locate(): Promise<Partial<Binaries>> {
  const dirs = [...(process.env.PATH ?? "").split(delimiter).filter((d) => d !== ""), ...EXTRA_DIRS];
  const [natsServer, redisServer] = await Promise.all(PACKAGES.map((name) => findExecutable(name, dirs)));
  return { natsServer, redisServer };
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
