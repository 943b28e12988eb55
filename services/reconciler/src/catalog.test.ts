import { readdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { DeclaredConsumers } from "./catalog.ts";

const services = join(dirname(fileURLToPath(import.meta.url)), "../..");

describe("catalog", () => {
  it("reconciler - the declared consumers are the durable inputs of every service's manifest", () => {
    const fromManifests: string[] = [];
    for (const dir of readdirSync(services)) {
      let m: { inputs?: { stream: string; durable: string; types: string[] }[] };
      try {
        m = JSON.parse(readFileSync(join(services, dir, "manifest.json"), "utf8"));
      } catch {
        continue;
      }
      for (const i of m.inputs ?? [])
        fromManifests.push(`${i.stream}/${i.durable} ${[...i.types].sort().join(",")}`);
    }
    const declared = DeclaredConsumers.map(
      (c) => `${c.stream}/${c.durable} ${[...c.types].sort().join(",")}`,
    );
    expect(declared.sort()).toEqual(fromManifests.sort());
  });
});
