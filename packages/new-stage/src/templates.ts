import type { StagePlan } from "./plan.ts";

/** `large-notifier` → `largeNotifier`. */
export const camel = (name: string): string =>
  name.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());
const pascal = (name: string): string => camel(name).replace(/^./, (c) => c.toUpperCase());
const json = (v: unknown): string => `${JSON.stringify(v, null, 2)}\n`;

/** What the scaffolded files are made of: the plan and the versions the other stages use. */
export interface TemplateInput extends StagePlan {
  /** Version of @sinclair/typebox the runtime uses (packages/stage/package.json). */
  readonly typeboxVersion: string;
}

/** The files of `services/<name>/`, by path relative to that folder. */
export function serviceFiles(p: TemplateInput): Map<string, string> {
  return new Map([
    ["package.json", packageJson(p)],
    ["manifest.json", manifestJson(p)],
    ["README.md", readme(p)],
    ["src/config.ts", configTs(p)],
    ["src/handler.ts", handlerTs(p)],
    ["src/main.ts", mainTs(p)],
    ["src/handler.test.ts", handlerTestTs(p)],
  ]);
}

const description = (p: StagePlan) =>
  `Emits ${p.emits} for each ${p.consumes} it consumes from ${p.inputStream}`;

function packageJson(p: TemplateInput): string {
  return json({
    name: `@jetmesh/${p.name}`,
    version: "0.1.0",
    private: true,
    type: "module",
    description: description(p),
    scripts: {
      build: `node ../../scripts/build.mjs ${p.name}`,
      start: "node dist/main.mjs",
      test: `vitest run --root ../.. services/${p.name}/`,
    },
    dependencies: {
      "@jetmesh/contracts": "workspace:*",
      "@jetmesh/stage": "workspace:*",
      "@sinclair/typebox": p.typeboxVersion,
    },
    exports: { "./stage": "./src/handler.ts", "./config": "./src/config.ts" },
  });
}

function manifestJson(p: TemplateInput): string {
  return json({
    name: p.name,
    package: `@jetmesh/${p.name}`,
    owner: p.name,
    kind: "stage",
    description: description(p),
    inputs: [{ stream: p.inputStream, durable: p.name, types: [p.consumes] }],
    outputs: [{ stream: p.outputStream, types: [p.emits] }],
    dlq: `dlq.${p.name}`,
    effects: [],
    env: {
      NATS_URL: { default: "nats://127.0.0.1:4222" },
      REDIS_URL: { default: "redis://127.0.0.1:6379", description: "idempotency store of the runtime" },
      LOG_LEVEL: { default: "info" },
      HTTP_HOST: { default: "127.0.0.1" },
      HTTP_PORT: { default: p.port, description: "/healthz, /readyz, /metrics" },
      OTEL_EXPORTER_OTLP_ENDPOINT: { default: null, description: "traces are exported when set" },
      OTEL_SDK_DISABLED: { default: false },
      "JETMESH_*": {
        default: null,
        description: "stage protocol settings, see packages/stage/src/config.ts",
      },
    },
    ports: [{ name: "http", env: "HTTP_PORT", default: p.port, paths: ["/healthz", "/readyz", "/metrics"] }],
    start: `pnpm --filter @jetmesh/${p.name} start`,
  });
}

function readme(p: TemplateInput): string {
  return `# @jetmesh/${p.name}

Stage \`${p.name}\`: consumes \`${p.consumes}\` from ${p.inputStream} and emits \`${p.emits}\` on
${p.outputStream} (its own stream, declared in \`packages/contracts/src/team-streams.ts\`). Its
durable consumer is \`${p.name}\`, its idempotency keys \`${p.name}:<eventId>\`, its DLQ subject
\`dlq.${p.name}\`. Pure: no effect step, so the runtime's idempotency key is all a redelivery needs.

## Environment

| variable                  | default                  | meaning                           |
| ------------------------- | ------------------------ | --------------------------------- |
| \`NATS_URL\`                | \`nats://127.0.0.1:4222\`  | JetStream                         |
| \`REDIS_URL\`               | \`redis://127.0.0.1:6379\` | the runtime's idempotency store   |
| \`HTTP_HOST\` / \`HTTP_PORT\` | \`127.0.0.1\` / \`${p.port}\`     | \`/healthz\`, \`/readyz\`, \`/metrics\` |
| \`LOG_LEVEL\`               | \`info\`                   | pino level                        |

\`OTEL_*\` and the runtime's \`JETMESH_*\` settings apply as described in packages/stage.

## Run

\`\`\`sh
pnpm --filter @jetmesh/${p.name} build
NATS_URL=nats://127.0.0.1:4222 REDIS_URL=redis://127.0.0.1:6379 HTTP_PORT=${p.port} \\
  pnpm --filter @jetmesh/${p.name} start
\`\`\`
\`pnpm mesh\` starts it with the others (it is in the catalog through its manifest.json). Image:
\`docker compose build ${p.name}\` from the repository root (the one service image,
deploy/docker/Dockerfile.service, with the build arguments \`pnpm gen:deploy\` writes from the
manifest). Tests (its handler and the stage contract suite): \`pnpm --filter @jetmesh/${p.name} test\`.
`;
}

function configTs(p: TemplateInput): string {
  return `import { BaseEnv, parseConfig, type StageProcessConfig, stageProcessConfig } from "@jetmesh/stage";
import { Type } from "@sinclair/typebox";

/** ${p.name}'s own keys, on top of the runtime's {@link BaseEnv}. */
export const ${pascal(p.name)}Env = {
  ...BaseEnv,
  HTTP_PORT: Type.Integer({ minimum: 0, maximum: 65535, default: ${p.port} }),
};

/**
 * Reads ${p.name}'s environment once.
 * @throws ConfigError listing every bad key.
 */
export function loadConfig(env: Record<string, string | undefined> = process.env): StageProcessConfig {
  return stageProcessConfig(parseConfig(${pascal(p.name)}Env, env));
}
`;
}

function handlerTs(p: TemplateInput): string {
  return `import type { EventDataMap } from "@jetmesh/contracts";
import { defineStage, emit } from "@jetmesh/stage";

/** The fields every transfer event carries: what ${p.emits} holds. */
function transferOf({ transferId, from, to, amountMinor, currency }: EventDataMap["${p.consumes}"]) {
  return { transferId, from, to, amountMinor, currency };
}

/**
 * ${p.name}: ${p.inputStream} ${p.consumes} → ${p.emits} on ${p.outputStream}, one per input.
 * Pure: no effect step, so the runtime's idempotency key is all a redelivery needs.
 */
export const ${camel(p.name)}Stage = defineStage<"${p.consumes}">({
  name: "${p.name}",
  inputs: [{ stream: "${p.inputStream}", types: ["${p.consumes}"] }],
  emits: ["${p.emits}"],
  handle: (event) => [emit("${p.emits}", transferOf(event.data))],
});
`;
}

function mainTs(p: TemplateInput): string {
  return `import { serveStage, startService } from "@jetmesh/stage";
import manifest from "../manifest.json" with { type: "json" };
import pkg from "../package.json" with { type: "json" };
import { loadConfig } from "./config.ts";
import { ${camel(p.name)}Stage } from "./handler.ts";

const config = startService({ manifest, version: pkg.version, load: loadConfig });
await serveStage({ definition: ${camel(p.name)}Stage, config, version: pkg.version, deps: () => ({}) });
`;
}

function handlerTestTs(p: TemplateInput): string {
  const stage = `${camel(p.name)}Stage`;
  const data = JSON.stringify(p.sampleInput)
    .replace(/"([a-zA-Z]+)":/g, "$1: ")
    .replaceAll(",", ", ");
  return `import { type AnyEnvelope, makeEnvelope } from "@jetmesh/contracts";
import { handlerContext, runPlan, stageContract } from "@jetmesh/stage/testing";
import { describe, expect, it } from "vitest";
import { ${stage} } from "./handler.ts";

const input = makeEnvelope("${p.consumes}", ${data}, {
  eventId: "e-1",
  correlationId: "t-1",
  causationId: "c-1",
  producer: "upstream",
}) as AnyEnvelope;

// The stage contract suite every stage runs: replays, declared types, deterministic outputs, bad input.
stageContract(${stage}, { deps: {}, inputs: [input] });

describe("${p.name}", () => {
  it("${p.name} - a ${p.consumes} is emitted as ${p.emits} of the same transfer", async () => {
    const out = await runPlan(${stage}, input, handlerContext("${p.name}", {}));
    expect(out).toEqual([
      {
        type: "${p.emits}",
        data: { transferId: "t-1", from: "acc-alice", to: "acc-bob", amountMinor: 250000, currency: "EUR" },
      },
    ]);
  });
});
`;
}
