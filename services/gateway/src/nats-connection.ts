import type { NatsConnection } from "@jetmesh/stage";

/** Whether the NATS connection is up, as its status events say. */
export interface ConnectionState {
  connected(): boolean;
}

/**
 * Follows the connection's status events. While disconnected, the client buffers
 * publishes and a JetStream publish only fails at its timeout; knowing the state lets
 * the gateway answer 503 at once instead of holding the request that long.
 */
export function watchNatsConnection(nc: NatsConnection): ConnectionState {
  let up = !nc.isClosed();
  void (async () => {
    for await (const s of nc.status()) {
      if (s.type === "disconnect" || s.type === "close") up = false;
      else if (s.type === "reconnect") up = true;
    }
  })();
  void nc.closed().then(() => {
    up = false;
  });
  return { connected: () => up && !nc.isClosed() };
}
