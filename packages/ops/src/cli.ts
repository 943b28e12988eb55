import { runCli } from "./program.ts";

// The `jetmesh` entry point: process wiring only. process.exitCode (not exit()) lets stdout drain
// when it is a pipe, as under `nats --translate`.
process.exitCode = await runCli(process.argv.slice(2), {
  stdin: process.stdin,
  out: (t) => process.stdout.write(t),
  err: (t) => process.stderr.write(t),
  env: process.env,
  errIsTTY: process.stderr.isTTY === true,
});
