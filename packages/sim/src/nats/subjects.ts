/**
 * Whether `subject` (literal tokens) is matched by `pattern` (NATS wildcards: `*` one token,
 * `>` one or more trailing tokens).
 */
export function subjectMatches(pattern: string, subject: string): boolean {
  if (pattern === subject) return true;
  return tokensMatch(pattern.split("."), subject.split("."));
}

/** {@link subjectMatches} on subjects already split into tokens (the bus splits each once). */
export function tokensMatch(p: readonly string[], s: readonly string[]): boolean {
  for (let i = 0; i < p.length; i++) {
    const t = p[i];
    if (t === ">") return s.length > i;
    if (i >= s.length) return false;
    if (t !== "*" && t !== s[i]) return false;
  }
  return p.length === s.length;
}

/** Whether some subject could match both patterns (used to refuse overlapping streams). */
export function subjectsOverlap(a: string, b: string): boolean {
  const x = a.split(".");
  const y = b.split(".");
  for (let i = 0; i < Math.max(x.length, y.length); i++) {
    const s = x[i];
    const t = y[i];
    if (s === ">" || t === ">") return s !== undefined && t !== undefined;
    if (s === undefined || t === undefined) return false;
    if (s !== "*" && t !== "*" && s !== t) return false;
  }
  return true;
}
