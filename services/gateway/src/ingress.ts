import { namesFor } from "@jetmesh/contracts";
import { ConfigError, type Logger } from "@jetmesh/stage";
import { ensureStream, type PublisherSettings } from "@jetmesh/stage/internal";
import type { JetStreamManager } from "@nats-io/jetstream";

/**
 * Makes sure INGRESS (the stream the gateway's team owns) exists, creating it from its
 * contract when missing and never changing an existing one, and refuses to start when
 * its duplicate window cannot cover a retried publish: a retry of a request whose lease
 * lapsed mid-publish must still be dropped as a duplicate.
 * @throws ConfigError when the window is too short; errors of the JetStream calls.
 */
export async function ensureIngress(
  jsm: JetStreamManager,
  opts: { replicas: number; logger: Logger; publisher: PublisherSettings; leaseMs: number },
): Promise<void> {
  const { info, drift } = await ensureStream(jsm, namesFor(opts.publisher.namespace).streams.INGRESS, {
    replicas: opts.replicas,
    logger: opts.logger,
  });
  if (drift.length) opts.logger.warn({ stream: info.config.name, drift }, "stream differs from its contract");
  const windowMs = Math.floor((info.config.duplicate_window ?? 0) / 1_000_000);
  const needMs = opts.leaseMs + opts.publisher.publishTimeoutMs + opts.publisher.publishRetryHorizonMs;
  if (windowMs < needMs) {
    throw new ConfigError([
      `stream ${info.config.name} duplicate window ${windowMs} ms is shorter than lease + publish horizon ${needMs} ms: a retried request could be stored twice`,
    ]);
  }
}
