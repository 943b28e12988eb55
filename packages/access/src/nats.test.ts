import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { Streams, TeamStreams } from "@jetmesh/contracts";
import { afterAll, describe, expect, it } from "vitest";
import { readManifests, type ServiceManifest } from "./manifests.ts";
import { natsAccess, SERVICE_DENIED_API, type UserAccess } from "./nats-permissions.ts";
import { renderAuthConfig, renderRoutesConfig } from "./nats-config.ts";
import { writeNatsAccess } from "./nats-files.ts";

const services = readManifests(join(dirname(fileURLToPath(import.meta.url)), "../../../services"));
const access = natsAccess({ services });
const user = (name: string): UserAccess => {
  const u = access.users.find((x) => x.name === name);
  if (!u) throw new Error(`no user ${name}`);
  return u;
};
const pub = (name: string) => user(name).permissions?.publish.allow ?? [];
const sub = (name: string) => user(name).permissions?.subscribe.allow ?? [];
const serviceUsers = access.users.filter((u) => u.kind === "service");
/** Subjects outside JetStream's own: the events and DLQ subjects a user may publish. */
const eventSubjects = (name: string) => pub(name).filter((s) => !s.startsWith("$"));

const dirs: string[] = [];
const tempDir = () => {
  const d = mkdtempSync(join(tmpdir(), "jetmesh-access-unit-"));
  dirs.push(d);
  return d;
};
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe("access", () => {
  it("access - one user per service that speaks NATS, plus ops, deploy and sys", () => {
    // the teams' stages (the owners of the contracts' TeamStreams) are services like the others
    const teams = Object.values(TeamStreams as Record<string, { owner: string }>).map((t) => t.owner);
    expect(access.users.map((u) => u.name)).toEqual([
      ...["gateway", "ledger", "payout", "reconciler", "risk", "validator", ...teams].sort(),
      "ops",
      "deploy",
      "sys",
    ]);
    expect(access.users.find((u) => u.name === "bank-sim")).toBeUndefined();
  });

  it("access - a service publishes only its own output subjects and its own DLQ subject", () => {
    expect(eventSubjects("gateway")).toEqual(["transfers.requested.*", "dlq.gateway-status"]);
    expect(eventSubjects("validator")).toEqual([
      "transfers.validated.*",
      "transfers.rejected.*",
      "dlq.validator",
    ]);
    expect(eventSubjects("risk")).toEqual(["transfers.scored.*", "dlq.risk"]);
    expect(eventSubjects("ledger")).toEqual([
      "ledger.posted.*",
      "ledger.declined.*",
      "ledger.reversed.*",
      "dlq.ledger",
    ]);
    expect(eventSubjects("payout")).toEqual(["payouts.completed.*", "payouts.failed.*", "dlq.payout"]);
    // the reconciler writes findings on RECONCILE's own subjects, and no event
    expect(eventSubjects("reconciler")).toEqual(["reconcile.>"]);
    // Every event subject has exactly one publisher: the stream's owner in the contracts (the
    // DLQ and AUDIT carry no event types: stages park, operators audit).
    for (const def of Object.values(Streams).filter((d) => d.eventTypes.length > 0)) {
      for (const subject of def.subjects.filter((s) => !s.startsWith("dlq."))) {
        const publishers = serviceUsers.filter((u) => pub(u.name).includes(subject)).map((u) => u.name);
        expect(publishers, subject).toEqual([def.owner]);
      }
    }
  });

  it("access - no service subscribes to events; each reads its own consumers and its own inbox", () => {
    for (const u of serviceUsers) {
      for (const s of sub(u.name))
        expect(s, `${u.name} subscribes to ${s}`).toMatch(
          new RegExp(
            `^(_INBOX_${u.name}(-[a-z]+)?\\.>|\\$JS\\.EVENT\\.ADVISORY\\.CONSUMER\\.MAX_DELIVERIES\\.[A-Z]+\\.[a-z-]+)$`,
          ),
        );
      for (const s of pub(u.name)) {
        expect(s, `${u.name} may publish ${s}`).not.toMatch(/^(>|\*\.\*\.\*|\$JS\.API\.>)$/);
        const pull = /^\$JS\.API\.CONSUMER\.MSG\.NEXT\.([A-Z_]+)\.(.+)$/.exec(s);
        const own = u.name === "gateway" ? "gateway-status" : u.name;
        if (pull && pull[2] !== "*") expect([own, `${own}-replay`]).toContain(pull[2]);
      }
    }
    expect(sub("ledger")).toContain("_INBOX_ledger-rebuild.>");
  });

  it("access - every service user is denied deleting, purging and reconfiguring streams", () => {
    for (const u of serviceUsers) {
      expect(u.permissions?.publish.deny).toEqual(expect.arrayContaining([...SERVICE_DENIED_API]));
      expect(pub(u.name).some((s) => /STREAM\.(DELETE|PURGE|UPDATE)/.test(s))).toBe(false);
    }
    // The ledger names its ordered consumers on LEDGER freely, but never the payout's durable.
    expect(user("ledger").permissions?.publish.deny).toEqual(
      expect.arrayContaining([
        "$JS.API.CONSUMER.MSG.NEXT.LEDGER.payout",
        "$JS.API.CONSUMER.DELETE.LEDGER.payout",
        "$JS.API.CONSUMER.CREATE.LEDGER.gateway-status",
      ]),
    );
  });

  it("access - LEDGER is created by the deploy step only; ops may never delete or purge it, nor the AUDIT trail", () => {
    for (const u of serviceUsers) expect(pub(u.name)).not.toContain("$JS.API.STREAM.CREATE.LEDGER");
    expect(pub("deploy")).toContain("$JS.API.STREAM.CREATE.LEDGER");
    expect(user("ops").permissions?.publish.deny).toEqual([
      "$JS.API.STREAM.DELETE.LEDGER",
      "$JS.API.STREAM.PURGE.LEDGER",
      "$JS.API.STREAM.MSG.DELETE.LEDGER",
      "$JS.API.STREAM.DELETE.AUDIT",
      "$JS.API.STREAM.PURGE.AUDIT",
      "$JS.API.STREAM.MSG.DELETE.AUDIT",
    ]);
    // Ops publishes its own subjects only: replays and the audit trail, no event subject.
    expect(eventSubjects("ops")).toEqual(["replay.>", "audit.>"]);
    for (const def of Object.values(Streams).filter((d) => d.eventTypes.length > 0 || d.name === "DLQ"))
      for (const subject of def.subjects)
        expect(
          ["replay.>", "audit.>"].some((s) => s.split(".")[0] === subject.split(".")[0]),
          subject,
        ).toBe(false);
    expect(eventSubjects("deploy")).toEqual([]);
  });

  it("access - durable consumers are created with the runtime's filter, and only the stage's own", () => {
    expect(pub("risk")).toContain("$JS.API.CONSUMER.CREATE.VALIDATION.risk.transfers.validated.*");
    expect(pub("ledger")).toContain("$JS.API.CONSUMER.CREATE.PAYOUTS.ledger.payouts.failed.*");
    expect(pub("ledger")).toContain("$JS.API.CONSUMER.CREATE.RISK.ledger");
    expect(pub("gateway")).toContain("$JS.API.CONSUMER.CREATE.LEDGER.gateway-status");
    expect(pub("gateway")).toContain("$JS.API.CONSUMER.INFO.INGRESS.validator");
    expect(pub("payout")).toContain("$KV.payout-records.>");
    expect(pub("ledger")).toContain("$KV.ledger-snapshots.>");
    expect(pub("validator")).toContain("$KV.jetmesh-positions.INGRESS.validator");
    // Its own position records only: its input's and its replay durable's.
    expect(pub("validator").filter((s) => s.startsWith("$KV."))).toEqual([
      "$KV.jetmesh-positions.INGRESS.validator",
      "$KV.jetmesh-positions.REPLAY.validator-replay",
    ]);
  });

  it("access - a stage consumes its own replays on REPLAY (durable <stage>-replay, filter replay.<stage>) and no other's; only ops publishes replays", () => {
    const replayOf = (name: string) => pub(name).filter((s) => /REPLAY/.test(s));
    expect(replayOf("payout")).toEqual([
      "$JS.API.STREAM.INFO.REPLAY",
      "$JS.API.CONSUMER.INFO.REPLAY.payout-replay",
      "$JS.API.CONSUMER.CREATE.REPLAY.payout-replay.replay.payout",
      "$JS.API.CONSUMER.MSG.NEXT.REPLAY.payout-replay",
      "$JS.ACK.REPLAY.payout-replay.>",
      "$KV.jetmesh-positions.REPLAY.payout-replay",
      "$JS.API.DIRECT.GET.KV_jetmesh-positions.$KV.jetmesh-positions.REPLAY.payout-replay",
    ]);
    expect(pub("gateway")).toContain(
      "$JS.API.CONSUMER.CREATE.REPLAY.gateway-status-replay.replay.gateway-status",
    );
    for (const u of serviceUsers) {
      // Never REPLAY's creation, nor a publish to it, nor another stage's replay durable.
      expect(pub(u.name).filter((s) => /STREAM\.CREATE\.REPLAY|^replay\./.test(s))).toEqual([]);
      for (const s of replayOf(u.name).filter((x) => x.includes("-replay")))
        expect(s, `${u.name} may use ${s}`).toMatch(
          new RegExp(`\\.${u.name === "gateway" ? "gateway-status" : u.name}-replay(\\.|$)`),
        );
    }
    expect(pub("deploy")).toContain("$JS.API.STREAM.CREATE.REPLAY");
    // Ops reads and deletes DLQ entries (the API), and may delete REPLAY messages, not AUDIT's.
    expect(pub("ops")).toContain("$JS.API.>");
    expect(user("ops").permissions?.publish.deny.filter((s) => /DLQ|REPLAY/.test(s))).toEqual([]);
  });

  it("access - in a namespace every stream, subject and bucket of every rule is the namespace's, rule for rule", () => {
    const ns = natsAccess({ services, namespace: "alice" });
    const streamNames = new Set(Object.keys(Streams));
    const rules = (u: UserAccess) => [
      ...(u.permissions?.publish.allow ?? []),
      ...(u.permissions?.publish.deny ?? []),
      ...(u.permissions?.subscribe.allow ?? []),
    ];
    for (const u of ns.users) {
      const prod = access.users.find((x) => x.name === u.name) as UserAccess;
      // The same rules, each renamed: none added or lost.
      expect(rules(u).length, u.name).toBe(rules(prod).length);
      for (const rule of rules(u)) {
        const tokens = rule.split(".");
        // No production stream, KV stream or bucket is named…
        for (const t of tokens) {
          expect(streamNames.has(t), `${u.name}: ${rule}`).toBe(false);
          if (t.startsWith("KV_")) expect(t.startsWith("KV_alice_"), `${u.name}: ${rule}`).toBe(true);
        }
        if (tokens[0] === "$KV" && tokens[1] !== ">")
          expect(tokens[1]?.startsWith("alice_"), rule).toBe(true);
        // …and every event, DLQ, replay, audit and finding subject is under the namespace.
        if (!rule.startsWith("$") && !rule.startsWith("_INBOX"))
          expect(tokens[0], `${u.name}: ${rule}`).toBe("alice");
      }
    }
    const nsPub = (name: string) => ns.users.find((x) => x.name === name)?.permissions?.publish.allow ?? [];
    expect(nsPub("validator")).toEqual(
      expect.arrayContaining([
        "alice.transfers.validated.*",
        "alice.dlq.validator",
        "$JS.API.STREAM.INFO.alice_INGRESS",
        "$JS.API.CONSUMER.MSG.NEXT.alice_INGRESS.validator",
        "$KV.alice_jetmesh-positions.alice_INGRESS.validator",
      ]),
    );
    expect(nsPub("deploy")).toEqual(
      expect.arrayContaining([
        "$JS.API.STREAM.CREATE.alice_LEDGER",
        "$JS.API.STREAM.CREATE.KV_alice_ledger-snapshots",
      ]),
    );
  });

  it("access - without runtime creation only the deploy user creates streams", () => {
    const strict = natsAccess({ services, runtimeCreates: false });
    for (const u of strict.users.filter((x) => x.kind === "service"))
      expect(u.permissions?.publish.allow.filter((s) => s.includes("STREAM.CREATE"))).toEqual([]);
  });

  it("access - a manifest naming an unknown stream or type is refused, every problem at once", () => {
    const bad: ServiceManifest = {
      name: "rogue",
      inputs: [{ stream: "NOPE", durable: "rogue", types: ["x.y"] }],
      outputs: [{ stream: "RISK", types: ["ledger.posted"] }],
      dlq: "dlq.rogue",
    };
    expect(() => natsAccess({ services: [bad] })).toThrow(
      /unknown stream NOPE[\s\S]*RISK does not store ledger\.posted/,
    );
    expect(() => natsAccess({ services: [{ name: "ops", dlq: "dlq.ops" }] })).toThrow(/may not be named ops/);
  });

  it("access - the include quotes every subject and holds no secret and no anonymous user", () => {
    const keys = Object.fromEntries(
      access.users.map((u) => [u.name, `U${u.name.toUpperCase().padEnd(55, "A")}`]),
    );
    const text = renderAuthConfig(access, keys);
    const settings = text
      .split("\n")
      .filter((l) => !l.trim().startsWith("#"))
      .join("\n");
    expect(settings).not.toMatch(/no_auth_user|password|\bSU[A-Z0-9]{50,}/);
    // Outside a quoted string `$X` is a variable reference; every subject is quoted.
    for (const line of text.split("\n")) expect(line).not.toMatch(/^\s*\$/);
    expect(text).toContain('"$JS.API.STREAM.DELETE.>"');
    expect(text).toMatch(/system_account: SYS/);
    const routes = renderRoutesConfig({ user: "route", password: "p@ss", routes: ["nats-1:6222"] });
    expect(routes).toContain('"nats-route://route:p%40ss@nats-1:6222"');
  });

  it("access - seeds are written 0600, kept on regeneration, replaced on rotation, never into a repository", () => {
    const out = join(tempDir(), "nats");
    const first = writeNatsAccess({ out, access, routes: ["nats-1:6222", "nats-2:6222"] });
    expect(first.created).toHaveLength(access.users.length);
    for (const file of [...Object.values(first.seedFiles), first.routesFile as string])
      expect(statSync(file).mode & 0o777, file).toBe(0o600);
    expect(statSync(out).mode & 0o777).toBe(0o700);
    expect(readFileSync(first.seedFiles.gateway as string, "utf8")).toMatch(/^SU[A-Z0-9]+\n$/);
    expect(readFileSync(first.authFile, "utf8")).toContain(first.publicKeys.gateway);
    const routes = readFileSync(first.routesFile as string, "utf8");
    const again = writeNatsAccess({ out, access, routes: ["nats-1:6222", "nats-2:6222"] });
    expect(again.created).toEqual([]);
    expect(again.publicKeys).toEqual(first.publicKeys);
    expect(readFileSync(again.routesFile as string, "utf8")).toBe(routes);
    const rotated = writeNatsAccess({ out, access, rotate: true });
    expect(rotated.publicKeys.gateway).not.toBe(first.publicKeys.gateway);

    const repo = tempDir();
    mkdirSync(join(repo, ".git"));
    expect(() => writeNatsAccess({ out: join(repo, "secrets"), access })).toThrow(/inside the git work tree/);
  });
});
