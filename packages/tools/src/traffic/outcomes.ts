import { setTimeout as sleep } from "node:timers/promises";

/** Statuses of `GET /v1/transfers/:id` past the pipeline's middle. */
const FINAL = new Set(["posted", "declined", "rejected", "paid", "payout_failed", "reversed"]);

/** Runs `fn` over `items`, `size` at a time. */
export async function pool<T>(
  items: readonly T[],
  size: number,
  fn: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(size, items.length) }, async () => {
      while (next < items.length) await fn(items[next++] as T);
    }),
  );
}

/**
 * Polls `GET /v1/transfers/:id` (as `apiKey`, which must see them all) until every transfer
 * has left the pipeline's middle.
 * @throws after `timeoutMs`, counting the open ones by status.
 */
export async function waitForOutcomes(
  gatewayUrl: string,
  apiKey: string,
  ids: readonly string[],
  timeoutMs: number,
): Promise<void> {
  const base = gatewayUrl.replace(/\/$/, "");
  let open = [...ids];
  const deadline = Date.now() + timeoutMs;
  const seen = new Map<string, string>();
  while (open.length) {
    const still: string[] = [];
    await pool(open, 16, async (id) => {
      const res = await fetch(`${base}/v1/transfers/${encodeURIComponent(id)}`, {
        headers: { authorization: `Bearer ${apiKey}` },
      }).catch(() => undefined);
      const body = res ? ((await res.json().catch(() => ({}))) as { status?: string }) : {};
      seen.set(id, body.status ?? `HTTP ${res?.status ?? "error"}`);
      if (!body.status || !FINAL.has(body.status)) still.push(id);
    });
    open = still;
    if (!open.length) return;
    if (Date.now() > deadline) {
      const states = new Map<string, number>();
      for (const id of open) states.set(seen.get(id) ?? "?", (states.get(seen.get(id) ?? "?") ?? 0) + 1);
      throw new Error(
        `funding not done within ${timeoutMs} ms: ${open.length} open (${[...states].map(([s, n]) => `${s}: ${n}`).join(", ")}), e.g. ${open[0]}`,
      );
    }
    await sleep(200);
  }
}
