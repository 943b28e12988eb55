import { randomBytes } from "node:crypto";
import { type Static, Type } from "@sinclair/typebox";

/**
 * The gateway's transfer-id secrets file (GATEWAY_ID_SECRETS_FILE): versioned HMAC secrets,
 * each used for Idempotency-Keys made at or after its `notBefore` (see the gateway's
 * transfers/transfer-ids.ts for the derivation and the rotation procedure).
 */
export const IdSecretsFileSchema = Type.Object(
  {
    versions: Type.Array(
      Type.Object(
        {
          version: Type.Integer({ minimum: 1 }),
          /** ISO 8601: keys made at or after this time use this version. */
          notBefore: Type.String({ minLength: 1 }),
          /** At least 32 bytes, base64. */
          secret: Type.String({ minLength: 44 }),
        },
        { additionalProperties: false },
      ),
      { minItems: 1 },
    ),
  },
  { additionalProperties: false },
);
export type IdSecretsFile = Static<typeof IdSecretsFileSchema>;

/** A new secret version (32 random bytes) for keys made from `notBefore` on. */
export function newIdSecretVersion(version: number, notBefore: Date): IdSecretsFile["versions"][number] {
  return { version, notBefore: notBefore.toISOString(), secret: randomBytes(32).toString("base64") };
}

/** The file's text. */
export function renderIdSecretsFile(doc: IdSecretsFile): string {
  return `${JSON.stringify(doc, null, 2)}\n`;
}
