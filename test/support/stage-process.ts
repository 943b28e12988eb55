// Runs a fixture stage as a child process so that a test can kill it (or let it kill
// itself at a crash point) and start it again.
import { bundleOf, type ChildHandle, spawnProcess } from "@jetmesh/testkit";

/** Protocol settings short enough for tests: redelivery after 1.5 s. */
export const FAST_SETTINGS: Record<string, string> = {
  JETMESH_ACK_WAIT_MS: "1500",
  JETMESH_MAX_DELIVER: "6",
  JETMESH_RETRY_BASE_MS: "50",
  JETMESH_RETRY_MAX_MS: "500",
  // Longer than the event streams' age limit (3 days): the settings check demands it.
  JETMESH_IDEMPOTENCY_TTL_MS: String(4 * 24 * 3_600_000),
  JETMESH_IDEMPOTENCY_HORIZON_MS: "600000",
  JETMESH_MAX_IN_FLIGHT: "16",
  JETMESH_MAX_ACK_PENDING: "64",
  JETMESH_PUBLISH_TIMEOUT_MS: "1000",
  JETMESH_PUBLISH_RETRY_HORIZON_MS: "5000",
  JETMESH_DRAIN_TIMEOUT_MS: "2000",
};

/** Starts test/fixtures/echo-stage.ts (its bundle) with the given environment; resolves once it is consuming. */
export async function startEchoProcess(
  urls: { natsUrl: string; redisUrl: string },
  env: Record<string, string> = {},
): Promise<ChildHandle> {
  const child = await spawnProcess({
    name: "echo",
    command: process.execPath,
    args: [bundleOf("test/fixtures/echo-stage.ts")],
    env: {
      NATS_URL: urls.natsUrl,
      REDIS_URL: urls.redisUrl,
      HTTP_PORT: "0",
      LOG_LEVEL: "info",
      ...FAST_SETTINGS,
      ...env,
    },
  });
  await child.waitForLine(/echo ready/, 90_000);
  return child;
}
