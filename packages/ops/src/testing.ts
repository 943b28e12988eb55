// Test support: the `jetmesh` CLI run as an operator runs it, a child process.
import { spawn } from "node:child_process";
import { join } from "node:path";

/**
 * The CLI's bundle (src/cli.ts, what the bin runs through tsx), which scripts/build.mjs builds
 * before every test run (vitest's globalSetup): it starts in about 0.2 s instead of the bin's 1 s.
 */
export const CLI_BUNDLE = join(import.meta.dirname, "..", "dist", "cli.mjs");

/** What one run of the CLI printed and how it exited. */
export interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs `command` with exactly `env`, `input` on stdin; kills it after `timeoutMs` (default 30 s) so no test waits unbounded. */
export function runProcess(
  command: string,
  args: readonly string[],
  o: { input?: Uint8Array | string; env: NodeJS.ProcessEnv; timeoutMs?: number },
): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, [...args], { env: o.env, stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c: Buffer) => {
      stdout += c.toString();
    });
    child.stderr.on("data", (c: Buffer) => {
      stderr += c.toString();
    });
    const timer = setTimeout(() => child.kill("SIGKILL"), o.timeoutMs ?? 30_000);
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.stdin.end(o.input === undefined ? undefined : Buffer.from(o.input));
  });
}

/** Runs `jetmesh …` as a child process; kills it after 30 s so no test waits unbounded. */
export function jetmesh(
  args: readonly string[],
  o: { input?: Uint8Array | string; env?: NodeJS.ProcessEnv } = {},
): Promise<Run> {
  return runProcess(process.execPath, [CLI_BUNDLE, ...args], {
    env: { ...process.env, NATS_URL: "", NATS_NKEY_SEED_FILE: "", PAYOUT_BANK_URL: "", ...o.env },
    ...(o.input !== undefined ? { input: o.input } : {}),
  });
}
