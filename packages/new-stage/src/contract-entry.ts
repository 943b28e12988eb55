import { readFileSync, writeFileSync } from "node:fs";
import type { StagePlan } from "./plan.ts";

/** Where a team's stream is declared (the one contract entry a new stage's output needs). */
export const TEAM_STREAMS_FILE = "packages/contracts/src/team-streams.ts";
const MARKER = "  // new:stage adds entries above this line";
const IMPORT = 'import { transferEvent } from "./transfer-core.ts";';

/** The event's line in its stream's entry: the transfer's fields (add the event's own inside the braces). */
const eventLine = (p: StagePlan) => `"${p.emits}": transferEvent({})`;

/**
 * The text to add to {@link TEAM_STREAMS_FILE}: a whole entry for a new stream, or the event's
 * line inside the stream's existing entry.
 */
export function contractEntry(p: StagePlan): string {
  if (p.contract?.kind === "event") return `    ${eventLine(p)},`;
  return [
    `  ${p.outputStream}: {`,
    `    owner: "${p.name}",`,
    `    description: "events of the ${p.name} stage",`,
    `    events: { ${eventLine(p)} },`,
    "  },",
  ].join("\n");
}

/** What to tell a team that has not added the entry, and did not ask the generator to. */
export function contractAdvice(p: StagePlan): string {
  const where =
    p.contract?.kind === "event"
      ? `inside the events of the ${p.outputStream} entry of TeamStreams`
      : "to TeamStreams, above the line `// new:stage adds entries above this line`";
  return [
    `${p.emits} is not in @jetmesh/contracts${p.contract?.kind === "stream" ? `, nor is its stream ${p.outputStream}` : ""}.`,
    `Add this one entry to ${TEAM_STREAMS_FILE}, ${where}:`,
    "",
    contractEntry(p),
    "",
    `(with \`${IMPORT}\` at the top), then run the command again; or run it with --add-contract and the generator adds it.`,
  ].join("\n");
}

/**
 * Adds the entry to the contracts in `root`.
 * @throws when the file has no marker line or no entry of the stream to add to.
 */
export function addContractEntry(root: string, p: StagePlan): void {
  const file = `${root}/${TEAM_STREAMS_FILE}`;
  let text = readFileSync(file, "utf8");
  if (!text.includes(IMPORT)) text = text.replace(/^(import type \{ TSchema \} .*\n)/m, `$1${IMPORT}\n`);
  if (p.contract?.kind === "event") {
    const events = new RegExp(`(\\n  ${p.outputStream}: \\{[\\s\\S]*?events: \\{)`);
    if (!events.test(text))
      throw new Error(`${file}: no entry ${p.outputStream} with events to add ${p.emits} to`);
    text = text.replace(events, `$1 ${eventLine(p)},`);
  } else {
    if (!text.includes(MARKER))
      throw new Error(`${file}: the line "${MARKER.trim()}" is gone; add the entry by hand`);
    text = text.replace(MARKER, `${contractEntry(p)}\n${MARKER}`);
  }
  writeFileSync(file, text);
}
