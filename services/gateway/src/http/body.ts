import type { IncomingMessage } from "node:http";
import { HttpError, json } from "./reply.ts";

const JSON_TYPE = /^application\/(?:[a-z0-9.+-]+\+)?json$/;
const utf8 = new TextDecoder("utf-8", { fatal: true });

/** Replies that leave the rest of the body unread close the connection after answering. */
const CLOSE = { Connection: "close" } as const;

/**
 * Reads a JSON request body of at most `maxBytes`.
 *
 * The content type is checked before a byte is read, and reading stops at the limit:
 * a client cannot make the gateway buffer more than `maxBytes` per request.
 * @throws HttpError 415 when the Content-Type is not JSON or the body does not parse as
 *   UTF-8 JSON (the body says which); 413 when the body is larger than `maxBytes`.
 */
export async function readJsonBody(req: IncomingMessage, maxBytes: number): Promise<unknown> {
  const mediaType = (req.headers["content-type"] ?? "").split(";")[0]?.trim().toLowerCase() ?? "";
  if (!JSON_TYPE.test(mediaType)) {
    throw new HttpError(
      json(
        415,
        { error: "unsupported media type", detail: "content-type must be application/json" },
        req.complete ? undefined : CLOSE,
      ),
    );
  }
  const declared = Number(req.headers["content-length"]);
  if (Number.isFinite(declared) && declared > maxBytes) throw tooLarge(maxBytes);
  const bytes = await readAtMost(req, maxBytes);
  let text: string;
  let value: unknown;
  try {
    text = utf8.decode(bytes);
    value = JSON.parse(text);
  } catch (err) {
    throw new HttpError(json(415, { error: "unsupported media type", detail: "body is not valid json" }), {
      cause: err,
    });
  }
  return value;
}

function tooLarge(maxBytes: number): HttpError {
  return new HttpError(
    json(413, { error: "payload too large", detail: `body must be at most ${maxBytes} bytes` }, CLOSE),
  );
}

function readAtMost(req: IncomingMessage, maxBytes: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const cleanup = (): void => {
      req.off("data", onData);
      req.off("end", onEnd);
      req.off("error", onError);
      req.off("aborted", onAborted);
    };
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > maxBytes) {
        cleanup();
        // Stop reading here; the 413 goes out with Connection: close and the socket
        // is closed after it, so the rest of the body is never buffered.
        req.pause();
        reject(tooLarge(maxBytes));
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = (): void => {
      cleanup();
      resolve(Buffer.concat(chunks, size));
    };
    const onError = (err: Error): void => {
      cleanup();
      reject(err);
    };
    const onAborted = (): void => onError(new Error("request aborted"));
    req.on("data", onData);
    req.on("end", onEnd);
    req.on("error", onError);
    req.on("aborted", onAborted);
  });
}
