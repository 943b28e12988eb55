import type { ChildProcess } from "node:child_process";
import { spawn } from "node:child_process";
import { setTimeout as sleep } from "node:timers/promises";
import type { LineBuffer } from "./line-buffer.ts";
import { createLineBuffer } from "./line-buffer.ts";
import { registerProcess, signalProcess } from "./processes.ts";

/** How a child process ended: exit code, or the signal that killed it. */
export interface ExitResult {
  /** Exit code, or null when a signal ended the process. */
  code: number | null;
  /** Name of the signal that ended the process (e.g. "SIGKILL"), or null. */
  signal: string | null;
}

/** Options of {@link spawnProcess}. */
export interface SpawnProcessOptions {
  /** Label used in errors and logs. */
  name: string;
  /** Executable (resolved on PATH). */
  command: string;
  /** Arguments, passed as-is (no shell). */
  args: string[];
  /** Variables added to (and overriding) the parent's environment. */
  env?: Record<string, string>;
  /** Working directory (default: the parent's). */
  cwd?: string;
  /** Lines of combined stdout+stderr kept (default 2000). */
  maxLines?: number;
}

/** A running (or finished) child process started by {@link spawnProcess}. */
export interface ChildHandle {
  /** The label given at spawn. */
  readonly name: string;
  /** OS process id; the child also leads a process group with this id. */
  readonly pid: number;
  /** Settles once, when the process exits; never rejects. */
  readonly exited: Promise<ExitResult>;
  /**
   * Sends `signal` (default SIGKILL: a crash) to the child's process group, so anything
   * it spawned dies too, and waits for the exit. On an exited child it only returns the result.
   */
  kill(signal?: NodeJS.Signals): Promise<ExitResult>;
  /**
   * Graceful stop: SIGTERM, then SIGKILL when the process is still alive after `graceMs`
   * (default 5 000). Resolves with the exit result.
   */
  stop(graceMs?: number): Promise<ExitResult>;
  /** The last lines of stdout and stderr, interleaved in arrival order, oldest first. */
  lines(): string[];
  /**
   * Resolves with the first line (already printed or still to come) matching `re`.
   * @throws when `timeoutMs` (default 10 000) passes or the process exits first; the
   *   error carries the last output lines.
   */
  waitForLine(re: RegExp, timeoutMs?: number): Promise<string>;
  /** True until the process has exited. */
  isRunning(): boolean;
}

/**
 * Spawns a process (no shell, stdin closed, stdout and stderr captured) in its own process
 * group and registers it with the kit's process registry, so it is killed when the test
 * process ends. Used to run a service as deployed (`node services/x/dist/main.mjs`, see
 * `bundleOf`) that a test then kills at a named crash point.
 *
 * @throws when the process cannot be spawned (e.g. ENOENT for an unknown command).
 */
export function spawnProcess(opts: SpawnProcessOptions): Promise<ChildHandle> {
  const child = spawn(opts.command, opts.args, {
    cwd: opts.cwd,
    env: { ...process.env, ...opts.env },
    stdio: ["ignore", "pipe", "pipe"],
    // Own process group: kill() reaches grandchildren (npx, shells) and a Ctrl-C in the
    // terminal does not race the kit's own shutdown.
    detached: true,
  });
  return new Promise((resolve, reject) => {
    child.on("error", (err) =>
      reject(new Error(`${opts.name}: cannot spawn ${opts.command}`, { cause: err })),
    );
    child.once("spawn", () => {
      registerProcess(child, true);
      resolve(new SpawnedChild(opts.name, child, opts.maxLines ?? 2000));
    });
  });
}

class SpawnedChild implements ChildHandle {
  readonly name: string;
  readonly pid: number;
  readonly exited: Promise<ExitResult>;
  readonly #child: ChildProcess;
  readonly #buffer: LineBuffer;
  #running = true;
  /** stdout and stderr are closed: no more lines will come. */
  #closed = false;

  constructor(name: string, child: ChildProcess, maxLines: number) {
    this.name = name;
    this.#child = child;
    this.pid = child.pid as number;
    const buffer = createLineBuffer(maxLines);
    this.#buffer = buffer;
    child.stdout?.on("data", (chunk: Buffer) => buffer.push(chunk));
    child.stderr?.on("data", (chunk: Buffer) => buffer.push(chunk));
    this.exited = new Promise((resolve) => {
      child.once("exit", (code, signal) => {
        this.#running = false;
        resolve({ code, signal });
      });
    });
    // The exit event can come before the pipes drain; flush once they are closed.
    child.once("close", () => {
      this.#closed = true;
      buffer.flush();
    });
  }

  kill(signal: NodeJS.Signals = "SIGKILL"): Promise<ExitResult> {
    if (this.#running) signalProcess(this.#child, signal);
    return this.exited;
  }

  async stop(graceMs = 5_000): Promise<ExitResult> {
    if (!this.#running) return this.exited;
    const graceful = this.kill("SIGTERM");
    const cancel = new AbortController();
    const timer = sleep(graceMs, undefined, { signal: cancel.signal }).catch(() => undefined);
    const result = await Promise.race([graceful, timer]);
    cancel.abort();
    return result ?? this.kill("SIGKILL");
  }

  lines(): string[] {
    return this.#buffer.lines();
  }

  isRunning(): boolean {
    return this.#running;
  }

  waitForLine(re: RegExp, timeoutMs = 10_000): Promise<string> {
    const test = (line: string): boolean => {
      re.lastIndex = 0; // a /g or /y regexp keeps state between test() calls
      return re.test(line);
    };
    const seen = this.#buffer.lines().find(test);
    if (seen !== undefined) return Promise.resolve(seen);
    if (this.#closed) return Promise.reject(this.#noLineError(re, "process exited"));
    return new Promise((resolve, reject) => {
      const fail = (why: string): void => {
        cleanup();
        reject(this.#noLineError(re, why));
      };
      const off = this.#buffer.onLine((line) => {
        if (!test(line)) return;
        cleanup();
        resolve(line);
      });
      const timer = setTimeout(() => fail(`timed out after ${timeoutMs} ms`), timeoutMs);
      let done = false;
      const cleanup = (): void => {
        done = true;
        off();
        clearTimeout(timer);
      };
      this.#child.once("close", () => {
        if (!done) fail("process exited");
      });
    });
  }

  #noLineError(re: RegExp, why: string): Error {
    const tail = this.#buffer.lines().slice(-20).join("\n");
    return new Error(`${this.name}: ${why} waiting for a line matching ${re}\n--- last output ---\n${tail}`);
  }
}

/**
 * Polls `probe` every 25 ms until it answers undefined (ready). A probe that throws or
 * answers a reason is not ready yet; the last reason is kept for the error.
 * @throws the error `fail` makes when the child exits first or `timeoutMs` passes.
 */
export async function waitUntilReady(
  child: ChildHandle,
  timeoutMs: number,
  probe: () => Promise<string | undefined>,
  fail: (why: string) => Error,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let problem = "no answer yet";
  while (Date.now() < deadline) {
    if (!child.isRunning()) {
      const { code, signal } = await child.exited;
      throw fail(`exited during start-up (code ${code}, signal ${signal})`);
    }
    try {
      const why = await probe();
      if (why === undefined) return;
      problem = why;
    } catch (err) {
      problem = err instanceof Error ? err.message : String(err);
    }
    await sleep(25);
  }
  throw fail(`not ready within ${timeoutMs} ms (${problem})`);
}
