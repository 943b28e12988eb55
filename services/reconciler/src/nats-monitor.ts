import { Gauge, type Registry } from "prom-client";

/** What one nats-server's monitoring port says. */
export interface MonitorView {
  /** host:port of the monitoring URL (a bounded label: the configured servers). */
  readonly target: string;
  /** `/healthz` answered 200 (in 2.9 it also needs JetStream in contact with a meta leader). */
  readonly healthy: boolean;
  /** `/jsz` names a JetStream meta leader; undefined when the server is not clustered or did not answer. */
  readonly metaLeader: boolean | undefined;
  /** JetStream file storage the server uses, and its max_file_store (`/jsz`); undefined when it did not answer. */
  readonly storage?: { readonly bytes: number; readonly limitBytes: number };
}

async function get(url: string, timeoutMs: number): Promise<Response | undefined> {
  try {
    return await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
  } catch {
    return undefined;
  }
}

/**
 * Reads a nats-server's monitoring port (`http: <port>` in its config): `/healthz` and the
 * meta group of `/jsz`. Never throws: a server that does not answer is unhealthy.
 */
export async function readMonitor(url: string, timeoutMs: number): Promise<MonitorView> {
  const base = url.replace(/\/+$/, "");
  const target = new URL(base).host;
  const [health, jsz] = await Promise.all([get(`${base}/healthz`, timeoutMs), get(`${base}/jsz`, timeoutMs)]);
  let metaLeader: boolean | undefined;
  let storage: MonitorView["storage"];
  if (jsz?.ok) {
    const body = (await jsz.json().catch(() => ({}))) as {
      meta_cluster?: { leader?: string };
      storage?: number;
      config?: { max_storage?: number };
    };
    metaLeader = body.meta_cluster ? Boolean(body.meta_cluster.leader) : undefined;
    if (typeof body.storage === "number" && typeof body.config?.max_storage === "number")
      storage = { bytes: body.storage, limitBytes: body.config.max_storage };
  }
  await health?.body?.cancel().catch(() => {});
  return { target, healthy: health?.status === 200, metaLeader, ...(storage ? { storage } : {}) };
}

/** Per configured nats-server: healthy, and whether it knows a JetStream meta leader. */
export function createNatsMonitorMetrics(registry: Registry) {
  const g = (name: string, help: string) =>
    new Gauge({ name, help, labelNames: ["target"] as const, registers: [registry] });
  const healthy = g(
    "jetmesh_nats_server_healthy",
    "1 when the nats-server's monitoring /healthz answers 200 (RECONCILE_NATS_MONITOR_URLS), 0 when it does not",
  );
  const metaLeader = g(
    "jetmesh_nats_meta_leader",
    "1 when the nats-server knows a JetStream meta leader (/jsz), 0 when it does not (no stream or consumer can be created or changed)",
  );
  const storage = g(
    "jetmesh_nats_jetstream_storage_bytes",
    "JetStream file storage the nats-server uses (/jsz)",
  );
  const storageLimit = g(
    "jetmesh_nats_jetstream_storage_limit_bytes",
    "The nats-server's JetStream max_file_store (/jsz): past it every stream on it refuses writes",
  );
  const all = [healthy, metaLeader, storage, storageLimit];
  return {
    record(views: readonly MonitorView[]): void {
      for (const g of all) g.reset();
      for (const v of views) {
        healthy.set({ target: v.target }, v.healthy ? 1 : 0);
        if (v.metaLeader !== undefined) metaLeader.set({ target: v.target }, v.metaLeader ? 1 : 0);
        if (v.storage) {
          storage.set({ target: v.target }, v.storage.bytes);
          if (v.storage.limitBytes > 0) storageLimit.set({ target: v.target }, v.storage.limitBytes);
        }
      }
    },
  };
}
