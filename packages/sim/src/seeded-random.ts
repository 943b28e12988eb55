import crypto from "node:crypto";
import { syncBuiltinESMExports } from "node:module";
import type { Prng } from "@jetmesh/testkit";

/**
 * Makes every source of randomness in this process draw from `prng`: `Math.random`,
 * `node:crypto`'s randomBytes, randomFillSync and randomUUID (its getRandomValues cannot be
 * replaced: nothing here calls it), and the web
 * `crypto.getRandomValues` / `randomUUID` (nats.js draws its inboxes and NUIDs there, the
 * runtime its attempt tokens, the contracts their UUIDv7 ids). With virtual time this makes
 * a world's run a function of its seed. Not for anything that needs real secrets.
 * @returns a function that puts the real sources back.
 */
export function installSeededRandom(prng: Prng): () => void {
  const fill = <T extends ArrayBufferView>(view: T): T => {
    const bytes = new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
    for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(prng.next() * 256);
    return view;
  };
  const uuid = (): `${string}-${string}-${string}-${string}-${string}` => {
    const b = fill(new Uint8Array(16));
    b[6] = ((b[6] as number) & 0x0f) | 0x40;
    b[8] = ((b[8] as number) & 0x3f) | 0x80;
    const h = Buffer.from(b).toString("hex");
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  };
  const web = globalThis.crypto;
  const saved = {
    random: Math.random,
    randomBytes: crypto.randomBytes,
    randomFillSync: crypto.randomFillSync,
    randomUUID: crypto.randomUUID,
  };
  Math.random = () => prng.next();
  const patched = crypto as unknown as Record<string, unknown>;
  // Some of these are getters on the module object: redefine them rather than assign.
  const set = (target: object, name: string, value: unknown) =>
    Object.defineProperty(target, name, { value, configurable: true, writable: true, enumerable: true });
  set(patched, "randomBytes", ((size: number, cb?: (err: Error | null, buf: Buffer) => void) => {
    const buf = fill(Buffer.alloc(size));
    if (cb) {
      queueMicrotask(() => cb(null, buf));
      return undefined;
    }
    return buf;
  }) as typeof crypto.randomBytes);
  set(patched, "randomFillSync", (buf: ArrayBufferView) => fill(buf));
  set(patched, "randomUUID", uuid);
  set(web, "getRandomValues", (view: ArrayBufferView) => fill(view));
  set(web, "randomUUID", uuid);
  syncBuiltinESMExports();
  return () => {
    Math.random = saved.random;
    set(patched, "randomBytes", saved.randomBytes);
    set(patched, "randomFillSync", saved.randomFillSync);
    set(patched, "randomUUID", saved.randomUUID);
    // The web ones were inherited from Crypto.prototype: drop the own properties again.
    delete (web as unknown as Record<string, unknown>).getRandomValues;
    delete (web as unknown as Record<string, unknown>).randomUUID;
    syncBuiltinESMExports();
  };
}
