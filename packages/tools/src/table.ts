/**
 * Renders rows as a plain text table for a terminal: the header, a rule under it, the first
 * column left-aligned and the others right-aligned (numbers line up), two spaces between
 * columns, no trailing blanks. A missing cell is blank.
 */
export function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: readonly string[]) =>
    widths
      .map((w, i) => (i === 0 ? (cells[i] ?? "").padEnd(w) : (cells[i] ?? "").padStart(w)))
      .join("  ")
      .trimEnd();
  return [line(header), widths.map((w) => "-".repeat(w)).join("  "), ...rows.map(line)].join("\n");
}
