import type { TSchema } from "@sinclair/typebox";
import type { TypeCheck } from "@sinclair/typebox/compiler";
import { Packr } from "msgpackr";
import { ContractError, type FieldIssue } from "./errors.ts";

// Plain MessagePack (no msgpackr records): any MessagePack tool can read a body an
// operator copies out of `nats stream view`. Maps decode to plain objects.
const packr = new Packr({ useRecords: false, mapsAsObjects: true, moreTypes: false });

/** Packs a value already checked against its contract. */
export function packBody(value: unknown): Uint8Array {
  return packr.pack(value);
}

/**
 * Unpacks a body, unchecked.
 * @throws ContractError when the bytes are not MessagePack.
 */
export function unpackBody(bytes: Uint8Array): unknown {
  try {
    return packr.unpack(bytes);
  } catch (err) {
    throw new ContractError("body is not messagepack", [{ field: "/", rule: "must be messagepack" }], {
      cause: err,
    });
  }
}

/** The first 20 ways `value` breaks `check`, each field path under `prefix`. */
export function issuesOf(check: TypeCheck<TSchema>, value: unknown, prefix: string): FieldIssue[] {
  const out: FieldIssue[] = [];
  for (const e of check.Errors(value)) {
    out.push({ field: `${prefix}${e.path}` || "/", rule: e.message.toLowerCase() });
    if (out.length >= 20) break;
  }
  return out;
}
