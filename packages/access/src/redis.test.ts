// The Redis access generator's files: modes, what the ACL holds (hashes, never passwords),
// keeping and rotating passwords. Against a real redis-server: test/redis-access.test.ts.
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { redisAccess } from "./redis.ts";
import { sentinelUsers } from "./redis-sentinel.ts";
import {
  aclLine,
  formatRedisUsersTable,
  passwordHash,
  REDIS_USERS,
  redisUsers,
  renderAclFile,
} from "./redis-acl.ts";

let out: string;
beforeEach(async () => {
  out = await mkdtemp(join(tmpdir(), "jetmesh-redis-access-"));
});
afterEach(() => rm(out, { recursive: true, force: true }));

const modeOf = async (path: string) => (await stat(path)).mode & 0o777;
const passwordOf = async (file: string) => (await readFile(file, "utf8")).trim();

describe("redis access files", () => {
  it("access - one 0600 password file per user; the ACL holds their SHA-256 and no password", async () => {
    const access = await redisAccess({ out: join(out, "redis") });
    expect(await modeOf(join(out, "redis"))).toBe(0o700);
    const acl = await readFile(access.aclFile, "utf8");
    expect(Object.keys(access.passwordFiles)).toEqual(REDIS_USERS.map((u) => u.user));
    for (const [user, file] of Object.entries(access.passwordFiles)) {
      expect(await modeOf(file)).toBe(0o600);
      const password = await passwordOf(file);
      expect(password).toMatch(/^[A-Za-z0-9_-]{43}$/);
      expect(acl).not.toContain(password);
      expect(acl).toContain(`user ${user} reset on ${passwordHash(password)} `);
    }
    expect(acl.split("\n")[0]).toBe("user default reset off resetchannels -@all");
    expect(await modeOf(access.replicaAuthFile)).toBe(0o600);
    const replicaAuth = await readFile(access.replicaAuthFile, "utf8");
    expect(replicaAuth).toContain("masteruser replica\n");
    expect(replicaAuth).toContain(`masterauth ${await passwordOf(access.passwordFiles.replica!)}\n`);
    expect(access.created).toEqual(REDIS_USERS.map((u) => u.user));
  });

  it("access - the sentinels' include: their users with the servers' password hashes, and the sentinel user's credentials for servers and peers", async () => {
    const access = await redisAccess({ out, sentinelGroup: "pair-a" });
    expect(await modeOf(access.sentinelAuthFile)).toBe(0o600);
    const text = await readFile(access.sentinelAuthFile, "utf8");
    const lines = text.split("\n").filter((l) => l && !l.startsWith("#"));
    const sentinelPassword = await passwordOf(access.passwordFiles.sentinel!);
    expect(lines.slice(-4)).toEqual([
      "sentinel auth-user pair-a sentinel",
      `sentinel auth-pass pair-a ${sentinelPassword}`,
      "sentinel sentinel-user sentinel",
      `sentinel sentinel-pass ${sentinelPassword}`,
    ]);
    expect(lines[0]).toBe("user default reset off resetchannels -@all");
    // every user but the replica's, each logging in with its own password; no other password in the clear
    const users = lines.filter((l) => l.startsWith("user ")).map((l) => l.split(" ")[1]);
    expect(users).toEqual(["default", ...REDIS_USERS.map((u) => u.user).filter((u) => u !== "replica")]);
    for (const [user, file] of Object.entries(access.passwordFiles)) {
      const password = await passwordOf(file);
      if (user !== "replica") expect(text).toContain(`user ${user} reset on ${passwordHash(password)} `);
      if (user !== "sentinel") expect(text).not.toContain(password);
    }
    await expect(redisAccess({ out, sentinelGroup: "a b" })).rejects.toThrow(/sentinel group/);
  });

  it("access - on the sentinels a service may find the primary and hear of a failover, nothing else; the sentinel user talks to its peers", () => {
    const users = sentinelUsers(REDIS_USERS);
    const of = (u: string) => users.find((g) => g.user === u)!;
    for (const u of ["validator", "gateway", "ops"]) {
      expect(of(u).commands).toEqual([
        "+ping",
        "+sentinel|get-master-addr-by-name",
        "+sentinel|sentinels",
        "+subscribe",
      ]);
      expect(of(u).channels).toEqual(["+switch-master"]);
    }
    expect(of("sentinel").commands).toContain("+sentinel|is-master-down-by-addr");
    expect(of("sentinel").channels).toEqual(["__sentinel__:hello"]);
    expect(of("admin").allChannels).toBe(true);
    expect(users.find((g) => g.user === "replica")).toBeUndefined();
    // on the servers the sentinel user has no key and no channel but its hello
    const onServers = REDIS_USERS.find((u) => u.user === "sentinel")!;
    expect(onServers.keys).toEqual([]);
    expect(onServers.readKeys).toEqual([]);
    expect(aclLine(onServers, "pw")).toContain(" resetchannels &__sentinel__:hello -@all +ping ");
  });

  it("access - a second run keeps every password (and narrows a widened file); rotate changes them all", async () => {
    const first = await redisAccess({ out });
    const before = await passwordOf(first.passwordFiles.gateway!);
    await writeFile(first.passwordFiles.gateway!, `${before}\n`, { mode: 0o644 });
    const again = await redisAccess({ out });
    expect(again.created).toEqual([]);
    expect(await passwordOf(again.passwordFiles.gateway!)).toBe(before);
    expect(await modeOf(again.passwordFiles.gateway!)).toBe(0o600);
    const rotated = await redisAccess({ out, rotate: true });
    expect(rotated.created).toHaveLength(REDIS_USERS.length);
    expect(await passwordOf(rotated.passwordFiles.gateway!)).not.toBe(before);
  });

  it("access - a user's line: reset, password hash, channels, keys, read-only keys, then -@all and its commands", () => {
    const line = aclLine(
      { user: "x", purpose: "", keys: ["x:*"], readKeys: ["ledger:bal:*"], commands: ["+get"] },
      "pw",
    );
    expect(line).toBe(`user x reset on ${passwordHash("pw")} resetchannels ~x:* %R~ledger:bal:* -@all +get`);
    expect(passwordHash("pw")).toBe("#30c952fab122c3f9759f02a6d95c3758b246b4fee239957b2d4fee46e26170c4");
    const table = formatRedisUsersTable();
    for (const u of ["default", ...REDIS_USERS.map((g) => g.user)]) expect(table).toContain(`\n| ${u} |`);
    expect(table).toContain("| `ledger:bal:*` |");
  });

  it("access - a stage of the catalog with no written-out grant gets a user of its own: its idempotency keys only", () => {
    const users = redisUsers(["gateway", "validator", "risk", "ledger", "payout", "notifier"]);
    const notifier = users.find((u) => u.user === "notifier")!;
    expect(notifier.keys).toEqual(["notifier:*"]);
    expect(notifier.readKeys).toEqual([]);
    expect(notifier.commands).toEqual(REDIS_USERS.find((u) => u.user === "validator")!.commands);
    // the written-out grants stand, each user once, the tools' users last
    expect(users.filter((u) => u.user !== "notifier")).toEqual(REDIS_USERS);
    expect(users.map((u) => u.user).slice(-4)).toEqual(["ops", "replica", "sentinel", "admin"]);
    expect(redisUsers(["validator", "risk"])).toEqual(REDIS_USERS);
  });

  it("access - in a namespace every user's key patterns carry its Redis prefix, commands unchanged", () => {
    const prod = redisUsers(["validator", "notifier"]);
    const ns = redisUsers(["validator", "notifier"], "alice");
    expect(ns.map((u) => u.user)).toEqual(prod.map((u) => u.user));
    for (const [i, u] of ns.entries()) {
      const p = prod[i]!;
      expect(u.keys).toEqual(p.keys.map((k) => `alice:${k}`));
      expect(u.readKeys).toEqual(p.readKeys.map((k) => `alice:${k}`));
      expect(u.commands).toEqual(p.commands);
    }
    expect(ns.find((u) => u.user === "validator")!.keys).toEqual(["alice:validator:*"]);
  });

  it("access - refuses a grant without a password, a second grant of one user, and a default user", () => {
    const g = { user: "a", purpose: "", keys: [], readKeys: [], commands: [] };
    expect(() => renderAclFile([g], new Map())).toThrow(/no password/);
    expect(() => renderAclFile([g, g], new Map([["a", "p"]]))).toThrow(/twice/);
    expect(() => renderAclFile([{ ...g, user: "default" }], new Map([["default", "p"]]))).toThrow(/off/);
  });
});
