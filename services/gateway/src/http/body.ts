import type { IncomingMessage } from "node:http";
import { HttpError, invalidRequest, json } from "./reply.ts";
import { parseStrictJson, type StrictJson } from "./strict-json.ts";

/** `application/json`, optionally `; charset=utf-8` (RFC 8259: JSON is UTF-8), nothing else. */
const JSON_TYPE = /^application\/json[ \t]*(?:;[ \t]*charset[ \t]*=[ \t]*(?:"utf-8"|utf-8)[ \t]*)?$/i;
const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false });

/** The client went away before its request was read: nothing to answer, not a server error. */
export class ClientAbortError extends Error {
  override readonly name = "ClientAbortError";
}

/** Replies that leave the rest of the body unread close the connection after answering. */
const CLOSE = { Connection: "close" } as const;

/**
 * Reads a JSON request body of at most `maxBytes`, strictly.
 *
 * The content type is checked before a byte is read, and reading stops at the limit:
 * a client cannot make the gateway buffer more than `maxBytes` per request.
 * @throws HttpError 415 when the Content-Type is not exactly `application/json` (with at
 *   most `charset=utf-8`); 413 when the body is larger than `maxBytes`; 400 naming the
 *   field when the body is not UTF-8, not JSON, or repeats a member name.
 * @throws ClientAbortError when the client goes away mid-body.
 */
export async function readJsonBody(req: IncomingMessage, maxBytes: number): Promise<StrictJson> {
  const contentType = req.headers["content-type"] ?? "";
  if (!JSON_TYPE.test(contentType.trim())) {
    throw new HttpError(
      json(
        415,
        {
          error: "unsupported media type",
          detail: "content-type must be application/json (optionally ; charset=utf-8)",
          field: "header:Content-Type",
        },
        req.complete ? undefined : CLOSE,
      ),
    );
  }
  const declared = Number(req.headers["content-length"]);
  if (Number.isFinite(declared) && declared > maxBytes) throw tooLarge(maxBytes);
  const bytes = await readAtMost(req, maxBytes);
  let text: string;
  try {
    text = utf8.decode(bytes);
  } catch (err) {
    throw new HttpError(invalidRequest([{ field: "/", rule: "is not UTF-8" }]), { cause: err });
  }
  const parsed = parseStrictJson(text);
  if (!parsed.ok) throw new HttpError(invalidRequest([parsed.issue]));
  return parsed.json;
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
      // A reset socket mid-body is the client leaving, whatever node calls it.
      reject(
        err instanceof ClientAbortError || (err as NodeJS.ErrnoException).code === "ECONNRESET"
          ? new ClientAbortError("client aborted the request body", { cause: err })
          : err,
      );
    };
    const onAborted = (): void => onError(new ClientAbortError("client aborted the request body"));
    req.on("data", onData);
    req.on("end", onEnd);
    req.on("error", onError);
    req.on("aborted", onAborted);
  });
}
