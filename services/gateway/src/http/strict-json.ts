import { type AnyNode, parse } from "@humanwhocodes/momoa";
import type { FieldIssue } from "@jetmesh/contracts";

/** A JSON document read strictly: its value, and how each number was written. */
export interface StrictJson {
  readonly value: unknown;
  /** JSON Pointer → the number's text as sent (`1`, `1.0`, `-0`, `1e3`). */
  readonly numbers: ReadonlyMap<string, string>;
}

export type StrictJsonResult =
  | { readonly ok: true; readonly json: StrictJson }
  | { readonly ok: false; readonly issue: FieldIssue };

const MAX_DEPTH = 32;

/**
 * Parses JSON (RFC 8259) and refuses what `JSON.parse` lets through silently: a member
 * name that appears twice in one object (JSON.parse keeps the last, so two readers of the
 * same bytes could disagree on what was asked) and nesting deeper than 32. The text of each
 * number is kept, so a field can insist on how it is written (`1`, not `1.0` or `1e0`).
 * The grammar is checked by momoa's parser; the issue names the field where it can.
 */
export function parseStrictJson(text: string): StrictJsonResult {
  let root: AnyNode;
  try {
    root = parse(text, { mode: "json", ranges: true }).body;
  } catch (err) {
    return { ok: false, issue: { field: "/", rule: `is not valid JSON (${(err as Error).message})` } };
  }
  const numbers = new Map<string, string>();
  const issue: { current?: FieldIssue } = {};
  const value = build(root, "", 0, text, numbers, issue);
  return issue.current ? { ok: false, issue: issue.current } : { ok: true, json: { value, numbers } };
}

function build(
  node: AnyNode,
  pointer: string,
  depth: number,
  text: string,
  numbers: Map<string, string>,
  issue: { current?: FieldIssue },
): unknown {
  if (issue.current) return undefined;
  if (depth > MAX_DEPTH) {
    issue.current = { field: pointer || "/", rule: `nests deeper than ${MAX_DEPTH} levels` };
    return undefined;
  }
  switch (node.type) {
    case "Object": {
      // A null-prototype object: `__proto__` is an ordinary (and here unknown) member name.
      const out: Record<string, unknown> = Object.create(null);
      const seen = new Set<string>();
      for (const m of node.members) {
        const name = m.name.type === "String" ? m.name.value : m.name.name;
        const at = `${pointer}/${escapePointer(name)}`;
        if (seen.has(name)) {
          issue.current = { field: at, rule: "appears more than once in its object" };
          return undefined;
        }
        seen.add(name);
        out[name] = build(m.value, at, depth + 1, text, numbers, issue);
      }
      return out;
    }
    case "Array":
      return node.elements.map((e, i) => build(e.value, `${pointer}/${i}`, depth + 1, text, numbers, issue));
    case "Number": {
      const [start, end] = node.range ?? [0, 0];
      numbers.set(pointer || "/", text.slice(start, end));
      return node.value;
    }
    case "String":
    case "Boolean":
      return node.value;
    case "Null":
      return null;
    default:
      issue.current = { field: pointer || "/", rule: `holds a ${node.type}, which JSON does not allow` };
      return undefined;
  }
}

/** RFC 6901 escaping, so a member name containing `/` still names one field. */
export function escapePointer(key: string): string {
  return key.replaceAll("~", "~0").replaceAll("/", "~1");
}
