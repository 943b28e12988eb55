// `pnpm gen:deploy --namespace <ns> --out <dir>`: the deploy files of a dev namespace. Two
// namespaces' files and production's go onto ONE nats-server side by side: JetStream refuses a
// stream whose subjects overlap another's, so this holds the naming scheme to it.
import { namesFor, Streams } from "@jetmesh/contracts";
import { startNats, stopAllProcesses } from "@jetmesh/testkit";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { afterAll, describe, expect, it } from "vitest";
import { renderConsumerFiles, renderStreamFiles } from "../scripts/gen-deploy.ts";

describe("deploy files in a namespace", () => {
  afterAll(() => stopAllProcesses());

  it("deploy - a namespace's files name its streams and subjects; with production's and another namespace's, one server takes them all", async () => {
    const alice = renderStreamFiles(1, "alice");
    expect([...alice.keys()].sort()).toEqual(
      Object.keys(Streams)
        .map((n) => `alice_${n}.json`)
        .sort(),
    );
    for (const [file, text] of alice) {
      const cfg = JSON.parse(text) as { name: string; subjects: string[] };
      expect(`${cfg.name}.json`).toBe(file);
      for (const s of cfg.subjects) expect(s.startsWith("alice.")).toBe(true);
    }
    // Production's are exactly the contracts' (deploy/ is unchanged by the option).
    expect([...renderStreamFiles(1).keys()].sort()).toEqual(
      Object.keys(Streams)
        .map((n) => `${n}.json`)
        .sort(),
    );

    const nats = await startNats();
    const nc = await connect({ servers: nats.url });
    try {
      const jsm = await jetstreamManager(nc);
      for (const ns of ["", "alice", "bob"]) {
        for (const text of renderStreamFiles(1, ns).values()) {
          const cfg = JSON.parse(text);
          expect((await jsm.streams.add(cfg)).config.name).toBe(cfg.name);
        }
        for (const [file, text] of renderConsumerFiles(ns)) {
          const stream = file.slice(0, file.indexOf("."));
          expect(stream).toBe(namesFor(ns).stream(namesFor(ns).streamOf(stream) as string));
          const cfg = JSON.parse(text);
          expect((await jsm.consumers.add(stream, cfg)).name).toBe(cfg.durable_name);
        }
      }
      const names: string[] = [];
      for await (const n of jsm.streams.names()) names.push(n);
      expect(names).toHaveLength(3 * Object.keys(Streams).length);
    } finally {
      await nc.close();
      await nats.stop();
    }
  });
});
