// CPU time and memory of a process, read from /proc (Linux), so that the bench can
// account nats-server, redis-server and the stage under test alike without touching them.
import { readdirSync, readFileSync } from "node:fs";

/** One reading of a process's counters. */
export interface ProcSample {
  /** user+sys CPU time in milliseconds, summed over every thread (ns precision). */
  readonly cpuMs: number;
  /** The same for the main thread alone (for node: JavaScript, without GC helper threads). */
  readonly mainCpuMs: number;
  /** read and write system calls so far (/proc/<pid>/io; 0 when unreadable). */
  readonly syscalls: number;
  /** Resident set size now, bytes. */
  readonly rssBytes: number;
  /** Peak resident set size over the process's life (VmHWM), bytes. */
  readonly peakRssBytes: number;
}

/**
 * Reads a process's CPU time and RSS. CPU time is the sum of each thread's on-CPU
 * time from `/proc/<pid>/task/<tid>/schedstat` (nanoseconds, user+sys): `/proc/<pid>/stat`
 * counts in 10 ms ticks, too coarse for a few hundred messages. Falls back to the ticks
 * when schedstat is missing.
 * @throws when the process does not exist.
 */
export function sampleProcess(pid: number): ProcSample {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = (field: string): number => {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status);
    return m ? Number(m[1]) * 1024 : 0;
  };
  return {
    cpuMs: cpuMs(pid),
    mainCpuMs: threadCpuMs(pid, pid),
    syscalls: syscalls(pid),
    rssBytes: kb("VmRSS"),
    peakRssBytes: kb("VmHWM"),
  };
}

function syscalls(pid: number): number {
  try {
    const io = readFileSync(`/proc/${pid}/io`, "utf8");
    const n = (k: string) => Number(new RegExp(`^${k}: (\\d+)`, "m").exec(io)?.[1] ?? 0);
    return n("syscr") + n("syscw");
  } catch {
    return 0;
  }
}

function threadCpuMs(pid: number, tid: number): number {
  try {
    return Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, "utf8").split(" ")[0]) / 1e6;
  } catch {
    return 0;
  }
}

function cpuMs(pid: number): number {
  try {
    let ns = 0;
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      try {
        ns += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, "utf8").split(" ")[0]);
      } catch {
        // the thread ended between the listing and the read
      }
    }
    return ns / 1e6;
  } catch {
    // fields 14 and 15 (utime, stime) in clock ticks; the name (field 2) may hold spaces
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(rest[11]) + Number(rest[12])) * 10;
  }
}

/** What a process used over a watched interval. */
export interface ProcCost {
  readonly cpuMs: number;
  readonly mainCpuMs: number;
  readonly syscalls: number;
  readonly maxRssBytes: number;
  readonly peakRssBytes: number;
}

/** Samples several processes now and then, keeping each one's highest RSS. */
export class ProcWatch {
  readonly #pids: Map<string, number>;
  readonly #start = new Map<string, ProcSample>();
  readonly #maxRss = new Map<string, number>();
  #timer: NodeJS.Timeout | undefined;

  constructor(pids: Record<string, number>) {
    this.#pids = new Map(Object.entries(pids));
  }

  /** Takes the starting CPU readings and samples RSS every `everyMs` until {@link stop}. */
  start(everyMs = 50): void {
    for (const [name, pid] of this.#pids) {
      const s = sampleProcess(pid);
      this.#start.set(name, s);
      this.#maxRss.set(name, s.rssBytes);
    }
    this.#timer = setInterval(() => this.#sampleRss(), everyMs);
    this.#timer.unref();
  }

  #sampleRss(): void {
    for (const [name, pid] of this.#pids) {
      try {
        const s = sampleProcess(pid);
        this.#maxRss.set(name, Math.max(this.#maxRss.get(name) ?? 0, s.rssBytes));
      } catch {
        // gone; its last sample stays
      }
    }
  }

  /** CPU ms used since {@link start} and the highest RSS seen, per process. */
  stop(): Record<string, ProcCost> {
    if (this.#timer) clearInterval(this.#timer);
    this.#sampleRss();
    const out: Record<string, ProcCost> = {};
    for (const [name, pid] of this.#pids) {
      const end = sampleProcess(pid);
      const start = this.#start.get(name)!;
      out[name] = {
        cpuMs: end.cpuMs - start.cpuMs,
        mainCpuMs: end.mainCpuMs - start.mainCpuMs,
        syscalls: end.syscalls - start.syscalls,
        maxRssBytes: Math.max(this.#maxRss.get(name) ?? 0, end.rssBytes),
        peakRssBytes: end.peakRssBytes,
      };
    }
    return out;
  }
}
