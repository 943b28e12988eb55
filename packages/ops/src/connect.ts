import { type Names, namesFor } from "@jetmesh/contracts";
import { readFileSync } from "node:fs";
import { type JetStreamClient, type JetStreamManager, jetstreamManager } from "@nats-io/jetstream";
import { connect, type NatsConnection, nkeyAuthenticator } from "@nats-io/transport-node";
import { ExitCodes, OpsError, oneLine } from "./errors.ts";

/** The server the CLI talks to when `--server` is not given. */
export function defaultServer(env: NodeJS.ProcessEnv = process.env): string {
  const url = env.NATS_URL?.trim();
  return url ? url : "nats://127.0.0.1:4222";
}

/** One connection and its JetStream clients, closed by {@link Session.close}. */
export interface Session {
  /** The namespace's names (JETMESH_NAMESPACE or `--namespace`; production's without). */
  readonly names: Names;
  readonly nc: NatsConnection;
  readonly js: JetStreamClient;
  readonly jsm: JetStreamManager;
  close(): Promise<void>;
}

/** How the CLI logs in: `nkeySeedFile` (`$NATS_NKEY_SEED_FILE`, the `ops` user's seed) or anonymously. */
export interface SessionOptions {
  readonly nkeySeedFile?: string;
  /** Dev isolation: the namespace whose streams, buckets and keys the commands name. */
  readonly namespace?: string;
  readonly timeoutMs?: number;
}

/** The NKey authenticator of a seed file, read once. */
function authenticatorOf(file: string) {
  let seed: string;
  try {
    seed = readFileSync(file, "utf8").trim();
  } catch (err) {
    throw new OpsError(`cannot read the nkey seed file ${file}: ${oneLine(err)}`, { cause: err });
  }
  return nkeyAuthenticator(new TextEncoder().encode(seed));
}

/**
 * Connects once, without reconnecting: an operator's command should fail fast and say why
 * rather than wait for a server that is not there.
 * @throws OpsError (exit 1) when the seed file is unreadable, the server cannot be reached or
 *   has no JetStream.
 */
export async function openSession(server: string, o: SessionOptions = {}): Promise<Session> {
  const timeoutMs = o.timeoutMs ?? 5_000;
  let names: Names;
  try {
    names = namesFor(o.namespace);
  } catch (err) {
    throw new OpsError(oneLine(err), { exitCode: ExitCodes.Usage, cause: err });
  }
  const authenticator = o.nkeySeedFile ? authenticatorOf(o.nkeySeedFile) : undefined;
  let nc: NatsConnection;
  try {
    nc = await connect({
      servers: server,
      timeout: timeoutMs,
      reconnect: false,
      name: "jetmesh-ops",
      ...(authenticator ? { authenticator } : {}),
    });
  } catch (err) {
    throw new OpsError(`cannot connect to nats at ${server}: ${oneLine(err)}`, { cause: err });
  }
  try {
    const jsm = await jetstreamManager(nc, { timeout: timeoutMs });
    return { names, nc, js: jsm.jetstream(), jsm, close: () => nc.close() };
  } catch (err) {
    await nc.close().catch(() => {});
    throw new OpsError(`no jetstream at ${server}: ${oneLine(err)}`, { cause: err });
  }
}
