/**
 * Whether a server that looks connected still answers. A paused or black-holed server keeps
 * its TCP connection open: ioredis stays "ready" and nats.js connected until their own
 * timeouts (a command's 5 s, two missed pings), while every request hangs. A probe sends a
 * cheap round trip (PING, a NATS flush) every `intervalMs`; the server counts as hung once
 * a probe is unanswered for `staleMs` or the last one failed.
 */
export interface LivenessProbe {
  /** False while the latest probe is older than `staleMs` unanswered, or failed. */
  answering(): boolean;
  /** The last round trip in ms (undefined before the first answer). */
  lastRttMs(): number | undefined;
  stop(): void;
}

export function startLivenessProbe(o: {
  probe: () => Promise<unknown>;
  intervalMs?: number;
  staleMs?: number;
  /** Called when the answer changes (true: answering again). */
  onChange?: (answering: boolean) => void;
}): LivenessProbe {
  const intervalMs = o.intervalMs ?? 1000;
  const staleMs = o.staleMs ?? 2000;
  let sentAt: number | undefined;
  let failed = false;
  let rtt: number | undefined;
  let last = true;
  const answering = () => !failed && (sentAt === undefined || Date.now() - sentAt < staleMs);
  const check = () => {
    const now = answering();
    if (now !== last) {
      last = now;
      o.onChange?.(now);
    }
  };
  const tick = () => {
    check();
    if (sentAt !== undefined) return;
    const at = Date.now();
    sentAt = at;
    o.probe().then(
      () => {
        rtt = Date.now() - at;
        failed = false;
        sentAt = undefined;
        check();
      },
      () => {
        failed = true;
        sentAt = undefined;
        check();
      },
    );
  };
  const timer = setInterval(tick, intervalMs);
  timer.unref();
  tick();
  return {
    answering,
    lastRttMs: () => rtt,
    stop: () => clearInterval(timer),
  };
}
