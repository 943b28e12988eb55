import type { StageSettings } from "./config.ts";
import { redeliveryHorizonMs } from "./retry-policy.ts";

/** What the server says about a stream the stage reads or writes. */
export interface StreamFacts {
  readonly name: string;
  readonly duplicateWindowMs: number;
  readonly replicas: number;
  readonly retention: string;
  readonly critical: boolean;
  /** The server drops messages older than this (max_age); 0 or absent: no age limit. */
  readonly maxAgeMs?: number;
}

/** Parses `2.9.10` → [2, 9, 10]. */
function version(v: string): number[] {
  return v
    .split(/[.-]/)
    .slice(0, 3)
    .map((n) => Number.parseInt(n, 10) || 0);
}
function atLeast(v: string, major: number, minor: number): boolean {
  const [a = 0, b = 0] = version(v);
  return a > major || (a === major && b >= minor);
}

/**
 * Checks settings that would break exactly-once or hide failures. Pure: start-up
 * gathers the facts, this decides. `problems` refuse the start; `warnings` are logged.
 */
export function checkSettings(input: {
  readonly settings: StageSettings;
  readonly outputs: readonly StreamFacts[];
  readonly inputs: readonly StreamFacts[];
  readonly dlq: StreamFacts;
  readonly serverVersion: string;
}): { problems: string[]; warnings: string[] } {
  const { settings: s } = input;
  const problems: string[] = [];
  const warnings: string[] = [];
  const horizon = redeliveryHorizonMs(s);
  if (s.mode === "exactly-once" && horizon + s.idempotencyHorizonMs >= s.idempotencyTtlMs) {
    problems.push(
      `idempotency key ttl ${s.idempotencyTtlMs} ms must outlive the idempotency horizon ${s.idempotencyHorizonMs} ms (JETMESH_IDEMPOTENCY_HORIZON_MS: how long a client may repeat a request) plus the redelivery horizon ${horizon} ms (max deliver ${s.maxDeliver} × the longest gap between deliveries): a request repeated at the horizon's edge, or a late redelivery, would run twice`,
    );
  }
  const publishHorizon = s.publishRetryHorizonMs + s.publishTimeoutMs;
  for (const out of [...input.outputs, input.dlq]) {
    if (out.duplicateWindowMs < publishHorizon) {
      problems.push(
        `stream ${out.name} duplicate window ${out.duplicateWindowMs} ms is shorter than the publish retry horizon ${publishHorizon} ms: a retried publish could be stored twice`,
      );
    }
    if (s.mode === "exactly-once" && s.idempotencyTtlMs <= out.duplicateWindowMs) {
      problems.push(
        `idempotency key ttl ${s.idempotencyTtlMs} ms must outlive stream ${out.name}'s duplicate window ${out.duplicateWindowMs} ms`,
      );
    }
  }
  // The retention plan (contracts README): a message stays deliverable until its input stream
  // drops it by age, so its guard must outlive that age; a redelivery, or a consumer recreated
  // at a recorded position, of a message whose key expired would run it twice.
  for (const inp of input.inputs) {
    const age = inp.maxAgeMs ?? 0;
    if (s.mode !== "exactly-once") continue;
    if (age > 0 && s.idempotencyTtlMs <= age) {
      problems.push(
        `idempotency key ttl ${s.idempotencyTtlMs} ms must outlive stream ${inp.name}'s age limit ${age} ms (JETMESH_IDEMPOTENCY_TTL_MS, or the stream's max_age in the retention plan): a message still in the stream could be delivered again after its guard expired and run twice`,
      );
    } else if (age === 0) {
      warnings.push(
        `stream ${inp.name} has no age limit: its messages outlive the idempotency keys (${s.idempotencyTtlMs} ms) that guard them; only the recorded consumer positions keep a recreated consumer from running them again`,
      );
    }
  }
  for (const out of input.outputs) {
    if (s.mode === "exactly-once" && horizon > out.duplicateWindowMs) {
      warnings.push(
        `redelivery horizon ${horizon} ms outlives stream ${out.name}'s duplicate window ${out.duplicateWindowMs} ms: a late redelivery after a crash between publish and done stores an output twice (same event id; downstream keys drop it)`,
      );
    }
  }
  if (input.dlq.retention !== "limits") {
    problems.push(
      `stream ${input.dlq.name} has ${input.dlq.retention} retention; use limits so operators can peek at parked messages`,
    );
  }
  if (s.lingerMs * 2 > s.ackWaitMs) {
    problems.push(
      `linger ${s.lingerMs} ms must be at most half the ack wait ${s.ackWaitMs} ms (JETMESH_LINGER_MS, JETMESH_ACK_WAIT_MS): a delivery waiting to be processed spends its ack wait, and one held past it is delivered again before it started`,
    );
  }
  if (s.leaseMs > s.ackWaitMs) {
    warnings.push(
      `lease ${s.leaseMs} ms outlives ack wait ${s.ackWaitMs} ms: a crashed attempt delays its redelivery`,
    );
  }
  if (s.handlerTimeoutMs >= s.ackWaitMs) {
    warnings.push(
      `handler timeout ${s.handlerTimeoutMs} ms outlives ack wait ${s.ackWaitMs} ms: long attempts rely on the heartbeat (working() and lease renewal every ${Math.floor(Math.min(s.ackWaitMs, s.leaseMs) / 3)} ms); a blocked event loop lets the message be redelivered, and the fenced lease keeps the late attempt from marking it done`,
    );
  }
  if (s.production) {
    for (const st of [...input.inputs, ...input.outputs]) {
      if (st.critical && st.replicas < 3) {
        problems.push(`production: critical stream ${st.name} has ${st.replicas} replica(s); use 3`);
      }
    }
    if (atLeast(input.serverVersion, 2, 10)) {
      if (!s.syncWrites) {
        problems.push(
          `production: nats-server ${input.serverVersion} supports sync_interval; run it with sync_interval: always and set JETMESH_SYNC_WRITES=true (lazy fsync loses acknowledged writes on power loss)`,
        );
      }
    } else {
      warnings.push(
        `nats-server ${input.serverVersion} has no sync_interval setting: acknowledged writes rely on replication, not fsync`,
      );
    }
    if (s.mode !== "exactly-once") warnings.push("production stage runs in at-least-once mode");
  }
  return { problems, warnings };
}
