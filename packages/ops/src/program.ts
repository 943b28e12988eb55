import { createInterface } from "node:readline";
import { FindingKinds, StreamNames } from "@jetmesh/contracts";
import { createLedgerStore } from "@jetmesh/ledger/store";
import { Command, CommanderError, InvalidArgumentError, Option } from "commander";
import { actorOf, listAudit, recordAudit, renderAudit, requireAudit } from "./audit.ts";
import { defaultServer, openSession, type Session, type SessionOptions } from "./connect.ts";
import { decodeBody, renderDecoded, toJson } from "./decode.ts";
import { getParked, listParked, renderListing } from "./dlq.ts";
import {
  type ActionResult,
  checkSelection,
  dropParked,
  GoodOutcomes,
  type Parked,
  PAYOUT_STAGE,
  renderResults,
  replayParked,
  type Selection,
  selectParked,
} from "./dlq-actions.ts";
import { ExitCodes, OpsError, oneLine } from "./errors.ts";
import { readStream } from "./read-stream.ts";
import { checkProjection, openRedis, renderCheck, repairProjection } from "./rebuild.ts";
import { applyRewind, planRewind, type RewindFrom, renderPlan } from "./rewind.ts";
import { listFindings, renderFindings } from "./findings.ts";
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
  /** stderr is a terminal: long commands show a progress line there. */
  readonly errIsTTY?: boolean;
}

const positiveInt = (flag: string) => (v: string) => {
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n <= 0)
    throw new InvalidArgumentError(`${flag} must be a positive integer`);
  return n;
};
/** Collects a variadic argument of positive integers. */
const positiveInts = (what: string) => (v: string, previous: number[] | undefined) => [
  ...(previous ?? []),
  positiveInt(what)(v),
];
/** Collects `--header "Name: value"` flags into a map of lower-cased names. */
const headerFlags = (v: string, previous: Map<string, string> | undefined) => {
  const at = v.indexOf(":");
  if (at <= 0) throw new InvalidArgumentError('--header must be "Name: value"');
  return new Map(previous).set(v.slice(0, at).trim().toLowerCase(), v.slice(at + 1).trim());
};
const stageName = (v: string) => {
  if (!/^[a-z][a-z0-9-]{0,31}$/.test(v))
    throw new InvalidArgumentError("--stage must be a stage name, e.g. payout");
  return v;
};
const nonEmpty = (flag: string) => (v: string) => {
  if (v.trim() === "") throw new InvalidArgumentError(`${flag} must not be empty`);
  return v;
};
const httpUrl = (v: string) => {
  try {
    const u = new URL(v);
    if (u.protocol === "http:" || u.protocol === "https:") return v;
  } catch {
    // below
  }
  throw new InvalidArgumentError("--bank-url must be an http(s) URL, e.g. http://127.0.0.1:9090");
};

/** Reads one line from stdin (empty at its end): the answer to a confirmation. */
async function readLine(stdin: NodeJS.ReadableStream): Promise<string> {
  const rl = createInterface({ input: stdin, terminal: false });
  try {
    for await (const line of rl) return line;
    return "";
  } finally {
    rl.close();
  }
}

interface ActionOptions {
  server: string;
  stage?: string;
  reason?: string;
  all?: boolean;
  actor?: string;
}

const selectionOf = (seqs: number[] | undefined, o: ActionOptions): Selection => ({
  ...(seqs?.length ? { seqs } : {}),
  ...(o.stage !== undefined ? { stage: o.stage } : {}),
  ...(o.reason !== undefined ? { reason: o.reason } : {}),
  ...(o.all ? { all: true } : {}),
});

/** Fails the command (exit 1) when an entry did not reach a good end; the lines above say why. */
function failUnlessAllGood(results: readonly ActionResult[], verb: string): void {
  const bad = results.filter((r) => !GoodOutcomes.has(r.outcome));
  if (bad.length)
    throw new OpsError(
      `${bad.length} of ${results.length} parked messages not ${verb}: ${bad.map((r) => `#${r.dlqSeq} ${r.outcome}`).join(", ")}`,
    );
}

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

async function sessionDo<T>(
  server: string,
  run: (s: Session) => Promise<T>,
  o: SessionOptions = {},
): Promise<T> {
  const s = await openSession(server, o);
  try {
    return await run(s);
  } finally {
    await s.close().catch(() => {});
  }
}

/** The `--namespace` a command was given (the root option, recorded before the action runs). */
const namespaceGiven = new WeakMap<CliIo, string>();

/**
 * Runs a command's work in a session; the operators' NATS user logs in with its NKey seed, as
 * the services do. Streams, subjects and buckets are named in the namespace of `--namespace`
 * or JETMESH_NAMESPACE (production's without).
 */
function sessionsOf(io: CliIo) {
  const nkeySeedFile = io.env.NATS_NKEY_SEED_FILE?.trim() || undefined;
  return <T>(server: string, run: (s: Session) => Promise<T>) => {
    const namespace = namespaceGiven.get(io) ?? io.env.JETMESH_NAMESPACE?.trim() ?? "";
    return sessionDo(server, run, { ...(nkeySeedFile ? { nkeySeedFile } : {}), namespace });
  };
}

function buildProgram(io: CliIo): Command {
  const withSession = sessionsOf(io);
  const server = () =>
    new Option("-s, --server <url>", "NATS server URL").default(
      defaultServer(io.env),
      "$NATS_URL or nats://127.0.0.1:4222",
    );
  const program = new Command()
    .name("jetmesh")
    .version(pkg.version, "--version", "print the version and exit")
    .description(
      "Operators' tools for the jetmesh pipeline: decoded payloads, stream status, a transfer's trace, the DLQ.",
    )
    .exitOverride()
    .configureOutput({ writeOut: io.out, writeErr: io.err })
    .showSuggestionAfterError(false)
    .addHelpText("after", "\nExit status: 0 ok, 1 runtime failure, 2 bad usage.")
    .option(
      "--namespace <ns>",
      "dev isolation: the namespace whose streams, buckets and Redis keys the command names (default $JETMESH_NAMESPACE, else none)",
    )
    .hook("preAction", (root) => {
      const ns = root.opts<{ namespace?: string }>().namespace;
      if (ns !== undefined) namespaceGiven.set(io, ns);
    });

  program
    .command("decode")
    .description(
      "Decode one raw message body (MessagePack) from stdin to pretty JSON; for `nats ... --translate 'jetmesh decode'`",
    )
    .addOption(
      new Option(
        "-H, --header <header>",
        'a header of the message, "Name: value", read as the stages read it (e.g. Jetmesh-Client-Id); repeatable',
      ).argParser(headerFlags),
    )
    .action(async (o: { header?: Map<string, string> }) => {
      if ("isTTY" in io.stdin && io.stdin.isTTY)
        throw new OpsError("decode reads a message body on stdin", { exitCode: ExitCodes.Usage });
      const bytes = await readAll(io.stdin);
      if (bytes.length === 0) throw new OpsError("empty body on stdin");
      const headers = o.header ?? new Map<string, string>();
      io.out(`${renderDecoded(decodeBody(bytes, { get: (name) => headers.get(name.toLowerCase()) }))}\n`);
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
        await withSession(o.server, async ({ js, jsm, names }) => {
          // A contract name (`LEDGER`) is the namespace's stream; a server name is taken as given.
          const msgs = await readStream(
            js,
            jsm,
            names.streamOf(stream) === undefined ? names.stream(stream) : stream,
            {
              ...(o.subject ? { subject: o.subject } : {}),
              ...(o.seq !== undefined ? { fromSeq: o.seq } : {}),
              ...(o.since ? { since: o.since } : {}),
              ...(o.last !== undefined ? { last: o.last } : {}),
            },
          );
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
      const status = await withSession(o.server, ({ jsm, names }) => readStatus(jsm, Date.now(), names));
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
      const trace = await withSession(o.server, ({ js, jsm, names }) =>
        readTrace(js, jsm, transferId, names),
      );
      io.out(o.json ? `${toJson(trace, 2)}\n` : `${renderTrace(trace)}\n`);
    });
  addDlq(program, io, server);
  addRebuild(program, io, server);
  addRewind(program, io, server);
  program
    .command("findings")
    .description(
      "The reconciler's findings on RECONCILE, each in its current state: kind, state, age, what it is about, summary, the command to look further",
    )
    .option("--open", "only findings still open", false)
    .addOption(new Option("--kind <kind>", "only this kind").choices(Object.values(FindingKinds) as string[]))
    .option("--json", "print JSON", false)
    .addOption(server())
    .action(async (o: { open: boolean; kind?: string; json: boolean; server: string }) => {
      const listing = await withSession(o.server, ({ js, jsm, names }) =>
        listFindings(js, jsm, { open: o.open, ...(o.kind ? { kind: o.kind } : {}) }, names),
      );
      io.out(o.json ? `${toJson(listing, 2)}\n` : `${renderFindings(listing)}\n`);
    });
  program
    .command("audit")
    .description(
      "Every operator action recorded on AUDIT (dlq replay and drop, rebuild --repair, rewind): who, what, when",
    )
    .addOption(
      new Option("--action <action>", "only this action").choices([
        "replay",
        "drop",
        "rebuild-repair",
        "rewind",
      ]),
    )
    .addOption(new Option("--since <time>", "only actions at or after this ISO 8601 time").argParser(isoTime))
    .option("--json", "print JSON", false)
    .addOption(server())
    .action(async (o: { action?: string; since?: Date; json: boolean; server: string }) => {
      const listing = await withSession(o.server, ({ js, jsm, names }) =>
        listAudit(
          js,
          jsm,
          {
            ...(o.action ? { action: o.action } : {}),
            ...(o.since ? { since: o.since } : {}),
          },
          names,
        ),
      );
      io.out(o.json ? `${toJson(listing, 2)}\n` : `${renderAudit(listing)}\n`);
    });
  return program;
}

function addDlq(program: Command, io: CliIo, server: () => Option): void {
  const withSession = sessionsOf(io);
  /**
   * What replay and drop share: the selection checked, AUDIT required and the parked messages
   * selected (none: said, nothing done) before `act`; its results printed and recorded on
   * AUDIT after, and the command fails unless every one reached a good end.
   */
  const actOnParked = (
    seqs: number[] | undefined,
    o: ActionOptions,
    action: "replay" | "drop",
    dryRun: boolean,
    act: (s: Session, parked: Parked[]) => Promise<ActionResult[]>,
  ) => {
    const selection = selectionOf(seqs, o);
    checkSelection(selection);
    const done = action === "replay" ? "replayed" : "dropped";
    return withSession(o.server, async (session) => {
      const { js, jsm, names } = session;
      await requireAudit(jsm, names);
      const parked = await selectParked(js, jsm, selection, names);
      if (parked.length === 0) {
        io.err(`no parked messages match; nothing ${done}\n`);
        return;
      }
      const results = await act(session, parked);
      io.out(`${renderResults(results)}\n`);
      await recordAudit(
        js,
        {
          action,
          actor: actorOf(o.actor, io.env),
          dryRun,
          selection,
          seqs: results.map((r) => r.dlqSeq),
          entries: results,
        },
        names,
      );
      failUnlessAllGood(results, dryRun ? "replayable" : done);
    });
  };
  const dlq = program
    .command("dlq")
    .description("The parked messages in the DLQ: list, show, replay to their stage once, drop");
  const selectBy = (c: Command) =>
    c
      .addOption(new Option("--stage <stage>", "the parked messages of this stage").argParser(stageName))
      .addOption(
        new Option("--reason <text>", "the parked messages whose reason contains this text").argParser(
          nonEmpty("--reason"),
        ),
      )
      .option("--all", "every parked message", false)
      .addOption(new Option("--actor <name>", "who acts, for the AUDIT record (default: $USER)"))
      .addOption(server());

  dlq
    .command("ls")
    .description(
      "Parked messages: DLQ seq, stage, origin, type, ids, error, deliveries, age, reason; counts per stage and reason",
    )
    .addOption(server())
    .addOption(new Option("--stage <stage>", "only this stage's").argParser(stageName))
    .addOption(
      new Option("--reason <text>", "only those whose reason contains this text").argParser(
        nonEmpty("--reason"),
      ),
    )
    .option("--json", "print JSON", false)
    .action(async (o: { server: string; stage?: string; reason?: string; json: boolean }) => {
      const listing = await withSession(o.server, ({ js, jsm, names }) =>
        listParked(
          js,
          jsm,
          {
            ...(o.stage !== undefined ? { stage: o.stage } : {}),
            ...(o.reason !== undefined ? { reason: o.reason } : {}),
          },
          names,
        ),
      );
      io.out(o.json ? `${toJson(listing, 2)}\n` : `${renderListing(listing)}\n`);
    });

  dlq
    .command("show")
    .description("One parked message decoded: its headers and its JSON body")
    .argument("<dlqSeq>", "its sequence in the DLQ stream", positiveInt("<dlqSeq>"))
    .addOption(server())
    .option("--json", "one JSON object", false)
    .action(async (seq: number, o: { server: string; json: boolean }) => {
      const msg = await withSession(o.server, ({ jsm, names }) => getParked(jsm, seq, names));
      const v = viewOf(msg);
      io.out(o.json ? `${viewLine(v)}\n` : `${viewBlock(v)}\n`);
    });

  selectBy(
    dlq
      .command("replay")
      .description(
        "Send parked messages back to their stage to be processed once (a payout only after asking the bank), after confirming on stdin; each is removed from the DLQ once its replay is stored; recorded on AUDIT",
      )
      .argument("[dlqSeq...]", "DLQ sequences", positiveInts("<dlqSeq>")),
  )
    .option("--dry-run", "say what would be replayed; change nothing (still recorded on AUDIT)", false)
    .option("-y, --yes", "do not ask for confirmation", false)
    .addOption(
      new Option(
        "--bank-url <url>",
        "the bank asked about a payout's key before it is replayed (default: $PAYOUT_BANK_URL)",
      )
        .argParser(httpUrl)
        .default(io.env.PAYOUT_BANK_URL?.trim() || undefined),
    )
    .action(
      (seqs: number[] | undefined, o: ActionOptions & { dryRun: boolean; yes: boolean; bankUrl?: string }) =>
        actOnParked(seqs, o, "replay", o.dryRun, async ({ js, jsm, names }, parked) => {
          if (!o.bankUrl && parked.some((p) => p.entry.stage === PAYOUT_STAGE))
            throw new OpsError(
              "replaying a payout needs the bank's word on its key first: give --bank-url or set $PAYOUT_BANK_URL; nothing replayed",
              { exitCode: ExitCodes.Usage },
            );
          if (!o.dryRun && !o.yes && !(await confirm(io, `replay ${countOf(parked)} to their stage?`)))
            throw new OpsError("not confirmed; nothing replayed");
          return replayParked(js, jsm, parked, {
            dryRun: o.dryRun,
            ...(o.bankUrl ? { bankUrl: o.bankUrl } : {}),
            names,
          });
        }),
    );

  selectBy(
    dlq
      .command("drop")
      .description("Delete parked messages from the DLQ, after confirming on stdin; recorded on AUDIT")
      .argument("[dlqSeq...]", "DLQ sequences", positiveInts("<dlqSeq>")),
  )
    .option("-y, --yes", "do not ask for confirmation", false)
    .action((seqs: number[] | undefined, o: ActionOptions & { yes: boolean }) =>
      actOnParked(seqs, o, "drop", false, async ({ jsm, names }, parked) => {
        if (!o.yes && !(await confirm(io, `drop ${countOf(parked)} for good?`)))
          throw new OpsError("not confirmed; nothing dropped");
        return dropParked(jsm, parked, names);
      }),
    );
}

/**
 * A progress reporter for long folds: one line on stderr rewritten in place on a terminal, a
 * line every 2 s otherwise (only with --progress); nothing when neither.
 */
function progressOf(io: CliIo, wanted: boolean): ((seq: number, lastSeq: number) => void) | undefined {
  if (!wanted && !io.errIsTTY) return undefined;
  const every = io.errIsTTY ? 200 : 2000;
  let shown = 0;
  return (seq, lastSeq) => {
    const now = Date.now();
    if (now - shown < every && seq < lastSeq) return;
    shown = now;
    const pct = lastSeq > 0 ? Math.floor((100 * seq) / lastSeq) : 100;
    io.err(
      `${io.errIsTTY ? "\r" : ""}folding LEDGER: seq ${seq} of ${lastSeq} (${pct}%)${io.errIsTTY ? "" : "\n"}`,
    );
    if (io.errIsTTY && seq >= lastSeq) io.err("\n");
  };
}

function addRebuild(program: Command, io: CliIo, server: () => Option): void {
  const withSession = sessionsOf(io);
  program
    .command("rebuild")
    .description(
      "Fold LEDGER into a scratch projection and compare it with the live Redis one (I4); --repair writes the fold over the live one through the ledger's restore lock; recorded on AUDIT",
    )
    .addOption(server())
    .addOption(
      new Option("--redis <url>", "the ledger projection's Redis").default(
        io.env.REDIS_URL?.trim() || "redis://127.0.0.1:6379",
        "$REDIS_URL or redis://127.0.0.1:6379",
      ),
    )
    .addOption(
      new Option("--check", "compare only (the default); exit 1 on a difference").conflicts("repair"),
    )
    .option("--repair", "bring the live projection to the fold, safely while the ledger runs", false)
    .option("--progress", "print progress on stderr even when it is not a terminal", false)
    .addOption(
      new Option(
        "--settle-ms <ms>",
        "pause before a difference is confirmed (a running ledger trails the log)",
      )
        .argParser(positiveInt("--settle-ms"))
        .default(1000),
    )
    .addOption(new Option("--actor <name>", "who acts, for the AUDIT record (default: $USER)"))
    .option("--json", "print JSON", false)
    .action(
      async (o: {
        server: string;
        redis: string;
        repair: boolean;
        progress: boolean;
        settleMs: number;
        actor?: string;
        json: boolean;
      }) => {
        await withSession(o.server, async ({ js, jsm, names }) => {
          if (o.repair) await requireAudit(jsm, names);
          const redis = await openRedis(o.redis, io.env, names);
          try {
            const onProgress = progressOf(io, o.progress);
            const opts = {
              js,
              jsm,
              stream: names.stream(StreamNames.Ledger),
              store: createLedgerStore(redis),
              settleMs: o.settleMs,
              ...(onProgress ? { onProgress } : {}),
            };
            if (!o.repair) {
              const check = await checkProjection(opts);
              io.out(o.json ? `${toJson(check, 2)}\n` : `${renderCheck(check)}\n`);
              if (check.differences.length)
                throw new OpsError(`the projection differs from the fold of ${check.stream}`);
              return;
            }
            const r = await repairProjection(opts);
            if (o.json) io.out(`${toJson(r, 2)}\n`);
            else {
              io.out(`before:\n${renderCheck(r.before)}\n`);
              io.out(
                r.outcome === "repaired"
                  ? `repaired: the projection was restored from the fold at seq ${r.restoredSeq}\nafter:\n${renderCheck(r.after)}\n`
                  : "in sync: nothing repaired\n",
              );
            }
            await recordAudit(
              js,
              {
                action: "rebuild-repair",
                actor: actorOf(o.actor, io.env),
                dryRun: false,
                stream: r.before.stream,
                outcome: r.outcome,
                foldSeq: r.before.foldSeq,
                appliedSeqBefore: r.before.appliedSeq,
                restoredSeq: r.restoredSeq,
                differences: r.before.differences.slice(0, 100),
                differenceCount: r.before.differences.length,
                remaining: r.after.differences.slice(0, 100),
              },
              names,
            );
            if (r.after.differences.length)
              throw new OpsError(
                `the projection still differs after the repair (${r.after.differences.length})`,
              );
          } finally {
            redis.disconnect();
          }
        });
      },
    );
}

/** `--from`: a positive stream sequence, or an ISO 8601 time. */
const rewindFrom = (v: string): RewindFrom => {
  if (/^\d+$/.test(v)) return { seq: positiveInt("--from")(v) };
  const ms = Date.parse(v);
  if (!/^\d{4}-\d{2}-\d{2}/.test(v) || Number.isNaN(ms))
    throw new InvalidArgumentError(
      "--from must be a stream sequence or an ISO 8601 time, e.g. 120 or 2026-11-30T10:00:00Z",
    );
  return { time: new Date(ms) };
};
const partitionId = (v: string) => {
  if (!/^[A-Za-z0-9_-]{1,32}$/.test(v))
    throw new InvalidArgumentError("--partition must be a partition, e.g. 07");
  return v;
};

/** Asks on stderr, reads the answer on stdin; true only for y or yes. */
async function confirm(io: CliIo, question: string): Promise<boolean> {
  io.err(`${question} [y/N] `);
  const answer = (await readLine(io.stdin)).trim().toLowerCase();
  // A terminal echoed the answer and its newline; from a pipe, end the prompt's line.
  if (!("isTTY" in io.stdin && io.stdin.isTTY)) io.err("\n");
  return answer === "y" || answer === "yes";
}

/** "2 parked messages (#4, #5)": what a confirmation asks about. */
function countOf(parked: readonly Parked[]): string {
  const which = parked.map((p) => `#${p.entry.dlqSeq}`).join(", ");
  return `${parked.length} parked message${parked.length === 1 ? "" : "s"} (${which})`;
}

function addRewind(program: Command, io: CliIo, server: () => Option): void {
  const withSession = sessionsOf(io);
  program
    .command("rewind")
    .description(
      "Move a stage's durable consumer back so it reprocesses its input from a sequence or time; effects stay guarded by its idempotency keys; plan first, confirmation, recorded on AUDIT",
    )
    .argument("<stage>", "the stage (its durable consumer has its name)", stageName)
    .requiredOption("--from <seq|time>", "first stream sequence, or ISO 8601 time, to reprocess", rewindFrom)
    .addOption(new Option("--stream <name>", "the input stream, when the stage consumes several"))
    .addOption(
      new Option("--partition <p>", "start at this partition's first message from there").argParser(
        partitionId,
      ),
    )
    .option("--dry-run", "print the plan; change nothing (still recorded on AUDIT)", false)
    .option("-y, --yes", "do not ask for confirmation", false)
    .addOption(new Option("--actor <name>", "who acts, for the AUDIT record (default: $USER)"))
    .option("--json", "print the plan as JSON", false)
    .addOption(server())
    .action(
      async (
        stage: string,
        o: {
          from: RewindFrom;
          stream?: string;
          partition?: string;
          dryRun: boolean;
          yes: boolean;
          actor?: string;
          json: boolean;
          server: string;
        },
      ) => {
        await withSession(o.server, async ({ js, jsm, names }) => {
          await requireAudit(jsm, names);
          const plan = await planRewind(js, jsm, {
            stage,
            names,
            from: o.from,
            ...(o.stream ? { stream: o.stream } : {}),
            ...(o.partition !== undefined ? { partition: o.partition } : {}),
          });
          io.out(o.json ? `${toJson(plan, 2)}\n` : `${renderPlan(plan, { dryRun: o.dryRun })}\n`);
          const audit = (dryRun: boolean) =>
            recordAudit(
              js,
              {
                action: "rewind",
                actor: actorOf(o.actor, io.env),
                dryRun,
                stage,
                stream: plan.stream,
                consumer: plan.consumer,
                fromSeq: plan.fromSeq ?? 0,
                filter: plan.filter ? [plan.filter] : [],
                messages: plan.messages,
                previousAckFloor: plan.ackFloor,
              },
              names,
            );
          if (plan.fromSeq === null) {
            io.err("nothing to reprocess; nothing changed\n");
            return;
          }
          if (o.dryRun) {
            await audit(true);
            return;
          }
          if (
            !o.yes &&
            !(await confirm(io, `rewind ${plan.consumer} on ${plan.stream} to seq ${plan.fromSeq}?`))
          )
            throw new OpsError("not confirmed; nothing changed");
          const created = await applyRewind(js, jsm, plan, names);
          (o.json ? io.err : io.out)(
            `rewound: ${created.name} on ${created.stream_name} delivers again from seq ${plan.fromSeq} (${created.num_pending} pending)\n`,
          );
          await audit(false);
        });
      },
    );
}

/** What parsing a command line found, without running it: `ok`, or commander's one-line error. */
export interface ParseCheck {
  readonly ok: boolean;
  readonly error?: string;
}

class ParsedOnly extends Error {}

/**
 * Parses `argv` as `jetmesh` would (commands, options, value checks) and stops before the
 * command runs: nothing connects. For tests that hold documented commands to the CLI.
 */
export async function parseCli(argv: readonly string[]): Promise<ParseCheck> {
  let error = "";
  const io: CliIo = {
    stdin: process.stdin,
    out: () => {},
    err: (t) => {
      error += t;
    },
    env: {},
  };
  const program = buildProgram(io).hook("preAction", () => {
    throw new ParsedOnly();
  });
  try {
    await program.parseAsync([...argv], { from: "user" });
    return { ok: false, error: "the command ran: it has no action to stop at" };
  } catch (err) {
    if (err instanceof ParsedOnly) return { ok: true };
    if (
      err instanceof CommanderError &&
      (err.code === "commander.helpDisplayed" || err.code === "commander.help")
    )
      return { ok: true };
    return { ok: false, error: error.trim() || oneLine(err) };
  }
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
