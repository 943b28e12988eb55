import { mkdtempSync, readFileSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { hashKey, parseClients } from "@jetmesh/contracts";
import { describe, expect, it } from "vitest";
import { addGatewayClient, addIdSecret } from "./gateway.ts";

describe("gateway secrets", () => {
  it("access - a client is added with the hash of a key shown once; a rotation adds a key and retires the others", () => {
    const out = join(mkdtempSync(join(tmpdir(), "jetmesh-access-gw-")), "gateway");
    const first = addGatewayClient({ out, id: "acme", role: "customer", accounts: ["acc-1"] });
    expect(first.created).toBe(true);
    expect(first.key).toMatch(/^jm_[A-Za-z0-9_-]{43}$/);
    expect(statSync(first.file).mode & 0o777).toBe(0o600);
    expect(readFileSync(first.file, "utf8")).not.toContain(first.key);
    const retireAt = new Date("2027-01-01T00:00:00Z");
    const second = addGatewayClient({ out, id: "acme", retireOthersAt: retireAt });
    expect(second.created).toBe(false);
    const [acme] = parseClients(JSON.parse(readFileSync(first.file, "utf8")));
    expect(acme?.keys.map((k) => [k.sha256, k.notAfter])).toEqual([
      [hashKey(first.key), retireAt.toISOString()],
      [hashKey(second.key), undefined],
    ]);
    expect(() => addGatewayClient({ out, id: "newbie" })).toThrow(/needs a role and accounts/);
    expect(() => addGatewayClient({ out, id: "sneaky", role: "customer", accounts: ["external"] })).toThrow(
      /customer accounts only/,
    );
  });

  it("access - id secret versions increase with their notBefore", () => {
    const out = mkdtempSync(join(tmpdir(), "jetmesh-access-ids-"));
    expect(addIdSecret({ out, notBefore: new Date("2026-01-01T00:00:00Z") }).version).toBe(1);
    expect(addIdSecret({ out, notBefore: new Date("2026-12-01T00:00:00Z") }).version).toBe(2);
    expect(() => addIdSecret({ out, notBefore: new Date("2026-06-01T00:00:00Z") })).toThrow(
      /after version 2/,
    );
    const doc = JSON.parse(readFileSync(join(out, "id-secrets.json"), "utf8")) as {
      versions: { secret: string }[];
    };
    expect(new Set(doc.versions.map((v) => v.secret)).size).toBe(2);
  });
});
