import type { ChildProcess } from "node:child_process";
import { removeAllTempDirs, removeAllTempDirsSync } from "./temp-dirs.ts";

/** What the registry keeps about one child. */
interface Tracked {
  readonly child: ChildProcess;
  /** The child leads its own process group: signal the group so grandchildren die too. */
  readonly group: boolean;
  readonly exited: Promise<void>;
}

const live = new Map<number, Tracked>();
let hooksInstalled = false;

/**
 * Adds a freshly spawned child to the registry. It leaves the registry by itself when it
 * exits. The first registration installs the process hooks: 'exit' (synchronous SIGKILL
 * of every child, then removal of the kit's temp folders) and SIGINT/SIGTERM/SIGHUP
 * (same, then the signal's default action unless someone else listens for it).
 *
 * @param child a spawned child with a pid (throws otherwise).
 * @param group true when the child was spawned `detached` and leads its process group.
 */
export function registerProcess(child: ChildProcess, group: boolean): void {
  const pid = child.pid;
  if (pid === undefined) throw new Error("cannot register a child process without a pid");
  installHooks();
  const exited = new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once("exit", () => resolve());
  }).then(() => {
    if (live.get(pid)?.child === child) live.delete(pid);
  });
  live.set(pid, { child, group, exited });
}

/**
 * Sends `signal` to a registered child (its whole process group when it leads one).
 * @returns false when the process was already gone.
 */
export function signalProcess(child: ChildProcess, signal: NodeJS.Signals): boolean {
  const pid = child.pid;
  if (pid === undefined || child.exitCode !== null || child.signalCode !== null) return false;
  const tracked = live.get(pid);
  if (tracked?.group === true) {
    try {
      process.kill(-pid, signal);
      return true;
    } catch {
      // the group is gone: fall through to the single process
    }
  }
  return child.kill(signal);
}

/** PIDs of registered children that have not exited yet. */
export function liveProcessIds(): number[] {
  return [...live.keys()];
}

/**
 * Sends SIGKILL to every registered child, synchronously. Safe in a process 'exit'
 * handler. Does not wait for the children to exit: use {@link stopAllProcesses} for that.
 */
export function killAll(): void {
  for (const { child } of live.values()) signalProcess(child, "SIGKILL");
}

/**
 * Kills every child the kit started (SIGKILL), waits until each has exited and been
 * reaped, then removes the temp folders the kit created. Meant for `afterAll` hooks;
 * handles of stopped servers cannot be restarted afterwards.
 */
export async function stopAllProcesses(): Promise<void> {
  const waiting = [...live.values()].map((t) => t.exited);
  killAll();
  await Promise.all(waiting);
  await removeAllTempDirs();
}

function installHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on("exit", () => {
    killAll();
    removeAllTempDirsSync();
  });
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    const onSignal = (): void => {
      killAll();
      removeAllTempDirsSync();
      process.off(signal, onSignal);
      // Listening replaced the default action (exit); restore it unless another
      // listener (a test runner) has taken responsibility for the signal.
      if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
    };
    process.on(signal, onSignal);
  }
}
