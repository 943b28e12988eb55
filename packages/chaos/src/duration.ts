const UNITS: Readonly<Record<string, number>> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/**
 * Parses `500ms`, `45s`, `10m`, `1h`, `1m30s` or a bare number of seconds into milliseconds.
 * @throws RangeError naming the input when it is not a positive duration.
 */
export function parseDuration(text: string): number {
  const s = text.trim().toLowerCase();
  if (/^\d+(\.\d+)?$/.test(s)) return checked(Number(s) * 1000, text);
  const parts = [...s.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g)];
  const joined = parts.map((p) => p[0]).join("");
  if (parts.length === 0 || joined !== s) throw new RangeError(`invalid duration ${JSON.stringify(text)}`);
  return checked(
    parts.reduce((sum, p) => sum + Number(p[1]) * (UNITS[p[2] as string] as number), 0),
    text,
  );
}

function checked(ms: number, text: string): number {
  if (!Number.isFinite(ms) || ms <= 0)
    throw new RangeError(`duration ${JSON.stringify(text)} must be positive`);
  return Math.round(ms);
}

/** `1234` → `1.2s`, `95000` → `1m35s`: short enough for a table cell. */
export function formatMs(ms: number | undefined): string {
  if (ms === undefined || !Number.isFinite(ms)) return "-";
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`;
  const m = Math.floor(ms / 60_000);
  const s = Math.round((ms % 60_000) / 1000);
  return `${m}m${String(s).padStart(2, "0")}s`;
}
