import { randomBytes } from "node:crypto";
import { chmodSync, existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { createUser, fromSeed } from "@nats-io/nkeys";
import type { NatsAccess } from "./nats-permissions.ts";
import { renderAuthConfig, renderRoutesConfig } from "./nats-config.ts";
import { secretsFolder, writeSecretFile } from "./secret-files.ts";

/** File names inside the output folder. */
export const AccessFiles = {
  /** The include with the accounts and users (public keys). */
  auth: "nats-auth.conf",
  /** The include for `cluster {}` with the route credentials (written with `routes`). */
  routes: "nats-routes.conf",
  /** A user's seed: `<user>.nk`. */
  seed: (user: string) => `${user}.nk`,
} as const;

/** Options of {@link writeNatsAccess}. */
export interface WriteNatsAccessOptions {
  /** The secrets folder; created with mode 0700. Must not be inside a git work tree. */
  readonly out: string;
  readonly access: NatsAccess;
  /** New seeds (and route password) even where the folder already has some. */
  readonly rotate?: boolean;
  /** Also write nats-routes.conf for these routes (`host:port`). */
  readonly routes?: readonly string[];
}

/** What {@link writeNatsAccess} wrote. */
export interface WrittenAccess {
  readonly authFile: string;
  readonly routesFile?: string;
  /** Seed file per user. */
  readonly seedFiles: Readonly<Record<string, string>>;
  /** Public key per user. */
  readonly publicKeys: Readonly<Record<string, string>>;
  /** Users whose seed was created now (the others kept theirs). */
  readonly created: readonly string[];
}

/** The seed in `path` when it is a user seed, else undefined. */
function readSeed(path: string): string | undefined {
  if (!existsSync(path)) return undefined;
  const seed = readFileSync(path, "utf8").trim();
  if (!seed.startsWith("SU")) throw new Error(`${path} does not hold a user seed (SU...)`);
  return seed;
}

/**
 * Writes the authorization into a secrets folder: `nats-auth.conf` (the include, public keys
 * only), one `<user>.nk` seed per user (mode 0600), and with `routes` the cluster's
 * `nats-routes.conf` (mode 0600). Seeds already in the folder are kept (so regenerating
 * after a manifest change redistributes nothing) unless `rotate`.
 * @throws when `out` is inside a git work tree (secrets never go into a repository), or an
 *   existing seed file holds something other than a user seed.
 */
export function writeNatsAccess(o: WriteNatsAccessOptions): WrittenAccess {
  const out = secretsFolder(o.out, "NATS secrets");
  const seedFiles: Record<string, string> = {};
  const publicKeys: Record<string, string> = {};
  const created: string[] = [];
  for (const u of o.access.users) {
    const file = join(out, AccessFiles.seed(u.name));
    const kept = o.rotate ? undefined : readSeed(file);
    const kp = kept ? fromSeed(new TextEncoder().encode(kept)) : createUser();
    if (!kept) {
      writeSecretFile(file, `${new TextDecoder().decode(kp.getSeed())}\n`);
      created.push(u.name);
    } else chmodSync(file, 0o600);
    seedFiles[u.name] = file;
    publicKeys[u.name] = kp.getPublicKey();
  }
  const authFile = join(out, AccessFiles.auth);
  writeSecretFile(authFile, renderAuthConfig(o.access, publicKeys), 0o644);
  let routesFile: string | undefined;
  if (o.routes?.length) {
    routesFile = join(out, AccessFiles.routes);
    const previous = !o.rotate && existsSync(routesFile) ? readFileSync(routesFile, "utf8") : "";
    const password =
      /^\s*password:\s*"([^"]+)"/m.exec(previous)?.[1] ?? randomBytes(24).toString("base64url");
    writeSecretFile(routesFile, renderRoutesConfig({ user: "route", password, routes: o.routes }));
  }
  return { authFile, ...(routesFile ? { routesFile } : {}), seedFiles, publicKeys, created };
}
