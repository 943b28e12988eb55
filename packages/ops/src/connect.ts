import { type JetStreamClient, type JetStreamManager, jetstreamManager } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { OpsError, oneLine } from "./errors.ts";

/** The server the CLI talks to when `--server` is not given. */
export function defaultServer(env: NodeJS.ProcessEnv = process.env): string {
  const url = env.NATS_URL?.trim();
  return url ? url : "nats://127.0.0.1:4222";
}

/** One connection and its JetStream clients, closed by {@link Session.close}. */
export interface Session {
  readonly nc: NatsConnection;
  readonly js: JetStreamClient;
  readonly jsm: JetStreamManager;
  close(): Promise<void>;
}

/**
 * Connects once, without reconnecting: an operator's command should fail fast and say why
 * rather than wait for a server that is not there.
 * @throws OpsError (exit 1) when the server cannot be reached or has no JetStream.
 */
export async function openSession(server: string, timeoutMs = 5_000): Promise<Session> {
  let nc: NatsConnection;
  try {
    nc = await connect({ servers: server, timeout: timeoutMs, reconnect: false, name: "jetmesh-ops" });
  } catch (err) {
    throw new OpsError(`cannot connect to nats at ${server}: ${oneLine(err)}`, { cause: err });
  }
  try {
    const jsm = await jetstreamManager(nc, { timeout: timeoutMs });
    return { nc, js: jsm.jetstream(), jsm, close: () => nc.close() };
  } catch (err) {
    await nc.close().catch(() => {});
    throw new OpsError(`no jetstream at ${server}: ${oneLine(err)}`, { cause: err });
  }
}
