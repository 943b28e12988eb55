import { createHash, randomBytes } from "node:crypto";
import { ActorId } from "./envelope.ts";
import { AccountPatterns } from "./projections.ts";
import { type Static, Type } from "@sinclair/typebox";
import { Value } from "@sinclair/typebox/value";

/**
 * The gateway's clients file: API clients and how they authenticate. A client sends
 * `Authorization: Bearer <key>`; the gateway keeps only the SHA-256 of each key (keys are
 * 32 random bytes, so a hash is enough; no key is ever logged or stored in clear). A client
 * may hold several keys at once, each with an optional end of validity, so a key is rotated
 * by adding the new one, moving the caller over, then removing (or expiring) the old one.
 */

/** What a client may do. */
export const Roles = {
  /** Moves money out of the accounts it owns. */
  Customer: "customer",
  /** May also mint: send from `external`, within its mint limit. */
  Operator: "operator",
} as const;
export type Role = (typeof Roles)[keyof typeof Roles];

const ClientSchema = Type.Object(
  {
    /** Travels with every event of its transfers (the envelope's `actor`). */
    id: ActorId,
    role: Type.Union([Type.Literal(Roles.Customer), Type.Literal(Roles.Operator)]),
    /** Accounts it may debit and read; `"*"` for every account (operators). */
    accounts: Type.Array(Type.String({ minLength: 1, maxLength: 64 }), { minItems: 1 }),
    keys: Type.Array(
      Type.Object(
        {
          id: Type.String({ minLength: 1, maxLength: 64 }),
          sha256: Type.String({ pattern: "^[0-9a-f]{64}$" }),
          /** ISO 8601: the key stops working then (rotation). */
          notAfter: Type.Optional(Type.String({ minLength: 1 })),
        },
        { additionalProperties: false },
      ),
      { minItems: 1 },
    ),
    /** Requests per second, and the burst a bucket holds; defaults from the gateway's config. */
    rate: Type.Optional(
      Type.Object(
        { perSecond: Type.Number({ exclusiveMinimum: 0 }), burst: Type.Integer({ minimum: 1 }) },
        { additionalProperties: false },
      ),
    ),
    /** Operators: the largest amount one mint may create, in minor units. */
    mintMaxMinor: Type.Optional(Type.Integer({ minimum: 1 })),
  },
  { additionalProperties: false },
);
/** The whole file: `{clients: [...]}`. */
export const ClientsFileSchema = Type.Object(
  { clients: Type.Array(ClientSchema) },
  { additionalProperties: false },
);
export type ClientEntry = Static<typeof ClientSchema>;

/** The SHA-256 (hex) of a key, as the clients file stores it. */
export function hashKey(key: string): string {
  return createHash("sha256").update(key, "utf8").digest("hex");
}

/** A new random API key (`jm_` and 43 base64url characters) and its hash for the clients file. */
export function newApiKey(): { key: string; sha256: string } {
  const key = `jm_${randomBytes(32).toString("base64url")}`;
  return { key, sha256: hashKey(key) };
}

/**
 * Parses a clients document (`{clients: [...]}`).
 * @throws Error naming every bad field, and duplicate client ids or key hashes.
 */
export function parseClients(value: unknown): ClientEntry[] {
  const problems = [...Value.Errors(ClientsFileSchema, value)].map((e) => `${e.path || "/"} ${e.message}`);
  if (problems.length) throw new Error(`clients file: ${problems.slice(0, 10).join("; ")}`);
  const doc = value as Static<typeof ClientsFileSchema>;
  const ids = new Set<string>();
  const hashes = new Set<string>();
  for (const c of doc.clients) {
    if (ids.has(c.id)) throw new Error(`clients file: client ${c.id} appears twice`);
    ids.add(c.id);
    for (const k of c.keys) {
      if (hashes.has(k.sha256)) throw new Error(`clients file: a key of ${c.id} is another client's too`);
      if (k.notAfter !== undefined && !Number.isFinite(Date.parse(k.notAfter)))
        throw new Error(`clients file: key ${k.id} of ${c.id}: notAfter is not an ISO 8601 time`);
      hashes.add(k.sha256);
    }
    if (c.role === Roles.Customer) {
      if (c.mintMaxMinor !== undefined)
        throw new Error(`clients file: ${c.id} is a customer and cannot have mintMaxMinor`);
      // Only operators mint or see every account; customers own customer accounts.
      const bad = c.accounts.find((a) => !AccountPatterns.customer.test(a));
      if (bad !== undefined)
        throw new Error(
          `clients file: customer ${c.id} may own customer accounts only, not ${JSON.stringify(bad)}`,
        );
    } else if (c.mintMaxMinor === undefined) {
      throw new Error(`clients file: operator ${c.id} needs mintMaxMinor (the largest single mint)`);
    }
  }
  return doc.clients;
}

/** A clients document as the gateway reads it (GATEWAY_CLIENTS_FILE). */
export function renderClientsFile(clients: readonly ClientEntry[]): string {
  return `${JSON.stringify({ clients: parseClients({ clients }) }, null, 2)}\n`;
}
