import { PipelineStreams } from "@jetmesh/contracts";
import { type FaultAction, type Injected, numbered, pause, type Scenario } from "../scenario.ts";

/**
 * Three nodes, R3 streams: kill a stream's leader, later a follower (alternating in a long
 * run); services keep going through the survivors. Which stream is drawn; the leader is
 * whoever leads it when the fault fires.
 */
export const clusterFailover: Scenario = {
  name: "cluster",
  title: "3-node cluster with R3 streams: kill the stream leader, later a follower",
  kinds: ["kill-stream-leader", "kill-stream-follower"],
  env: { topology: "cluster", env: { JETMESH_REPLICAS: "3" } },
  plan(prng, durationMs) {
    const count = Math.max(2, Math.floor(durationMs / 40_000));
    const window = durationMs / count;
    const actions: Omit<FaultAction, "id">[] = [];
    for (let k = 0; k < count; k++) {
      const leader = k % 2 === 0;
      actions.push({
        atMs: Math.round(k * window + prng.float(0.1, 0.35) * window),
        kind: leader ? "kill-stream-leader" : "kill-stream-follower",
        target: prng.pick(PipelineStreams),
        holdMs: prng.int(2000, 6000),
        params: leader ? {} : { follower: prng.int(0, 1) },
      });
    }
    return numbered(actions);
  },
  async inject(a, ctx): Promise<Injected> {
    const cluster = ctx.env.cluster;
    if (!cluster) throw new Error("the cluster scenario needs a nats cluster");
    // Everyone must be back and current before a node is taken: one node down at a time.
    await cluster.waitForJetStream(60_000);
    const info = await ctx.jsm.streams.info(a.target);
    const leaderName = info.cluster?.leader;
    const followers = (info.cluster?.replicas ?? []).map((r) => r.name).sort();
    const name =
      a.kind === "kill-stream-leader"
        ? leaderName
        : followers[Math.min(Number(a.params?.follower ?? 0), followers.length - 1)];
    const node = cluster.nodes.find((n) => n.serverName === name);
    if (!node)
      throw new Error(`stream ${a.target}: no node named ${String(name)} (leader ${String(leaderName)})`);
    await node.kill("SIGKILL");
    await pause(a.holdMs, ctx.signal);
    const endedAtMs = Date.now();
    await node.restart();
    const role = a.kind === "kill-stream-leader" ? "leader" : "follower";
    return {
      endedAtMs,
      detail: `${a.target} ${role} ${name} killed (leader ${leaderName}, followers ${followers.join(",")}), back after ${a.holdMs} ms`,
      settle: cluster.waitForJetStream(60_000),
    };
  },
};
