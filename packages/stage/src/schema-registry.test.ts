// The start-up warning for a consumed event type announced for removal: once per type, naming
// the type, the release that announced it and the stage, in the stage's own log.
import { currentSchemaSet, type SchemaSet } from "@jetmesh/contracts/evolution";
import { describe, expect, it } from "vitest";
import { createLogger } from "./logger.ts";
import { warnDeprecatedInputs } from "./schema-registry.ts";

/** A logger whose JSON lines are kept. */
function capture() {
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger({
    service: "risk",
    destination: { write: (line: string) => lines.push(JSON.parse(line) as Record<string, unknown>) },
  });
  return { logger, lines };
}

/** The tree's set with transfers.validated announced for removal. */
function announcing(): SchemaSet {
  const set = currentSchemaSet();
  const t = set.types["transfers.validated"]!;
  return { ...set, types: { ...set.types, "transfers.validated": { ...t, typeDeprecated: true } } };
}

describe("stage start: consumed types announced for removal", () => {
  it("stage - warns once per deprecated input type, naming the type, the announcing release and the stage", () => {
    const set = announcing();
    const released: SchemaSet = {
      types: {
        ...set.types,
        "transfers.validated": { ...set.types["transfers.validated"]!, typeDeprecatedSince: "r7" },
      },
    };
    const { logger, lines } = capture();
    const warnings = warnDeprecatedInputs({
      service: "risk",
      consumes: ["transfers.validated", "transfers.validated", "transfers.requested"],
      logger,
      set,
      released,
    });
    expect(warnings).toHaveLength(1);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({
      level: "warn",
      stage: "risk",
      event_type: "transfers.validated",
      announced_in: "r7",
      msg: "risk consumes transfers.validated, announced for removal in release r7: move risk off it before the deprecation window ends (owner: validator)",
    });
  });

  it("stage - an announcement no release has shipped yet says so; undeprecated inputs log nothing", () => {
    const { logger, lines } = capture();
    warnDeprecatedInputs({
      service: "risk",
      consumes: ["transfers.validated"],
      logger,
      set: announcing(),
      released: currentSchemaSet(),
    });
    expect(lines.map((l) => l.msg)).toEqual([
      "risk consumes transfers.validated, announced for removal in this build, no release has shipped it yet: move risk off it before the deprecation window ends (owner: validator)",
    ]);
    const quiet = capture();
    expect(
      warnDeprecatedInputs({ service: "risk", consumes: ["transfers.validated"], logger: quiet.logger }),
    ).toEqual([]);
    expect(quiet.lines).toEqual([]);
  });
});
