const compiled = new Map<string, RegExp>();

/**
 * Redis' glob (KEYS, SCAN MATCH): `*`, `?`, `[abc]`, `[^a-c]`, and `\` to escape; matched
 * against the whole key. Compiled patterns are cached (a simulation asks the same few).
 */
export function globMatcher(pattern: string): RegExp {
  let re = compiled.get(pattern);
  if (re === undefined) {
    re = new RegExp(`^${globToRegExp(pattern)}$`, "s");
    if (compiled.size > 1000) compiled.clear();
    compiled.set(pattern, re);
  }
  return re;
}

const escapeChar = (c: string): string => c.replace(/[\\^$.*+?()[\]{}|/-]/g, "\\$&");

function globToRegExp(p: string): string {
  let out = "";
  for (let i = 0; i < p.length; i++) {
    const c = p[i] as string;
    if (c === "*") out += ".*";
    else if (c === "?") out += ".";
    else if (c === "\\" && i + 1 < p.length) out += escapeChar(p[++i] as string);
    else if (c === "[") {
      let j = i + 1;
      let cls = "";
      if (p[j] === "^") {
        cls += "^";
        j++;
      }
      for (; j < p.length && p[j] !== "]"; j++) {
        if (p[j] === "\\" && j + 1 < p.length) cls += escapeChar(p[++j] as string);
        else if (p[j + 1] === "-" && j + 2 < p.length && p[j + 2] !== "]") {
          const [a, b] = [p[j] as string, p[j + 2] as string].sort();
          cls += `${escapeChar(a as string)}-${escapeChar(b as string)}`;
          j += 2;
        } else cls += escapeChar(p[j] as string);
      }
      // An unclosed class matches up to the pattern's end, as Redis' stringmatchlen does.
      out += cls === "" || cls === "^" ? (cls === "^" ? "[^]" : "[]") : `[${cls}]`;
      i = j;
    } else out += escapeChar(c);
  }
  return out;
}
