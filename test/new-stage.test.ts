// `pnpm new:stage`, as a team runs it, in a scratch copy of this repository (the checkout is
// never written; the copy is removed after, failed or not): its refusals, then the tutorial's
// notifier of large postings (`--consumes ledger.posted --emits notifications.large-posting`)
// with its contract entry, which touches nothing outside its folder but that entry, and what
// `pnpm gen:deploy` writes from the entry and the manifest (and the lockfile). The
// stage builds, passes its tests and the stage contract suite, type-checks with the repository,
// keeps the catalog and deploy checks green, and as a real process against a real nats-server
// and redis-server consumes a posting and emits its notification.
import { type SpawnSyncReturns, spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import {
  type AnyEnvelope,
  encodeEvent,
  EventTypes,
  eventHeaders,
  Headers,
  makeEnvelope,
  outputEventId,
  subjectFor,
} from "@jetmesh/contracts";
import { createLogger } from "@jetmesh/stage";
import { provisionStreams } from "@jetmesh/stage/internal";
import {
  freePort,
  httpGet,
  type NatsServerHandle,
  type RedisServerHandle,
  spawnProcess,
  startNats,
  startRedis,
  stopAllProcesses,
  waitFor,
} from "@jetmesh/testkit";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect, headers, type NatsConnection } from "@nats-io/transport-node";
import { unpack } from "msgpackr";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { handWritten } from "../scripts/deploy-services.ts";

const repo = join(import.meta.dirname, "..");
/** What a checkout has that is not its source: installed, built or reported. */
const SKIP = new Set(["node_modules", "dist", "reports", ".git"]);
const skipped = (path: string) => path.split("/").some((p) => SKIP.has(p) || /^dist\..*\.tmp$/.test(p));

let scratch: string;

/** Files below `dir` (source only), relative to it. */
function files(dir: string, under = ""): string[] {
  return readdirSync(join(dir, under)).flatMap((name) => {
    const rel = under ? `${under}/${name}` : name;
    if (skipped(rel)) return [];
    return statSync(join(dir, rel)).isDirectory() ? files(dir, rel) : [rel];
  });
}

/** Runs a command in the scratch copy; its output and exit code. */
function inScratch(command: string, args: string[], timeout = 240_000): SpawnSyncReturns<string> {
  return spawnSync(command, args, {
    cwd: scratch,
    encoding: "utf8",
    timeout,
    env: { ...process.env, FORCE_COLOR: "0", NO_COLOR: "1" },
  });
}
const newStage = (...args: string[]) =>
  inScratch("node", ["--import", "tsx", "packages/new-stage/src/cli.ts", ...args]);
const ok = (r: SpawnSyncReturns<string>) => {
  expect(r.status, `${r.stdout}\n${r.stderr}`).toBe(0);
  return r;
};

beforeAll(() => {
  scratch = mkdtempSync(join(tmpdir(), "jetmesh-new-stage-"));
  cpSync(repo, scratch, { recursive: true, filter: (src) => !skipped(relative(repo, src)) });
  // the copy's own dependencies, linked from the store as they are here (no network)
  ok(inScratch("pnpm", ["install", "--offline"]));
}, 240_000);

afterAll(async () => {
  await stopAllProcesses();
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

describe("new:stage", () => {
  it("new:stage - refuses a bad or taken name, an unknown consumed event, a malformed or foreign emitted one, with exit 2 and nothing written", () => {
    const before = files(scratch);
    const cases: [string[], RegExp][] = [
      [
        ["Notifier", "--consumes", "ledger.posted", "--emits", "notifications.x"],
        /name "Notifier": must be lower-case/,
      ],
      [
        ["9lives", "--consumes", "ledger.posted", "--emits", "notifications.x"],
        /name "9lives": must be lower-case/,
      ],
      [["payout", "--consumes", "ledger.posted", "--emits", "notifications.x"], /name "payout" is taken/],
      [["ops", "--consumes", "ledger.posted", "--emits", "notifications.x"], /name "ops" is reserved/],
      [
        ["notifier", "--consumes", "ledger.postd", "--emits", "notifications.x"],
        /--consumes ledger.postd: not an event type .*known: transfers.requested/,
      ],
      [
        ["notifier", "--consumes", "ledger.posted", "--emits", "Notifications"],
        /--emits Notifications: an event type is <domain>.<event>/,
      ],
      [
        ["notifier", "--consumes", "ledger.posted", "--emits", "ledger.posted"],
        /does not emit what it consumes/,
      ],
      [
        ["notifier", "--consumes", "ledger.posted", "--emits", "payouts.completed"],
        /stream PAYOUTS, which is payout's/,
      ],
      [
        ["notifier", "--consumes", "ledger.posted", "--emits", "ledger.noticed"],
        /stream LEDGER, which is ledger's/,
      ],
      [["notifier", "--consumes", "ledger.posted"], /required option '--emits <event>'/],
    ];
    for (const [args, message] of cases) {
      const r = newStage(...args);
      expect(r.status, args.join(" ")).toBe(2);
      expect(r.stderr, args.join(" ")).toMatch(message);
    }
    expect(files(scratch)).toEqual(before);
  }, 120_000);

  it("new:stage - without the contract entry it says exactly which one to add, and writes nothing", () => {
    const before = files(scratch);
    const r = newStage("notifier", "--consumes", "ledger.posted", "--emits", "notifications.large-posting");
    expect(r.status).toBe(2);
    expect(r.stderr).toContain(
      "notifications.large-posting is not in @jetmesh/contracts, nor is its stream NOTIFICATIONS",
    );
    expect(r.stderr).toContain("Add this one entry to packages/contracts/src/team-streams.ts");
    expect(r.stderr).toContain('  NOTIFICATIONS: {\n    owner: "notifier",');
    expect(r.stderr).toContain('events: { "notifications.large-posting": transferEvent({}) },');
    expect(r.stderr).toContain("--add-contract");
    expect(files(scratch)).toEqual(before);
  });

  it("new:stage - the notifier is scaffolded, writing outside its folder only its contract entry; gen:deploy writes the rest from the entry and the manifest, and install the lockfile", () => {
    const before = new Map(files(scratch).map((f) => [f, readFileSync(join(scratch, f), "utf8")]));
    const r = ok(
      newStage(
        "notifier",
        "--consumes",
        "ledger.posted",
        "--emits",
        "notifications.large-posting",
        "--add-contract",
      ),
    );
    expect(r.stdout).toContain("wrote services/notifier/ (7 files, HTTP port 8086)");
    const after = files(scratch);
    const changed = after.filter((f) => before.get(f) !== readFileSync(join(scratch, f), "utf8"));
    // By hand: the folder and the contract entry. Generated (`pnpm gen:deploy`, which it runs):
    // the stream, the consumers, and the generated parts of the compose and Prometheus files.
    expect(changed.filter((f) => !f.startsWith("services/notifier/")).sort()).toEqual(
      [
        "deploy/consumers/LEDGER.notifier.json",
        "deploy/consumers/REPLAY.notifier-replay.json",
        "deploy/observability/prometheus/prometheus.yml",
        "deploy/streams-r1/NOTIFICATIONS.json",
        "deploy/streams/NOTIFICATIONS.json",
        "docker-compose.yml",
        "packages/contracts/src/team-streams.ts",
        "pnpm-lock.yaml",
      ].sort(),
    );
    expect(changed.filter((f) => f.startsWith("services/notifier/")).sort()).toEqual(
      [
        "README.md",
        "manifest.json",
        "package.json",
        "src/config.ts",
        "src/handler.test.ts",
        "src/handler.ts",
        "src/main.ts",
      ].map((f) => `services/notifier/${f}`),
    );
    expect(
      readFileSync(join(scratch, "services/notifier/src/main.ts"), "utf8").trim().split("\n").length,
    ).toBeLessThan(15);
    const manifest = JSON.parse(readFileSync(join(scratch, "services/notifier/manifest.json"), "utf8"));
    expect(manifest).toMatchObject({
      name: "notifier",
      inputs: [{ stream: "LEDGER", durable: "notifier", types: ["ledger.posted"] }],
      outputs: [{ stream: "NOTIFICATIONS", types: ["notifications.large-posting"] }],
      dlq: "dlq.notifier",
      ports: [{ env: "HTTP_PORT", default: 8086 }],
    });
    // the compose and Prometheus files changed only between their gen:deploy markers, and
    // name the notifier there: built from the one service image, scraped on its port
    for (const file of ["docker-compose.yml", "deploy/observability/prometheus/prometheus.yml"])
      expect(handWritten(readFileSync(join(scratch, file), "utf8")), file).toBe(
        handWritten(before.get(file)!),
      );
    const compose = readFileSync(join(scratch, "docker-compose.yml"), "utf8");
    expect(compose).toContain(
      "  notifier:\n    build:\n      context: .\n      dockerfile: deploy/docker/Dockerfile.service\n      args:\n        SERVICE: notifier\n",
    );
    expect(compose).toContain(`  nats-notifier: { file: "\${JETMESH_SECRETS}/nats/notifier.nk" }`);
    expect(readFileSync(join(scratch, "deploy/observability/prometheus/prometheus.yml"), "utf8")).toMatch(
      /- job_name: jetmesh-notifier\n(?: {4}.*\n)*? {8}port: 8086\n/,
    );
    // a second run finds the name taken
    expect(
      newStage("notifier", "--consumes", "ledger.posted", "--emits", "notifications.large-posting").stderr,
    ).toMatch(/name "notifier" is taken/);
  }, 120_000);

  it("new:stage - the notifier builds, passes its tests and the contract suite, type-checks and lints with the repository, and keeps the catalog and deploy checks green", () => {
    ok(inScratch("node", ["scripts/build.mjs", "notifier"]));
    expect(existsSync(join(scratch, "services/notifier/dist/main.mjs"))).toBe(true);
    const tests = ok(inScratch("pnpm", ["--filter", "@jetmesh/notifier", "test"]));
    expect(tests.stdout).toMatch(/Tests\s+5 passed/);
    ok(inScratch("pnpm", ["exec", "tsc", "-p", "tsconfig.json", "--noEmit"]));
    ok(
      inScratch("pnpm", [
        "exec",
        "biome",
        "check",
        "services/notifier",
        "packages/contracts/src/team-streams.ts",
      ]),
    );
    const checks = ok(
      inScratch("pnpm", [
        "exec",
        "vitest",
        "run",
        "packages/catalog/src/catalog.test.ts",
        "packages/contracts/src/contracts.test.ts",
        "packages/mesh/src/services.test.ts",
        "test/deploy.test.ts",
        "-t",
        "catalog|contracts - PipelineStreams|mesh|docker-compose|Prometheus|stream files are generated|are current|two stages",
      ]),
    );
    expect(checks.stdout).not.toMatch(/failed/);
  }, 300_000);

  describe("new:stage - the scaffolded notifier as a real process", () => {
    let nats: NatsServerHandle;
    let redis: RedisServerHandle;
    let nc: NatsConnection;
    beforeAll(async () => {
      nats = await startNats();
      redis = await startRedis();
      nc = await connect({ servers: nats.url });
      // the deploy step creates LEDGER; the stage creates its own NOTIFICATIONS and the DLQ
      await provisionStreams(await jetstreamManager(nc), {
        replicas: 1,
        logger: createLogger({ service: "new-stage-test", level: "silent" }),
      });
    });
    afterAll(async () => {
      await nc?.close();
      await redis?.stop();
      await nats?.stop();
    });

    it("new:stage - the notifier consumes a posting from LEDGER and emits its notification on NOTIFICATIONS, derived from it", async () => {
      const port = await freePort();
      const bundle = join(scratch, "services/notifier/dist/main.mjs");
      expect(existsSync(bundle), "built by the test before").toBe(true);
      await spawnProcess({
        name: "notifier",
        command: "node",
        args: [bundle],
        env: {
          NATS_URL: nats.url,
          REDIS_URL: redis.url,
          HTTP_PORT: String(port),
          OTEL_SDK_DISABLED: "true",
          LOG_LEVEL: "info",
        },
      });
      await waitFor(async () => (await httpGet(`http://127.0.0.1:${port}/readyz`)).status === 200, {
        timeoutMs: 30_000,
        what: "notifier /readyz",
      });
      const transfer = {
        transferId: "t-big",
        from: "acc-alice",
        to: "bank:acme-1",
        amountMinor: 5_000_000,
        currency: "EUR",
      };
      const posted = makeEnvelope(
        EventTypes.LedgerPosted,
        { ...transfer, decision: "allow" },
        { eventId: "po-t-big", correlationId: "t-big", causationId: "sc-t-big", producer: "ledger" },
      ) as AnyEnvelope;
      const h = headers();
      for (const [k, v] of Object.entries(eventHeaders(posted))) h.set(k, v);
      h.set(Headers.TraceParent, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
      await jetstream(nc).publish(subjectFor(EventTypes.LedgerPosted, transfer.from), encodeEvent(posted), {
        headers: h,
        msgID: posted.eventId,
      });

      const jsm = await jetstreamManager(nc);
      const msg = await waitFor(
        async () =>
          (await jsm.streams.getMessage("NOTIFICATIONS", { seq: 1 }).catch(() => null)) ?? undefined,
        {
          timeoutMs: 30_000,
          what: "a message on NOTIFICATIONS",
        },
      );
      expect(msg.subject).toBe(subjectFor("notifications.large-posting" as never, transfer.from));
      expect(msg.header.get(Headers.EventType)).toBe("notifications.large-posting");
      expect(msg.header.get(Headers.CausationId)).toBe(posted.eventId);
      expect(msg.header.get(Headers.CorrelationId)).toBe("t-big");
      expect(msg.header.get(Headers.Producer)).toBe("notifier");
      expect(msg.header.get(Headers.TraceParent)).toMatch(/^00-0af7651916cd43dd8448eb211c80319c-/);
      expect(msg.header.get(Headers.MsgId)).toBe(
        outputEventId("notifier", posted.eventId, "notifications.large-posting" as never, 0),
      );
      expect((unpack(msg.data) as { data: unknown }).data).toEqual(transfer);
    }, 90_000);
  });
});
