/**
 * Whether `subject` (literal tokens) is matched by `pattern` (NATS wildcards: `*` one token,
 * `>` one or more trailing tokens).
 */
export function subjectMatches(pattern: string, subject: string): boolean {
  if (pattern === subject) return true;
  // Token by token in place: streams, filters and captures match every message, and
  // splitting both subjects each time was the simulator's largest cost in routing.
  let i = 0;
  let j = 0;
  for (;;) {
    let pe = pattern.indexOf(".", i);
    if (pe < 0) pe = pattern.length;
    const plen = pe - i;
    // `>`: one or more tokens left in the subject.
    if (plen === 1 && pattern.charCodeAt(i) === GT) return j <= subject.length;
    if (j > subject.length) return false;
    let se = subject.indexOf(".", j);
    if (se < 0) se = subject.length;
    if (!(plen === 1 && pattern.charCodeAt(i) === STAR)) {
      if (se - j !== plen) return false;
      for (let k = 0; k < plen; k++)
        if (pattern.charCodeAt(i + k) !== subject.charCodeAt(j + k)) return false;
    }
    i = pe + 1;
    j = se + 1;
    if (i > pattern.length) return j > subject.length;
  }
}

const GT = 62;
const STAR = 42;

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
