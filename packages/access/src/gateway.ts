import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import {
  type ClientEntry,
  type IdSecretsFile,
  newApiKey,
  newIdSecretVersion,
  parseClients,
  type Role,
  renderClientsFile,
  renderIdSecretsFile,
} from "@jetmesh/contracts";
import { secretsFolder, writeSecretFile } from "./secret-files.ts";

/** File names inside the gateway's secrets folder. */
export const GatewayFiles = {
  /** GATEWAY_CLIENTS_FILE: clients, roles, accounts, key hashes. */
  clients: "clients.json",
  /** GATEWAY_ID_SECRETS_FILE: the versioned transfer-id secrets. */
  idSecrets: "id-secrets.json",
} as const;

/** Options of {@link addGatewayClient}. */
export interface AddGatewayClientOptions {
  /** The gateway's secrets folder (outside any git work tree). */
  readonly out: string;
  readonly id: string;
  /** Needed for a new client; an existing client keeps its own. */
  readonly role?: Role;
  readonly accounts?: readonly string[];
  readonly mintMaxMinor?: number;
  readonly rate?: { readonly perSecond: number; readonly burst: number };
  /**
   * For an existing client: its current keys stop working at this time (rotation: the new key
   * and the old ones are valid together until then).
   */
  readonly retireOthersAt?: Date;
}

/**
 * Adds a client to the gateway's clients file, or a new key to an existing client (rotation),
 * and returns the key: it is shown once and stored nowhere, only its SHA-256 is written.
 * @throws when the folder is inside a git work tree or the result would not parse.
 */
export function addGatewayClient(o: AddGatewayClientOptions): {
  key: string;
  file: string;
  created: boolean;
} {
  const dir = secretsFolder(o.out, "the gateway's clients");
  const file = join(dir, GatewayFiles.clients);
  const clients: ClientEntry[] = existsSync(file) ? parseClients(JSON.parse(readFileSync(file, "utf8"))) : [];
  const { key, sha256 } = newApiKey();
  const keyId = new Date().toISOString().slice(0, 19).replace(/[:T]/g, "-");
  const existing = clients.find((c) => c.id === o.id);
  if (existing) {
    const retire = o.retireOthersAt?.toISOString();
    existing.keys = [
      ...existing.keys.map((k) => (retire && !k.notAfter ? { ...k, notAfter: retire } : k)),
      { id: keyId, sha256 },
    ];
  } else {
    if (!o.role || !o.accounts?.length) throw new Error(`a new client needs a role and accounts (${o.id})`);
    clients.push({
      id: o.id,
      role: o.role,
      accounts: [...o.accounts],
      keys: [{ id: keyId, sha256 }],
      ...(o.mintMaxMinor !== undefined ? { mintMaxMinor: o.mintMaxMinor } : {}),
      ...(o.rate ? { rate: { ...o.rate } } : {}),
    });
  }
  writeSecretFile(file, renderClientsFile(clients));
  return { key, file, created: !existing };
}

/**
 * Adds a transfer-id secret version for keys made from `notBefore` on (default: now, for a
 * first secret; a rotation gives a time after every gateway has the new file).
 */
export function addIdSecret(o: { readonly out: string; readonly notBefore?: Date }): {
  file: string;
  version: number;
} {
  const dir = secretsFolder(o.out, "the gateway's id secrets");
  const file = join(dir, GatewayFiles.idSecrets);
  const doc: IdSecretsFile = existsSync(file)
    ? (JSON.parse(readFileSync(file, "utf8")) as IdSecretsFile)
    : { versions: [] };
  const version = Math.max(0, ...doc.versions.map((v) => v.version)) + 1;
  const notBefore = o.notBefore ?? new Date();
  const last = doc.versions.at(-1);
  if (last && Date.parse(last.notBefore) >= notBefore.getTime())
    throw new Error(`notBefore must be after version ${last.version}'s (${last.notBefore})`);
  doc.versions.push(newIdSecretVersion(version, notBefore));
  writeSecretFile(file, renderIdSecretsFile(doc));
  return { file, version };
}
