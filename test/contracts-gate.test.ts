// The compatibility gate as CI runs it: `pnpm contracts:check` on this tree, and on fixture
// trees that break a rule or keep them all.
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import {
  artifactText,
  type JsonSchema,
  nextReleasedFile,
  renderSchemaArtifacts,
  type SchemaSet,
} from "@jetmesh/contracts/evolution";
import { type TSchema, Type } from "@sinclair/typebox";
import { afterAll, describe, expect, it } from "vitest";
import { runContractsCli } from "../scripts/contracts.ts";

const repo = resolve(import.meta.dirname, "..");
const scratch = mkdtempSync(join(tmpdir(), "jetmesh-contracts-"));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

async function run(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runContractsCli(argv, { out: (l) => out.push(l), err: (l) => err.push(l) });
  return { code, out: out.join("\n"), err: err.join("\n") };
}

const json = (s: TSchema): JsonSchema => JSON.parse(JSON.stringify(s)) as JsonSchema;
const paymentV1 = {
  paymentId: Type.String({ minLength: 1 }),
  amountMinor: Type.Integer(),
  channel: Type.Union([Type.Literal("card"), Type.Literal("sepa")]),
};
const closed = (props: Record<string, TSchema>) => json(Type.Object(props, { additionalProperties: false }));

/** A fixture tree: artifacts rendered from `current`, and `released` as the last release. */
function fixture(name: string, released: SchemaSet, current: SchemaSet): string {
  const dir = join(scratch, name);
  for (const [path, text] of renderSchemaArtifacts(current)) {
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    writeFileSync(join(dir, path), text);
  }
  writeFileSync(join(dir, "released.json"), artifactText({ release: "fixture-1", ...released }));
  return dir;
}
/** The gate on a fixture tree (`check --dir <fixture> --no-source`). */
const checkFixture = (name: string, released: SchemaSet, current: SchemaSet) =>
  run(["check", "--dir", fixture(name, released, current), "--no-source"]);
const oneType = (versions: Record<string, JsonSchema>, writes = 1): SchemaSet => ({
  types: { "payments.made": { mode: "full", writes, versions } },
});
const released = oneType({ "1": closed(paymentV1) });

describe("contracts gate", () => {
  it("contracts gate - this tree's artifacts are current and compatible with the last release", async () => {
    const r = await run(["check"]);
    expect(r.err).toBe("");
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^contracts: ok: 9 event types/);
  });

  it("contracts gate - a compatible new version passes", async () => {
    const dir = fixture(
      "compatible",
      released,
      oneType({ "1": closed(paymentV1), "2": closed({ ...paymentV1, memo: Type.Optional(Type.String()) }) }),
    );
    const r = await run(["check", "--dir", dir, "--no-source"]);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/compatible with release fixture-1/);
  });

  it("contracts gate - a breaking version fails naming the event, version, field and rule", async () => {
    const { channel: _dropped, ...rest } = paymentV1;
    const dir = fixture(
      "breaking",
      released,
      oneType({ "1": closed(paymentV1), "2": closed({ ...rest, payer: Type.String() }) }),
    );
    const r = await run(["check", "--dir", dir, "--no-source"]);
    expect(r.code).toBe(1);
    expect(r.err.split("\n")).toEqual([
      "contracts: incompatible: payments.made@2 /payer: backward: required field added (events written before lack it)",
      "contracts: incompatible: payments.made@2 /channel: forward: required field removed (readers of the previous version may rely on it)",
      "contracts: 2 rule(s) broken against release fixture-1",
    ]);
  });

  it("contracts gate - editing a released version or writing an unreleased one fails", async () => {
    const v2 = closed({ ...paymentV1, memo: Type.Optional(Type.String()) });
    const edited = await run([
      "check",
      "--dir",
      fixture("edited", released, oneType({ "1": v2 })),
      "--no-source",
    ]);
    expect(edited.code).toBe(1);
    expect(edited.err).toMatch(/payments\.made@1 \/memo: released version changed/);
    const early = await run([
      "check",
      "--dir",
      fixture("early", released, oneType({ "1": closed(paymentV1), "2": v2 }, 2)),
      "--no-source",
    ]);
    expect(early.code).toBe(1);
    expect(early.err).toMatch(/payments\.made@2 \/: producers write v2 before a release taught readers it/);
  });

  it("contracts gate - a released version is removed only after two releases shipped it deprecated", async () => {
    const v2 = closed({ ...paymentV1, memo: Type.Optional(Type.String()) });
    const both = { "1": closed(paymentV1), "2": v2 };
    const deprecating: SchemaSet = {
      types: {
        "payments.made": { mode: "full", writes: 2, owner: "payments", versions: both, deprecated: [1] },
      },
    };
    const withoutV1: SchemaSet = {
      types: { "payments.made": { mode: "full", writes: 2, owner: "payments", versions: { "2": v2 } } },
    };
    const r1 = nextReleasedFile("r1", {
      types: { "payments.made": { ...deprecating.types["payments.made"]!, deprecated: [] } },
    });
    const r2 = nextReleasedFile("r2", deprecating, r1);
    const early = await run(["check", "--dir", fixture("deprecated-once", r2, withoutV1), "--no-source"]);
    expect(early.code).toBe(1);
    expect(early.err).toMatch(
      /payments\.made@1 \/: released version removed: deprecated in release r2, released deprecated 1 time\(s\); the policy asks 2/,
    );
    const r3 = nextReleasedFile("r3", deprecating, r2);
    const done = await run(["check", "--dir", fixture("deprecated-twice", r3, withoutV1), "--no-source"]);
    expect(done.err).toBe("");
    expect(done.code).toBe(0);
    expect(done.out).toMatch(/compatible with release r3/);
  });

  it("contracts gate - a released event type is removed only after two releases shipped it deprecated", async () => {
    const v1 = closed(paymentV1);
    const kept = { mode: "full" as const, writes: 1, owner: "payments", versions: { "1": v1 } };
    const both = (payments: typeof kept & { typeDeprecated?: boolean }): SchemaSet => ({
      types: { "payments.made": payments, "refunds.made": { ...kept, owner: "refunds" } },
    });
    const withoutPayments: SchemaSet = { types: { "refunds.made": { ...kept, owner: "refunds" } } };
    const r1 = nextReleasedFile("r1", both(kept));
    const never = await checkFixture("type-never-deprecated", r1, withoutPayments);
    expect(never.code).toBe(1);
    expect(never.err.split("\n")).toEqual([
      "contracts: incompatible: payments.made@1 /: released event type removed: old events must stay readable; mark it deprecated (EventContracts.typeDeprecated) and release it that way 2 times first",
      "contracts: 1 rule(s) broken against release r1",
    ]);
    const r2 = nextReleasedFile("r2", both({ ...kept, typeDeprecated: true }), r1);
    const early = await checkFixture("type-deprecated-once", r2, withoutPayments);
    expect(early.code).toBe(1);
    expect(early.err).toMatch(
      /payments\.made@1 \/: released event type removed: deprecated in release r2, released deprecated 1 time\(s\); the policy asks 2/,
    );
    const r3 = nextReleasedFile("r3", both({ ...kept, typeDeprecated: true }), r2);
    const done = await checkFixture("type-deprecated-twice", r3, withoutPayments);
    expect(done.err).toBe("");
    expect(done.code).toBe(0);
    expect(done.out).toMatch(/compatible with release r3/);
  });

  it("contracts gate - stale artifacts fail with the file named; unreadable input and bad usage exit 2", async () => {
    const stale = fixture("stale", released, released);
    const r = await run(["check", "--dir", stale]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/stale artifact: transfers\.requested\/v1\.json is missing/);
    expect(r.err).toMatch(/payments\.made\/v1\.json is not generated by the source/);
    expect((await run(["check", "--dir", join(scratch, "nowhere"), "--no-source"])).code).toBe(2);
    expect((await run(["check", "--bogus"])).code).toBe(2);
  });

  it("contracts gate - `pnpm contracts:check` exits with the gate's code", () => {
    const dir = fixture(
      "cli",
      released,
      oneType({ "1": closed(paymentV1), "2": closed({ ...paymentV1, amountMinor: Type.String() }) }),
    );
    const r = spawnSync(
      process.execPath,
      ["--import", "tsx", "scripts/contracts.ts", "check", "--dir", dir, "--no-source"],
      { cwd: repo, encoding: "utf8" },
    );
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(
      /payments\.made@2 \/amountMinor: backward: type changed from "integer" to "string"/,
    );
  });
});
