import {
  Headers,
  type Names,
  namesFor,
  REPLAY_MAX_AGE_MS,
  replayDurable,
  replaySubject,
  StreamNames,
} from "@jetmesh/contracts";
import type { JetStreamClient, JetStreamManager } from "@nats-io/jetstream";
import { headers as natsHeaders } from "@nats-io/transport-node";
import type { AuditedEntry } from "./audit.ts";
import { askBank, type BankKeyStatus, payoutBankKey } from "./bank-status.ts";
import { type DlqEntry, entryOf, getParked, readParked } from "./dlq.ts";
import { ExitCodes, OpsError, oneLine } from "./errors.ts";
import { type StoredMessage, streamInfo } from "./read-stream.ts";

/** Which parked messages an action takes: sequences, or a filter, or all of them. */
export interface Selection {
  readonly seqs?: readonly number[];
  readonly stage?: string;
  readonly reason?: string;
  readonly all?: boolean;
}

/** A parked message and its raw form. */
export interface Parked {
  readonly entry: DlqEntry;
  readonly msg: StoredMessage;
}

/** The stage whose replays need the bank's word first. */
export const PAYOUT_STAGE = "payout";

/**
 * Checks that exactly one way of choosing was given: sequences, or `--stage`/`--reason`
 * (together they narrow), or `--all`.
 * @throws OpsError (exit 2) otherwise.
 */
export function checkSelection(sel: Selection): void {
  const ways = [
    (sel.seqs?.length ?? 0) > 0,
    sel.stage !== undefined || sel.reason !== undefined,
    sel.all === true,
  ].filter(Boolean).length;
  if (ways === 0)
    throw new OpsError("say which parked messages: DLQ sequences, --stage, --reason or --all", {
      exitCode: ExitCodes.Usage,
    });
  if (ways > 1)
    throw new OpsError("choose by DLQ sequences, by --stage/--reason, or --all: not several", {
      exitCode: ExitCodes.Usage,
    });
}

/**
 * The parked messages a selection names. Every sequence given must be in the DLQ: one that is
 * not fails the whole command before anything is done.
 * @throws OpsError (exit 1) naming the first sequence not in the DLQ.
 */
export async function selectParked(
  js: JetStreamClient,
  jsm: JetStreamManager,
  sel: Selection,
  names: Names = namesFor(),
): Promise<Parked[]> {
  if (sel.seqs?.length) {
    const out: Parked[] = [];
    for (const seq of [...new Set(sel.seqs)]) {
      const msg = await getParked(jsm, seq, names);
      out.push({ entry: entryOf(msg), msg });
    }
    return out;
  }
  return readParked(
    js,
    jsm,
    {
      ...(sel.stage !== undefined ? { stage: sel.stage } : {}),
      ...(sel.reason !== undefined ? { reason: sel.reason } : {}),
    },
    names,
  );
}

/**
 * The replay's Nats-Msg-Id, derived from the DLQ entry (its sequence, and where it came from):
 * replaying one entry twice within REPLAY's duplicate window stores it once.
 */
export function replayMsgId(e: DlqEntry): string {
  return `replay:DLQ:${e.dlqSeq}:${e.stage}:${e.originStream}:${e.originSeq}`;
}

const audited = (e: DlqEntry, outcome: string, detail: string): AuditedEntry => ({
  dlqSeq: e.dlqSeq,
  stage: e.stage,
  originStream: e.originStream,
  originSeq: e.originSeq,
  eventId: e.eventId,
  transferId: e.transferId,
  outcome,
  detail,
});

/** What a replay did to one entry; `replayed`, `would-replay` and `dropped` are the good ends. */
export interface ActionResult extends AuditedEntry {
  /** Where the replay was stored. */
  readonly replay?: { readonly stream: string; readonly seq: number; readonly duplicate: boolean };
}

export const GoodOutcomes: ReadonlySet<string> = new Set(["replayed", "would-replay", "dropped"]);

/** The bank's word on a parked payout: replay it, or hold it back (and why). */
function payoutVerdict(key: string, s: BankKeyStatus): { replay: boolean; detail: string } {
  switch (s.state) {
    case "paid":
      return {
        replay: false,
        detail: `bank says ${key} was executed (paid, reference ${s.reference}): not replayed, so nothing is sent to the bank again; reconcile the payout with that reference, then drop this entry`,
      };
    case "processing":
      return { replay: false, detail: `bank is still processing ${key}: not replayed; ask again later` };
    case "refused":
      return {
        replay: true,
        detail: `bank says ${key} was refused (${s.reason}): the payout stage records the refusal (payouts.failed) and the ledger reverses the transfer`,
      };
    case "unknown":
      return {
        replay: true,
        detail: `bank does not know ${key} (never received, or forgotten): the payout stage sends it only if its own record shows no attempt that may have reached the bank before the bank's retention, and parks it again otherwise`,
      };
  }
}

/**
 * Headers of the replay: the original's, minus the Nats-* and Jetmesh-Dlq-* ones (and those of
 * an earlier replay), plus the DLQ seq and the original's stream, subject and sequence, which
 * the stage processes it as.
 */
function replayHeaders(
  p: Parked & { entry: { originStream: string; originSubject: string; originSeq: number } },
) {
  const h = natsHeaders();
  for (const [k, values] of Object.entries(p.msg.headers)) {
    const lower = k.toLowerCase();
    if (lower.startsWith("nats-") || lower.startsWith("jetmesh-dlq-") || lower.startsWith("jetmesh-replay-"))
      continue;
    for (const v of values) h.append(k, v);
  }
  h.set(Headers.ReplayOf, String(p.entry.dlqSeq));
  h.set(Headers.ReplayStream, p.entry.originStream);
  h.set(Headers.ReplaySubject, p.entry.originSubject);
  h.set(Headers.ReplaySequence, String(p.entry.originSeq));
  return h;
}

/** Removes a DLQ entry; one already gone (another operator's action) counts as removed. */
async function removeParked(jsm: JetStreamManager, seq: number, names: Names): Promise<void> {
  const dlq = names.stream(StreamNames.Dlq);
  try {
    await jsm.streams.deleteMessage(dlq, seq, false);
  } catch (err) {
    if ((await jsm.streams.getMessage(dlq, { seq }).catch(() => undefined)) === null) return;
    throw err;
  }
}

/** A day count for a line an operator reads. */
const days = (ms: number) => `${Math.round(ms / 86_400_000)} days`;

/**
 * Sends each parked message back to the stage that parked it, to be processed once, outside
 * the event streams: published to `replay.<stage>` (stream REPLAY, which the publish expects)
 * with the original body and headers, `Jetmesh-Replay-Of: <dlq seq>`, the original's
 * `Jetmesh-Replay-Stream/-Subject/-Sequence`, and a Nats-Msg-Id derived from the DLQ entry.
 * Only that stage's durable `<stage>-replay` reads it, and processes it as a delivery of the
 * original (packages/stage): it runs again because parking released its idempotency key; a
 * key found done means the effect happened meanwhile, and the replay is acked without
 * running. No event stream is written: LEDGER, the source of truth, stays as it was. An
 * entry is removed from the DLQ only after its replay was stored. A payout is replayed only
 * after the bank was asked for its key: executed or still processing, it is held.
 * Never throws for one entry: each result says what happened to it.
 * @throws OpsError when there is no REPLAY stream (nothing is done).
 */
export async function replayParked(
  js: JetStreamClient,
  jsm: JetStreamManager,
  parked: readonly Parked[],
  o: { dryRun: boolean; bankUrl?: string; names?: Names },
): Promise<ActionResult[]> {
  const names = o.names ?? namesFor();
  const replayStream = names.stream(StreamNames.Replay);
  await requireReplay(jsm, names);
  const durables = new Map<string, boolean>();
  const consumed = async (stage: string) => {
    if (!durables.has(stage))
      durables.set(
        stage,
        await jsm.consumers.info(replayStream, replayDurable(stage)).then(
          () => true,
          () => false,
        ),
      );
    return durables.get(stage)!;
  };
  const out: ActionResult[] = [];
  for (const p of parked) {
    const e = p.entry;
    const { stage, originStream, originSubject, originSeq } = e;
    if (!stage || !originStream || !originSubject || originSeq === null) {
      out.push(
        audited(
          e,
          "failed",
          "not replayable: no Jetmesh-Dlq-Stage, -Stream, -Subject or -Sequence header says where it came from",
        ),
      );
      continue;
    }
    const notes: string[] = [];
    if (stage === PAYOUT_STAGE) {
      if (!o.bankUrl) {
        out.push(audited(e, "failed", "a payout is replayed only after asking the bank: give --bank-url"));
        continue;
      }
      if (!e.transferId) {
        out.push(audited(e, "failed", "no transfer id to ask the bank about: not replayed"));
        continue;
      }
      const key = payoutBankKey(e.transferId);
      let verdict: { replay: boolean; detail: string };
      try {
        verdict = payoutVerdict(key, await askBank(o.bankUrl, key));
      } catch (err) {
        out.push(audited(e, "failed", `${oneLine(err)}: not replayed`));
        continue;
      }
      if (!verdict.replay) {
        out.push(audited(e, "held", verdict.detail));
        continue;
      }
      notes.push(verdict.detail);
    }
    const subject = names.subject(replaySubject(stage));
    const target = `${subject} on ${replayStream} for stage ${stage} (as ${originStream} #${originSeq})`;
    // Said, not refused: the stage may be down, or not restarted since REPLAY was created.
    if (!(await consumed(stage)))
      notes.push(
        `no consumer ${replayDurable(stage)} on ${replayStream} yet: the replay waits there until stage ${stage}, started with ${replayStream} present, takes it (at most ${days(REPLAY_MAX_AGE_MS)})`,
      );
    if (o.dryRun) {
      out.push(audited(e, "would-replay", [`would send to ${target}`, ...notes].join("; ")));
      continue;
    }
    let ack: { stream: string; seq: number; duplicate: boolean };
    try {
      ack = await js.publish(subject, p.msg.data, {
        msgID: replayMsgId(e),
        headers: replayHeaders({ ...p, entry: { ...e, originStream, originSubject, originSeq } }),
        expect: { streamName: replayStream },
      });
    } catch (err) {
      out.push(audited(e, "failed", `replay not stored, entry kept: ${oneLine(err)}`));
      continue;
    }
    const stored = ack.duplicate
      ? `already stored at ${ack.stream} #${ack.seq} by an earlier replay of this entry (dropped as a duplicate)`
      : `sent to ${target} as ${ack.stream} #${ack.seq}`;
    const replay = { stream: ack.stream, seq: ack.seq, duplicate: ack.duplicate };
    try {
      await removeParked(jsm, e.dlqSeq, names);
    } catch (err) {
      out.push({
        ...audited(
          e,
          "replayed-not-removed",
          [stored, ...notes, `still in the DLQ: ${oneLine(err)}`].join("; "),
        ),
        replay,
      });
      continue;
    }
    out.push({ ...audited(e, "replayed", [stored, "removed from the DLQ", ...notes].join("; ")), replay });
  }
  return out;
}

/**
 * Fails before any replay when the REPLAY stream is missing.
 * @throws OpsError naming the deploy file that creates it.
 */
export async function requireReplay(jsm: JetStreamManager, names: Names = namesFor()): Promise<void> {
  try {
    await streamInfo(jsm, names.stream(StreamNames.Replay));
  } catch (err) {
    if (err instanceof OpsError)
      throw new OpsError(
        "no REPLAY stream to send replays on: create it with `nats stream add --config deploy/streams/REPLAY.json`; nothing replayed",
        { cause: err },
      );
    throw err;
  }
}

/** Deletes each parked message from the DLQ. Never throws for one entry. */
export async function dropParked(
  jsm: JetStreamManager,
  parked: readonly Parked[],
  names: Names = namesFor(),
): Promise<ActionResult[]> {
  const out: ActionResult[] = [];
  for (const { entry: e } of parked) {
    try {
      await removeParked(jsm, e.dlqSeq, names);
      out.push(audited(e, "dropped", "deleted from the DLQ"));
    } catch (err) {
      out.push(audited(e, "failed", `not dropped: ${oneLine(err)}`));
    }
  }
  return out;
}

/** One line per result: `#<seq> <stage> <origin>: <outcome>: <detail>`. */
export function renderResults(results: readonly ActionResult[]): string {
  return results
    .map(
      (r) =>
        `#${r.dlqSeq} ${r.stage ?? "?"} ${r.originStream ?? "?"}#${r.originSeq ?? "?"} ${r.transferId ?? "-"}: ${r.outcome}: ${r.detail}`,
    )
    .join("\n");
}
