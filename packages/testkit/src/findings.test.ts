import { findingIdOf, Headers, StreamNames, Streams, toStreamConfig } from "@jetmesh/contracts";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect, headers, type NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, expect, it } from "vitest";
import { openFindings } from "./findings.ts";
import { type NatsServerHandle, startNats, stopAllProcesses } from "./local-infra/index.ts";

let nats: NatsServerHandle;
let nc: NatsConnection;
beforeAll(async () => {
  nats = await startNats();
  nc = await connect({ servers: nats.url });
});
afterAll(async () => {
  await nc?.close();
  await stopAllProcesses();
});

it("findings - open ones are those whose subject's last message says opened; none without RECONCILE", async () => {
  expect(await openFindings(nc)).toEqual([]);
  const jsm = await jetstreamManager(nc);
  await jsm.streams.add(toStreamConfig(Streams.RECONCILE) as never);
  const js = jetstream(nc);
  const post = async (kind: string, key: string, state: string) => {
    const h = headers();
    h.set(Headers.FindingKind, kind);
    h.set(Headers.FindingState, state);
    h.set(Headers.FindingKey, key);
    await js.publish(`reconcile.${kind}.${findingIdOf(kind as never, key)}`, new Uint8Array([0x80]), {
      headers: h,
    });
  };
  await post("stuck_transfer", "t-1", "opened");
  await post("stuck_transfer", "t-1", "closed");
  await post("projection_mismatch", "acc-a/EUR", "opened");
  await post("stuck_transfer", "t-2", "opened");
  await post("stuck_transfer", "t-2", "closed");
  await post("stuck_transfer", "t-2", "opened");
  const open = await openFindings(nc);
  expect(open.map((f) => `${f.kind} ${f.key}`).sort()).toEqual([
    "projection_mismatch acc-a/EUR",
    "stuck_transfer t-2",
  ]);
  expect((await jsm.streams.info(StreamNames.Reconcile)).state.messages).toBe(6);
});
