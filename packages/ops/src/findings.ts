import { decodeFinding, type Finding, type Names, namesFor, StreamNames } from "@jetmesh/contracts";
import type { JetStreamClient, JetStreamManager } from "@nats-io/jetstream";
import { oneLine } from "./errors.ts";
import { readStream } from "./read-stream.ts";
import { formatDuration, renderTable } from "./table.ts";

/** A finding as it stands now: its last event on RECONCILE (`reconcile.<kind>.<findingId>`). */
export interface FindingRow extends Finding {
  /** RECONCILE sequence of that last event. */
  readonly seq: number;
  /** How many events the finding has (opened, closed, opened again...). */
  readonly events: number;
}

export interface FindingsListing {
  readonly findings: readonly FindingRow[];
  /** Messages on RECONCILE that are not findings, with why. */
  readonly undecodable: readonly { readonly seq: number; readonly reason: string }[];
  readonly byKind: Readonly<Record<string, number>>;
}

export interface FindingsFilter {
  /** Only findings whose current state is opened. */
  readonly open?: boolean;
  readonly kind?: string;
}

/**
 * Reads RECONCILE whole (an operator's question; the stream holds transitions, not traffic)
 * and keeps each finding's last event: its current state. Decoded with the contracts'
 * `decodeFinding`.
 * @throws OpsError when there is no RECONCILE stream.
 */
export async function listFindings(
  js: JetStreamClient,
  jsm: JetStreamManager,
  filter: FindingsFilter = {},
  names: Names = namesFor(),
): Promise<FindingsListing> {
  const msgs = await readStream(js, jsm, names.stream(StreamNames.Reconcile));
  const last = new Map<string, FindingRow>();
  const undecodable: { seq: number; reason: string }[] = [];
  for (const m of msgs) {
    let f: Finding;
    try {
      f = decodeFinding(m.data);
    } catch (err) {
      undecodable.push({ seq: m.seq, reason: oneLine(err) });
      continue;
    }
    const before = last.get(f.findingId);
    last.set(f.findingId, { ...f, seq: m.seq, events: (before?.events ?? 0) + 1 });
  }
  const findings = [...last.values()]
    .filter((f) => (!filter.open || f.state === "opened") && (!filter.kind || f.kind === filter.kind))
    .sort((a, b) => a.seq - b.seq);
  const byKind: Record<string, number> = {};
  for (const f of findings) byKind[f.kind] = (byKind[f.kind] ?? 0) + 1;
  return { findings, undecodable, byKind };
}

export function renderFindings(l: FindingsListing, now = Date.now()): string {
  if (l.findings.length === 0 && l.undecodable.length === 0) return "no findings";
  const rows = l.findings.map((f) => [
    String(f.seq),
    f.kind,
    f.state,
    formatDuration(Math.max(0, now - Date.parse(f.openedAt))),
    f.transferId ?? f.account ?? f.key,
    f.summary,
    f.command,
  ]);
  const lines = [renderTable(["SEQ", "KIND", "STATE", "OPENED AGO", "SUBJECT OF", "SUMMARY", "NEXT"], rows)];
  for (const u of l.undecodable) lines.push(`seq ${u.seq}: not a finding: ${u.reason}`);
  lines.push(
    `${l.findings.length} finding(s)${
      Object.keys(l.byKind).length
        ? `: ${Object.entries(l.byKind)
            .map(([k, n]) => `${k} ${n}`)
            .join(", ")}`
        : ""
    }`,
  );
  return lines.join("\n");
}
