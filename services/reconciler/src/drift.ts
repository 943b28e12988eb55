import { FindingKinds, namesFor, toStreamConfig } from "@jetmesh/contracts";
import type { StageSettings } from "@jetmesh/stage";
import {
  type ConsumerSpec,
  consumerDrift,
  type DeclaredConsumerSettings,
  streamDrift,
} from "@jetmesh/stage/internal";
import { JetStreamApiError, type JetStreamManager } from "@nats-io/jetstream";
import type { Discrepancy } from "./book.ts";
import { type DeclaredConsumer, specOf } from "./catalog.ts";

function isNotFound(err: unknown): boolean {
  return err instanceof JetStreamApiError && (err.code === 10059 || err.code === 10014);
}

/** The key of a stream's or a consumer's settings finding. */
export const streamKey = (name: string) => `stream:${name}`;
export const consumerKey = (c: { stream: string; durable: string }) => `consumer:${c.stream}/${c.durable}`;

/**
 * Compares every stream of the contracts and every declared durable consumer with what the
 * server holds, with the runtime's own comparison (`streamDrift`, `consumerDrift` of
 * @jetmesh/stage, which the stages run once at start): a stream or consumer missing, or a
 * setting that differs, is a discrepancy. Nothing is changed.
 * @returns the discrepancies, and the keys checked (an unreachable server checks none).
 */
export async function checkDeclaredSettings(
  jsm: JetStreamManager,
  consumers: readonly DeclaredConsumer[],
  /** With the namespace (JETMESH_NAMESPACE) whose streams are compared (`consumers` name them as the contracts do). */
  settings: Pick<StageSettings, "ackWaitMs" | "maxAckPending" | "replicas"> & { readonly namespace?: string },
  /**
   * What the stage running a consumer declares for it (recorded next to its position, see
   * @jetmesh/stage positions.ts): each stage may run its own settings; the reconciler's own
   * are the fallback for a consumer whose stage has recorded nothing yet.
   */
  declaredBy: (c: {
    readonly stream: string;
    readonly durable: string;
  }) => Promise<DeclaredConsumerSettings | undefined> = async () => undefined,
): Promise<{ found: Discrepancy[]; checked: string[] }> {
  const found: Discrepancy[] = [];
  const checked: string[] = [];
  const missingStreams = new Set<string>();
  const names = namesFor(settings.namespace);
  for (const def of Object.values(names.streams)) {
    const key = streamKey(def.name);
    const want = toStreamConfig(def, { replicas: settings.replicas });
    try {
      const info = await jsm.streams.info(def.name);
      const drift = streamDrift(info.config, want);
      if (drift.length)
        found.push({
          kind: FindingKinds.SettingsDrift,
          key,
          summary: `stream ${def.name} differs from its definition: ${drift.join("; ")}`,
          evidence: { stream: def.name, drift },
          command: `nats stream info ${def.name}`,
        });
    } catch (err) {
      if (!isNotFound(err)) throw err;
      missingStreams.add(def.name);
      found.push({
        kind: FindingKinds.SettingsDrift,
        key,
        summary: `stream ${def.name} is missing`,
        evidence: { stream: def.name, missing: true },
        command: `nats stream add --config deploy/streams/${def.name}.json`,
      });
    }
    checked.push(key);
  }
  for (const declared of consumers) {
    // As the server names it (and the stage records its position): in the namespace.
    const c = { ...declared, stream: names.stream(declared.stream) };
    const key = consumerKey(c);
    checked.push(key);
    if (missingStreams.has(c.stream)) continue;
    const recorded = await declaredBy(c).catch(() => undefined);
    const spec: ConsumerSpec = recorded
      ? {
          stream: c.stream,
          durable: c.durable,
          ...(recorded.filterSubject ? { filterSubject: recorded.filterSubject } : {}),
          ackWaitMs: recorded.ackWaitMs,
          maxAckPending: recorded.maxAckPending,
        }
      : specOf(declared, settings);
    try {
      const info = await jsm.consumers.info(c.stream, c.durable);
      const drift = consumerDrift(info.config, spec);
      if (drift.length)
        found.push({
          kind: FindingKinds.SettingsDrift,
          key,
          summary: `consumer ${c.durable} on ${c.stream} differs from what its stage declares: ${drift.join("; ")}`,
          evidence: { stream: c.stream, consumer: c.durable, drift },
          command: `nats consumer info ${c.stream} ${c.durable}`,
        });
    } catch (err) {
      if (!isNotFound(err)) throw err;
      found.push({
        kind: FindingKinds.SettingsDrift,
        key,
        summary: `consumer ${c.durable} on ${c.stream} is missing`,
        evidence: { stream: c.stream, consumer: c.durable, missing: true },
        command: "pnpm jetmesh status",
      });
    }
  }
  return { found, checked };
}
