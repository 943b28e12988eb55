// Test support: the runbook pages of deploy/runbooks read as an operator reads them, sections
// and the ```sh blocks in them, so one test can check their commands parse and another can run
// them against a live mesh.
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

/** The sections every page has, in this order. */
export const RunbookSections = ["Signal", "Diagnose", "Fix", "Verify"] as const;
export type RunbookSection = (typeof RunbookSections)[number];

/** One ```sh block: the `###` heading above it (or ""), and its command lines, comments cut. */
export interface RunbookBlock {
  readonly section: string;
  readonly heading: string;
  readonly commands: readonly string[];
}

/** One page of deploy/runbooks. */
export interface RunbookPage {
  /** The file name, e.g. `poison-message.md`. */
  readonly file: string;
  readonly text: string;
  /** The `## ` headings, in order. */
  readonly sections: readonly string[];
  readonly blocks: readonly RunbookBlock[];
}

/** A shell line without its trailing `# comment` (a `#` inside quotes stays). */
export function withoutComment(line: string): string {
  let quote: string | null = null;
  for (let i = 0; i < line.length; i++) {
    const c = line[i] as string;
    if (quote) {
      if (c === quote) quote = null;
    } else if (c === "'" || c === '"') quote = c;
    else if (c === "#" && (i === 0 || /\s/.test(line[i - 1] as string))) return line.slice(0, i).trim();
  }
  return line.trim();
}

/** Parses one page's Markdown. */
export function parseRunbookPage(file: string, text: string): RunbookPage {
  const sections: string[] = [];
  const blocks: RunbookBlock[] = [];
  let section = "";
  let heading = "";
  let inBlock: string[] | null = null;
  for (const line of text.split("\n")) {
    if (inBlock) {
      if (line.startsWith("```")) {
        blocks.push({ section, heading, commands: inBlock.map(withoutComment).filter((c) => c !== "") });
        inBlock = null;
      } else inBlock.push(line);
      continue;
    }
    if (line.startsWith("```sh")) inBlock = [];
    else if (line.startsWith("## ")) {
      section = line.slice(3).trim();
      heading = "";
      sections.push(section);
    } else if (line.startsWith("### ")) heading = line.slice(4).trim();
  }
  return { file, text, sections, blocks };
}

/** Every page of `<root>/deploy/runbooks` but its README, sorted by file name. */
export function readRunbookPages(root: string): RunbookPage[] {
  const dir = join(root, "deploy", "runbooks");
  return readdirSync(dir)
    .filter((f) => f.endsWith(".md") && f !== "README.md")
    .sort()
    .map((f) => parseRunbookPage(f, readFileSync(join(dir, f), "utf8")));
}
