import { type AnyEnvelope, decodeMessage, type HeaderLookup } from "@jetmesh/contracts";
import { Packr } from "msgpackr";
import { OpsError, oneLine } from "./errors.ts";
import { headerOf, type StoredMessage } from "./read-stream.ts";

// The same plain-MessagePack settings as the contracts codec, so a body that fails only its
// schema check still shows as the map it is.
const packr = new Packr({ useRecords: false, mapsAsObjects: true, moreTypes: false });

/** A message body as the CLI shows it: a contract event, or the raw MessagePack value and why it is not one. */
export type DecodedBody =
  | { readonly valid: true; readonly event: AnyEnvelope }
  | { readonly valid: false; readonly reason: string; readonly value: unknown };

/**
 * Decodes a body with the contracts' reader, as the stages read it (`decodeMessage`: with its
 * headers, an envelope without `actor` takes the client from `Jetmesh-Client-Id`); when that
 * refuses it, unpacks it as plain MessagePack and keeps the codec's reason.
 * @throws OpsError when the bytes are not MessagePack at all.
 */
export function decodeBody(bytes: Uint8Array, headers?: HeaderLookup): DecodedBody {
  try {
    return { valid: true, event: decodeMessage(bytes, headers) };
  } catch (err) {
    // ContractError's message already names each bad field.
    const reason = oneLine(err);
    try {
      return { valid: false, reason, value: packr.unpack(bytes) };
    } catch (unpackErr) {
      throw new OpsError(`body is not messagepack (${bytes.length} bytes)`, { cause: unpackErr });
    }
  }
}

/**
 * A stored message's body read with its headers. Never throws: a body that is not even
 * MessagePack becomes an invalid body with no value.
 */
export function decodeStored(msg: StoredMessage): DecodedBody {
  try {
    return decodeBody(msg.data, { get: (name) => headerOf(msg, name) });
  } catch (err) {
    return { valid: false, reason: oneLine(err), value: null };
  }
}

/** JSON.stringify that survives what MessagePack can hold and JSON cannot (bigint, bytes). */
export function toJson(value: unknown, indent?: number): string {
  return JSON.stringify(
    value,
    (_key, v: unknown) => {
      if (typeof v === "bigint") return v.toString();
      if (v instanceof Uint8Array) return { $bytes: Buffer.from(v).toString("base64") };
      if (v instanceof Map) return Object.fromEntries(v);
      return v;
    },
    indent,
  );
}

/**
 * The text `jetmesh decode` prints: the event as pretty JSON, or a comment line saying the
 * body is not a valid contract event followed by its raw value.
 */
export function renderDecoded(body: DecodedBody): string {
  if (body.valid) return toJson(body.event, 2);
  return `// not a valid contract event: ${body.reason}\n${toJson(body.value, 2)}`;
}
