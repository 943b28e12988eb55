import { Command, CommanderError } from "commander";
import { generateStage } from "./generate.ts";
import { NewStageError } from "./plan.ts";

// `pnpm new:stage <name> --consumes <event> --emits <event>`. Exit codes: 0 written, 2 a
// request to change (the message says what), 1 anything else.

const program = new Command()
  .name("new:stage")
  .description(
    "scaffolds services/<name>/: a stage that builds, passes the contract suite and runs in pnpm mesh",
  )
  .argument("<name>", "the stage: lower-case letters, digits and dashes (durable, key prefix, producer)")
  .requiredOption(
    "--consumes <event>",
    "the event type it consumes, one of @jetmesh/contracts (e.g. ledger.posted)",
  )
  .requiredOption(
    "--emits <event>",
    "the event type it emits, <domain>.<event> (e.g. notifications.large-posting)",
  )
  .option(
    "--stream <NAME>",
    "its output stream when the contracts do not have it (default: the domain in capitals)",
  )
  .option("--add-contract", "add the missing contract entry to packages/contracts/src/team-streams.ts", false)
  .option(
    "--no-install",
    "skip `pnpm install --offline` (which links the new package and updates the lockfile)",
  )
  .exitOverride()
  .configureOutput({ writeErr: (s) => process.stderr.write(s) })
  .action(
    (
      name: string,
      o: { consumes: string; emits: string; stream?: string; addContract: boolean; install: boolean },
    ) => {
      generateStage({ name, ...o, log: (line) => console.log(line) });
      console.log(
        `next: pnpm --filter @jetmesh/${name} test, then pnpm mesh (it starts ${name} with the others); see the README's tutorial`,
      );
    },
  );

try {
  program.parse();
} catch (err) {
  if (err instanceof CommanderError) process.exit(err.exitCode === 0 ? 0 : 2);
  if (err instanceof NewStageError) {
    console.error(`new:stage: ${err.message}`);
    process.exit(2);
  }
  console.error(`new:stage: ${(err as Error).message}`);
  process.exit(1);
}
