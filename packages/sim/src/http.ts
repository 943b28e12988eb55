import { type IncomingHttpHeaders, request, type Server } from "node:http";
import { Duplex } from "node:stream";

/**
 * One end of an in-memory connection. What one end writes, the other reads, at once and in
 * order (no socket, no event loop phase of its own: only streams' nextTicks), so HTTP over
 * it is as deterministic as the rest of a world. The socket methods node:http calls on a
 * connection are no-ops: the server's idle and request timeouts are not enforced here.
 */
class Pipe extends Duplex {
  peer: Pipe | undefined;
  readonly remoteAddress = "10.0.0.2";
  readonly remotePort = 40000;
  override _read(): void {}
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.peer?.push(chunk);
    cb();
  }
  override _final(cb: (err?: Error | null) => void): void {
    this.peer?.push(null);
    cb();
  }
  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    // A closed connection closes for both ends, as a reset socket does.
    const peer = this.peer;
    this.peer = undefined;
    if (peer && !peer.destroyed) peer.destroy();
    cb(err);
  }
  setTimeout(): this {
    return this;
  }
  setNoDelay(): this {
    return this;
  }
  setKeepAlive(): this {
    return this;
  }
}

/** Opens a connection to `server` (as its `connection` event, like an accepted socket); returns the client's end. */
export function connectTo(server: Server): Duplex {
  const client = new Pipe();
  const served = new Pipe();
  client.peer = served;
  served.peer = client;
  server.emit("connection", served);
  return client;
}

/** An HTTP answer as a client reads it. */
export interface HttpAnswer {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
}

/**
 * One HTTP/1.1 request to `server` on a connection of its own (`Connection: close`), written
 * and parsed by node:http's own client and server: real request bytes, real parsing.
 * @throws what node:http throws (a connection closed before an answer).
 */
export function httpRequest(
  server: Server,
  r: { method: string; path: string; headers: Record<string, string>; body?: string },
): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        method: r.method,
        path: r.path,
        host: "gateway.sim",
        headers: {
          connection: "close",
          ...(r.body !== undefined ? { "content-length": String(Buffer.byteLength(r.body)) } : {}),
          ...r.headers,
        },
        createConnection: () => connectTo(server) as never,
      },
      (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (d: string) => {
          body += d;
        });
        res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end(r.body);
  });
}
