import { createHmac } from "node:crypto";
import { type IdSecretsFile, IdSecretsFileSchema, uuidShaped } from "@jetmesh/contracts";
import { readSecretFile } from "@jetmesh/stage";
import { Value } from "@sinclair/typebox/value";

/**
 * Transfer ids that nobody can derive from an Idempotency-Key without the gateway's secret.
 *
 * An id is an HMAC-SHA256, under a secret version, of (version, client, key), shaped as a
 * UUID. Which version signs a key is decided by the key's own time (a UUIDv7 carries it):
 * the newest version whose `notBefore` is not after that time. So adding a version never
 * changes the id of a key made before its `notBefore`: a key in flight during a rotation or a
 * deploy keeps its transfer id, and its retry is the same transfer. Rotation:
 * 1. add version N+1 with `notBefore` in the future (after every gateway has the file);
 * 2. keep version N at least the idempotency horizon after N+1's `notBefore` (a key older
 *    than the horizon is refused anyway), then remove it.
 */

interface SecretVersion {
  readonly version: number;
  readonly notBeforeMs: number;
  readonly secret: Buffer;
}

/** Derives the ids of a client's request. */
export interface TransferIds {
  /**
   * The transfer id of `clientId`'s request with `key`, made at `keyTimeMs` (the key's UUIDv7
   * time, or for an untimed key the time its record was first claimed).
   */
  transferId(clientId: string, key: string, keyTimeMs: number): string;
  /** The version that signs a key made at `keyTimeMs`. */
  versionAt(keyTimeMs: number): number;
}

/**
 * Parses a secrets document (`{versions: [{version, notBefore, secret}]}`).
 * @throws Error naming what is wrong (no secret is ever part of the message).
 */
export function parseIdSecrets(value: unknown): TransferIds {
  const problems = [...Value.Errors(IdSecretsFileSchema, value)].map((e) => `${e.path || "/"} ${e.message}`);
  if (problems.length) throw new Error(`id secrets file: ${problems.slice(0, 10).join("; ")}`);
  const doc = value as IdSecretsFile;
  const versions: SecretVersion[] = doc.versions.map((v) => {
    const notBeforeMs = Date.parse(v.notBefore);
    if (!Number.isFinite(notBeforeMs))
      throw new Error(`id secrets file: version ${v.version} notBefore is not an ISO 8601 time`);
    const secret = Buffer.from(v.secret, "base64");
    if (secret.length < 32)
      throw new Error(`id secrets file: version ${v.version} secret must be at least 32 bytes`);
    return { version: v.version, notBeforeMs, secret };
  });
  versions.sort((a, b) => a.notBeforeMs - b.notBeforeMs);
  for (let i = 1; i < versions.length; i++) {
    const prev = versions[i - 1] as SecretVersion;
    const cur = versions[i] as SecretVersion;
    if (cur.version <= prev.version)
      throw new Error(
        `id secrets file: versions must increase with notBefore (${prev.version} then ${cur.version})`,
      );
    if (cur.notBeforeMs === prev.notBeforeMs)
      throw new Error(`id secrets file: versions ${prev.version} and ${cur.version} share a notBefore`);
  }
  return createTransferIds(versions);
}

/** Reads the id secrets file (a secret: refused when readable by others). */
export function loadIdSecretsFile(path: string): TransferIds {
  return parseIdSecrets(JSON.parse(readSecretFile(path, "GATEWAY_ID_SECRETS_FILE")));
}

function createTransferIds(versions: readonly SecretVersion[]): TransferIds {
  const at = (keyTimeMs: number): SecretVersion => {
    // Keys older than the oldest version's notBefore use the oldest: it signed them.
    let chosen = versions[0] as SecretVersion;
    for (const v of versions) if (v.notBeforeMs <= keyTimeMs) chosen = v;
    return chosen;
  };
  return {
    versionAt: (keyTimeMs) => at(keyTimeMs).version,
    transferId(clientId, key, keyTimeMs) {
      const v = at(keyTimeMs);
      const h = createHmac("sha256", v.secret)
        .update(`jetmesh-transfer\u001f${v.version}\u001f${clientId}\u001f${key}`)
        .digest("hex");
      return uuidShaped(h);
    },
  };
}
