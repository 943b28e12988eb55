import { readSecretFile } from "@jetmesh/stage";
import { type ClientEntry, hashKey, parseClients, type Role } from "@jetmesh/contracts";

/**
 * The gateway's authenticator over its clients file (format and key generation:
 * @jetmesh/access api-clients.ts): a client sends `Authorization: Bearer <key>`, the gateway
 * looks up the SHA-256 of the key. No key is ever logged or stored in clear.
 */

/** An authenticated caller. */
export interface Principal {
  readonly clientId: string;
  readonly role: Role;
  /** Accounts it may debit and read (every account when `allAccounts`). */
  readonly accounts: ReadonlySet<string>;
  readonly allAccounts: boolean;
  readonly rate?: { readonly perSecond: number; readonly burst: number };
  readonly mintMaxMinor?: number;
}

/** The result of reading an Authorization header. */
export type Authentication =
  | { readonly ok: true; readonly principal: Principal }
  | { readonly ok: false; readonly reason: "missing" | "malformed" | "unknown" | "expired" };

/** Authenticates requests. One small interface: API keys today, a JWT verifier could be another. */
export interface Authenticator {
  authenticate(authorization: string | undefined, nowMs?: number): Authentication;
  /** Is `account` one `p` may debit and read? */
  owns(p: Principal, account: string): boolean;
}

/** Reads a clients file (a secret: refused when readable by others). */
export function loadClientsFile(path: string): ClientEntry[] {
  return parseClients(JSON.parse(readSecretFile(path, "GATEWAY_CLIENTS_FILE")));
}

const BEARER = /^Bearer ([A-Za-z0-9._~+/=-]{16,256})$/;

class ApiKeyAuthenticator implements Authenticator {
  readonly #byHash = new Map<string, { principal: Principal; notAfterMs: number }>();

  constructor(clients: readonly ClientEntry[]) {
    for (const c of clients) {
      const principal: Principal = {
        clientId: c.id,
        role: c.role,
        accounts: new Set(c.accounts.filter((a) => a !== "*")),
        allAccounts: c.accounts.includes("*"),
        ...(c.rate ? { rate: c.rate } : {}),
        ...(c.mintMaxMinor !== undefined ? { mintMaxMinor: c.mintMaxMinor } : {}),
      };
      for (const k of c.keys) {
        this.#byHash.set(k.sha256, {
          principal,
          notAfterMs: k.notAfter ? Date.parse(k.notAfter) : Number.POSITIVE_INFINITY,
        });
      }
    }
  }

  authenticate(authorization: string | undefined, nowMs = Date.now()): Authentication {
    if (!authorization) return { ok: false, reason: "missing" };
    const m = BEARER.exec(authorization);
    if (!m) return { ok: false, reason: "malformed" };
    const entry = this.#byHash.get(hashKey(m[1] as string));
    if (!entry) return { ok: false, reason: "unknown" };
    if (nowMs > entry.notAfterMs) return { ok: false, reason: "expired" };
    return { ok: true, principal: entry.principal };
  }

  owns(p: Principal, account: string): boolean {
    return p.allAccounts || p.accounts.has(account);
  }
}

/** The API-key authenticator over a parsed clients list. */
export function createApiKeyAuthenticator(clients: readonly ClientEntry[]): Authenticator {
  return new ApiKeyAuthenticator(clients);
}
