import { ReplyError } from "ioredis";
import ioredisErrors from "ioredis/built/errors/index.js";

/** A status reply (`+OK`): ioredis hands it over as a plain string, a script sees `{ok = ...}`. */
export class Status {
  constructor(readonly value: string) {}
}

/**
 * An error reply (`-ERR ...`): thrown by a command, caught at the step's edge and handed
 * back as a value, since scripts (`redis.pcall`) and transactions keep it as one.
 */
export class RespError extends Error {
  override readonly name = "RespError";
}

/** A reply as Redis sends it (RESP2): bulk string, integer, nil, status, error or array. */
export type Reply = string | number | null | Status | RespError | Reply[];

/** The error replies the project's code and tests can see, worded as Redis 7.0 words them. */
export const Errors = {
  wrongType: "WRONGTYPE Operation against a key holding the wrong kind of value",
  notInteger: "ERR value is not an integer or out of range",
  hashNotInteger: "ERR hash value is not an integer",
  overflow: "ERR increment or decrement would overflow",
  syntax: "ERR syntax error",
  noScript: "NOSCRIPT No matching script. Please use EVAL.",
  execAbort: "EXECABORT Transaction discarded because of previous errors.",
  arity: (name: string) => `ERR wrong number of arguments for '${name.toLowerCase()}' command`,
  unknown: (name: string, args: readonly string[]) =>
    `ERR unknown command '${name}', with args beginning with: ${args
      .slice(0, 10)
      .map((a) => `'${a}' `)
      .join("")}`,
  expireTime: (name: string) => `ERR invalid expire time in '${name.toLowerCase()}' command`,
} as const;

/** ioredis' class for error replies (redis-errors' ReplyError; ioredis exports it untyped). */
const ReplyErrorClass = ReplyError as new (message: string) => Error & { command?: unknown };

/** The error ioredis rejects a command with when Redis answered `-<message>`. */
export function replyError(message: string, name?: string, args?: readonly string[]): Error {
  const err = new ReplyErrorClass(message);
  // ioredis' DataHandler tags every top-level error reply with its command.
  if (name !== undefined) err.command = { name: name.toLowerCase(), args };
  return err;
}

/**
 * What ioredis rejects a command with when Redis cannot be reached and its retries are
 * spent (the runtime's client: `maxRetriesPerRequest: 1`).
 */
export function connectionError(maxRetriesPerRequest: number): Error {
  return new ioredisErrors.MaxRetriesPerRequestError(maxRetriesPerRequest) as unknown as Error;
}

/** What ioredis rejects a command with after `quit()` or `disconnect()`. */
export function closedError(): Error {
  return new Error("Connection is closed.");
}

/** A reply as ioredis hands it to the caller (status as string, nested errors as ReplyError). */
export function toClientValue(r: Reply, name: string, args: readonly string[]): unknown {
  if (r === null || typeof r !== "object") return r;
  if (r instanceof Status) return r.value;
  if (r instanceof RespError) return replyError(r.message);
  return r.map((x) => toClientValue(x, name, args));
}
