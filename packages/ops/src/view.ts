import { type DecodedBody, decodeStored, toJson } from "./decode.ts";
import type { StoredMessage } from "./read-stream.ts";

/** One message of `jetmesh view --json`: where it is stored, its headers and its decoded body. */
export interface ViewedMessage {
  readonly stream: string;
  readonly seq: number;
  readonly subject: string;
  readonly time: string;
  readonly headers: Readonly<Record<string, readonly string[]>>;
  /** The contract event, when the body is one. */
  readonly event?: unknown;
  /** Why the body is not a contract event, and its raw value. */
  readonly invalid?: { readonly reason: string; readonly value: unknown };
}

/** A stored message with its body decoded (never throws: a bad body is shown as such). */
export function viewOf(msg: StoredMessage): ViewedMessage {
  const body: DecodedBody = decodeStored(msg);
  return {
    stream: msg.stream,
    seq: msg.seq,
    subject: msg.subject,
    time: new Date(msg.timestampMs).toISOString(),
    headers: msg.headers,
    ...(body.valid ? { event: body.event } : { invalid: { reason: body.reason, value: body.value } }),
  };
}

/** One JSON object on one line. */
export function viewLine(v: ViewedMessage): string {
  return toJson(v);
}

/** A readable block: a title line, the headers, then the body as indented JSON. */
export function viewBlock(v: ViewedMessage): string {
  const lines = [`[${v.stream} #${v.seq}] ${v.subject}  ${v.time}`];
  for (const [k, values] of Object.entries(v.headers))
    for (const value of values) lines.push(`  ${k}: ${value}`);
  if (v.invalid) lines.push(`  // not a valid contract event: ${v.invalid.reason}`);
  const body = toJson(v.event ?? v.invalid?.value, 2) ?? "undefined";
  lines.push(...body.split("\n").map((l) => `  ${l}`));
  return lines.join("\n");
}
