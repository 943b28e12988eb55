import { Command, CommanderError, InvalidArgumentError, Option } from "commander";
import { defaultServer, openSession, type Session } from "./connect.ts";
import { decodeBody, renderDecoded, toJson } from "./decode.ts";
import { ExitCodes, OpsError, oneLine } from "./errors.ts";
import { readStream } from "./read-stream.ts";
import { readStatus, renderStatus } from "./status.ts";
import { readTrace, renderTrace } from "./trace.ts";
import { viewBlock, viewLine, viewOf } from "./view.ts";
import pkg from "../package.json" with { type: "json" };

/** Where the CLI reads and writes; a test passes its own. */
export interface CliIo {
  readonly stdin: NodeJS.ReadableStream;
  readonly out: (text: string) => void;
  readonly err: (text: string) => void;
  readonly env: NodeJS.ProcessEnv;
}

const positiveInt = (flag: string) => (v: string) => {
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n <= 0)
    throw new InvalidArgumentError(`${flag} must be a positive integer`);
  return n;
};
const isoTime = (v: string) => {
  const ms = Date.parse(v);
  if (!/^\d{4}-\d{2}-\d{2}/.test(v) || Number.isNaN(ms))
    throw new InvalidArgumentError("--since must be an ISO 8601 time, e.g. 2026-11-30T10:00:00Z");
  return new Date(ms);
};

async function readAll(stdin: NodeJS.ReadableStream): Promise<Uint8Array> {
  const chunks: Buffer[] = [];
  for await (const c of stdin) chunks.push(typeof c === "string" ? Buffer.from(c) : (c as Buffer));
  return Buffer.concat(chunks);
}

async function withSession<T>(server: string, run: (s: Session) => Promise<T>): Promise<T> {
  const s = await openSession(server);
  try {
    return await run(s);
  } finally {
    await s.close().catch(() => {});
  }
}

function buildProgram(io: CliIo): Command {
  const server = () =>
    new Option("-s, --server <url>", "NATS server URL").default(
      defaultServer(io.env),
      "$NATS_URL or nats://127.0.0.1:4222",
    );
  const program = new Command()
    .name("jetmesh")
    .version(pkg.version, "--version", "print the version and exit")
    .description(
      "Operators' tools for the jetmesh pipeline: decoded payloads, stream status, a transfer's trace.",
    )
    .exitOverride()
    .configureOutput({ writeOut: io.out, writeErr: io.err })
    .showSuggestionAfterError(false)
    .addHelpText("after", "\nExit status: 0 ok, 1 runtime failure, 2 bad usage.");

  program
    .command("decode")
    .description(
      "Decode one raw message body (MessagePack) from stdin to pretty JSON; for `nats ... --translate 'jetmesh decode'`",
    )
    .action(async () => {
      if ("isTTY" in io.stdin && io.stdin.isTTY)
        throw new OpsError("decode reads a message body on stdin", { exitCode: ExitCodes.Usage });
      const bytes = await readAll(io.stdin);
      if (bytes.length === 0) throw new OpsError("empty body on stdin");
      io.out(`${renderDecoded(decodeBody(bytes))}\n`);
    });

  program
    .command("view")
    .description("Print a stream's messages decoded, with their headers")
    .argument("<stream>", "stream name, e.g. LEDGER")
    .addOption(server())
    .option("--subject <filter>", "only messages on subjects matching this filter")
    .addOption(
      new Option("--seq <n>", "start at this stream sequence")
        .argParser(positiveInt("--seq"))
        .conflicts("since"),
    )
    .addOption(new Option("--since <time>", "start at this ISO 8601 time").argParser(isoTime))
    .addOption(new Option("--last <n>", "only the last N matching messages").argParser(positiveInt("--last")))
    .option("--json", "one JSON object per line", false)
    .action(
      async (
        stream: string,
        o: { server: string; subject?: string; seq?: number; since?: Date; last?: number; json: boolean },
      ) => {
        await withSession(o.server, async ({ js, jsm }) => {
          const msgs = await readStream(js, jsm, stream, {
            ...(o.subject ? { subject: o.subject } : {}),
            ...(o.seq !== undefined ? { fromSeq: o.seq } : {}),
            ...(o.since ? { since: o.since } : {}),
            ...(o.last !== undefined ? { last: o.last } : {}),
          });
          for (const m of msgs) io.out(o.json ? `${viewLine(viewOf(m))}\n` : `${viewBlock(viewOf(m))}\n\n`);
          if (!o.json && msgs.length === 0) io.err(`no messages in ${stream} for that range\n`);
        });
      },
    );

  program
    .command("status")
    .description("Every stream (fill, positions) and every consumer (backlog, oldest unacked age)")
    .addOption(server())
    .option("--json", "print JSON", false)
    .action(async (o: { server: string; json: boolean }) => {
      const status = await withSession(o.server, ({ jsm }) => readStatus(jsm));
      io.out(o.json ? `${toJson(status, 2)}\n` : `${renderStatus(status)}\n`);
    });

  program
    .command("trace")
    .description(
      "The lineage of one transfer read from the streams: every event and DLQ entry, in time order",
    )
    .argument("<transferId>", "the transfer id (every event's correlationId)")
    .addOption(server())
    .option("--json", "print JSON", false)
    .action(async (transferId: string, o: { server: string; json: boolean }) => {
      const trace = await withSession(o.server, ({ js, jsm }) => readTrace(js, jsm, transferId));
      io.out(o.json ? `${toJson(trace, 2)}\n` : `${renderTrace(trace)}\n`);
    });
  return program;
}

/**
 * Runs the CLI on `argv` (without node and script) and resolves with its exit status. Every
 * failure is one line on `io.err`: commander's own for bad usage (status 2), `jetmesh: …` for
 * runtime failures (status 1). Never throws.
 */
export async function runCli(argv: readonly string[], io: CliIo): Promise<number> {
  const program = buildProgram(io);
  try {
    await program.parseAsync([...argv], { from: "user" });
    return ExitCodes.Ok;
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help and version end through exitOverride too; commander has already printed its line.
      if (err.code === "commander.helpDisplayed" || err.code === "commander.version") return ExitCodes.Ok;
      return err.exitCode === 0 ? ExitCodes.Ok : ExitCodes.Usage;
    }
    io.err(`jetmesh: ${oneLine(err)}\n`);
    return err instanceof OpsError ? err.exitCode : ExitCodes.Failure;
  }
}
