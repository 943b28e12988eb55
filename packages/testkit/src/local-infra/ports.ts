import { createServer } from "node:net";

/** Ports already handed out by this process; never handed out again. */
const handedOut = new Set<number>();
const MAX_ATTEMPTS = 50;

/**
 * Returns a TCP port on 127.0.0.1 that was free a moment ago: listens on port 0, reads
 * the port the OS chose, closes. A port is never returned twice in one process, so
 * servers started together (a cluster's client, route and monitor ports) cannot collide.
 * Another process may still grab the port before it is used; servers that start on it
 * fail fast with "address in use" in their logs.
 *
 * @throws when no unused port was found after 50 attempts.
 */
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
    const port = await listenOnAnyPort();
    if (!handedOut.has(port)) {
      handedOut.add(port);
      return port;
    }
  }
  throw new Error(`no free loopback port found after ${MAX_ATTEMPTS} attempts`);
}

function listenOnAnyPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once("error", reject);
    server.listen({ host: "127.0.0.1", port: 0, exclusive: true }, () => {
      const address = server.address();
      if (address === null || typeof address === "string") {
        server.close();
        reject(new Error("listening socket has no port"));
        return;
      }
      server.close((err) => (err ? reject(err) : resolve(address.port)));
    });
  });
}
