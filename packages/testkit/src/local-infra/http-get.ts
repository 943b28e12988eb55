import { get } from "node:http";

/** Status and body of one HTTP GET. */
export interface HttpResponse {
  /** HTTP status code. */
  status: number;
  /** Response body as UTF-8 text. */
  body: string;
}

/**
 * One HTTP GET without connection pooling (`agent: false`): the servers probed here get
 * killed and restarted on the same port, and a pooled keep-alive socket would outlive them.
 *
 * @throws on connection errors and when no full response arrives within `timeoutMs`.
 */
export function httpGet(url: string, timeoutMs = 2_000): Promise<HttpResponse> {
  return new Promise((resolve, reject) => {
    const req = get(url, { agent: false, timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (chunk: Buffer) => chunks.push(chunk));
      res.on("error", reject);
      res.on("end", () =>
        resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8") }),
      );
    });
    req.on("timeout", () => req.destroy(new Error(`GET ${url} timed out after ${timeoutMs} ms`)));
    req.on("error", reject);
  });
}
