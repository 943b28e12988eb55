import type { MeshService } from "@jetmesh/mesh";
import type { StageService } from "./environment.ts";

/**
 * One process of a stage. A stage scales out as more instances on the same durable
 * consumers (BRIEF.md); the mesh starts one of each, and a chaos environment may start
 * more (the mesh's `addInstance`) so a fault can freeze one while another takes its messages.
 */
export interface Instance {
  readonly service: StageService;
  /** `ledger#1` for the mesh's own process, `ledger#2`… for extra ones. */
  readonly label: string;
  /** Its HTTP base URL (`/healthz`, `/readyz`, `/metrics`). */
  readonly url: string;
  /** The current process id; undefined when none runs. */
  readonly pid: number | undefined;
  isRunning(): boolean;
  /** SIGSTOP: the process freezes with its connections open (no-op when not running). */
  pause(): void;
  /** SIGCONT. */
  resume(): void;
}

function signal(pid: number | undefined, running: boolean, sig: NodeJS.Signals): void {
  if (pid === undefined || !running) return;
  try {
    process.kill(pid, sig);
  } catch {
    // exited meanwhile
  }
}

/** A process of a service the mesh started, as an {@link Instance}; `index` 1 is the mesh's own. */
export function meshInstance(service: StageService, s: MeshService, index = 1): Instance {
  return {
    service,
    label: `${service}#${index}`,
    url: s.opsUrl,
    get pid() {
      return s.isRunning() ? s.child?.pid : undefined;
    },
    isRunning: () => s.isRunning(),
    pause: () => signal(s.child?.pid, s.isRunning(), "SIGSTOP"),
    resume: () => signal(s.child?.pid, s.isRunning(), "SIGCONT"),
  };
}
