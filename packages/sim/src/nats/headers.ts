const TE = new TextEncoder();
const TD = new TextDecoder();

/** A NATS header block as the server sees it: the status line and the raw key/value pairs. */
export interface RawHeaders {
  code: number;
  description: string;
  pairs: [string, string][];
}

/** Parses `NATS/1.0 [code [description]]\r\nKey: value\r\n...\r\n\r\n`; keys stay as sent. */
export function parseHeaders(bytes: Uint8Array | undefined): RawHeaders {
  const out: RawHeaders = { code: 0, description: "", pairs: [] };
  if (!bytes || bytes.length === 0) return out;
  const lines = TD.decode(bytes).split("\r\n");
  const status = (lines[0] ?? "").slice("NATS/1.0".length).trim();
  if (status) {
    const sp = status.indexOf(" ");
    out.code = Number(sp < 0 ? status : status.slice(0, sp));
    out.description = sp < 0 ? "" : status.slice(sp + 1);
  }
  for (const line of lines.slice(1)) {
    if (!line) continue;
    const i = line.indexOf(":");
    if (i <= 0) continue;
    out.pairs.push([line.slice(0, i), line.slice(i + 1).trim()]);
  }
  return out;
}

/** The first value of `key` (exact case, as nats-server 2.9 compares header names). */
export function headerValue(h: RawHeaders, key: string): string | undefined {
  return h.pairs.find(([k]) => k === key)?.[1];
}

/** Encodes a header block; `code` 0 writes the plain `NATS/1.0` line. */
export function encodeHeaders(pairs: [string, string][], code = 0, description = ""): Uint8Array {
  let s = code ? `NATS/1.0 ${code}${description ? ` ${description}` : ""}\r\n` : "NATS/1.0\r\n";
  for (const [k, v] of pairs) s += `${k}: ${v}\r\n`;
  return TE.encode(`${s}\r\n`);
}
