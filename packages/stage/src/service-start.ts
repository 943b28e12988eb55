import { ConfigError } from "./errors.ts";

/** The part of a service's manifest.json that --help prints. */
export interface ServiceManifest {
  readonly name: string;
  readonly description?: string;
  readonly env?: Readonly<Record<string, { readonly default?: unknown; readonly description?: string }>>;
  readonly ports?: ReadonlyArray<{ readonly name: string; readonly env: string; readonly default: number }>;
}

/** Where start-up writes and how it ends; a test passes its own. */
export interface StartIo {
  readonly argv: readonly string[];
  readonly out: (text: string) => void;
  readonly err: (text: string) => void;
  readonly exit: (code: number) => never;
}

const processIo: StartIo = {
  argv: process.argv.slice(2),
  out: (t) => process.stdout.write(t),
  err: (t) => process.stderr.write(t),
  exit: (code) => process.exit(code),
};

/** The --help text of a service: what it is, its environment (defaults, meaning) and its ports. */
export function serviceHelp(m: ServiceManifest, version: string): string {
  const lines = [
    `${m.name} ${version}${m.description ? `: ${m.description}` : ""}`,
    "",
    "Usage: node dist/main.mjs [--help | --version]",
    "",
  ];
  lines.push("Configured by the environment (an empty value counts as unset):");
  for (const [key, e] of Object.entries(m.env ?? {})) {
    const dflt = e.default === undefined || e.default === null ? "" : ` (default ${String(e.default)})`;
    lines.push(`  ${key}${dflt}${e.description ? `: ${e.description}` : ""}`);
  }
  for (const p of m.ports ?? []) lines.push("", `Port ${p.name}: ${p.env}, default ${p.default}.`);
  lines.push(
    "",
    "Exit status: 0 after a drain (SIGTERM, SIGINT), 1 on a failure, 2 on a bad environment.",
    "",
  );
  return lines.join("\n");
}

/** A ConfigError as one readable block: each bad key, the value given, what is allowed. */
export function configErrorBlock(service: string, e: ConfigError): string {
  const n = e.problems.length;
  return [
    `${service}: refusing to start, ${n} setting${n === 1 ? "" : "s"} to fix:`,
    ...e.problems.map((p) => `  - ${p}`),
    `(${service} --help lists every setting)`,
    "",
  ].join("\n");
}

/**
 * The first step of a service's main: answers --help and --version, then loads its
 * configuration; a bad environment prints {@link configErrorBlock} and exits 2, never a
 * stack trace.
 */
export function startService<C>(
  o: { manifest: ServiceManifest; version: string; load: () => C },
  io: StartIo = processIo,
): C {
  if (io.argv.includes("--help") || io.argv.includes("-h")) {
    io.out(serviceHelp(o.manifest, o.version));
    return io.exit(0);
  }
  if (io.argv.includes("--version")) {
    io.out(`${o.version}\n`);
    return io.exit(0);
  }
  const unknown = io.argv.filter((a) => a.startsWith("-"));
  if (unknown.length) {
    io.err(`${o.manifest.name}: unknown option ${unknown.join(" ")}; try --help\n`);
    return io.exit(2);
  }
  try {
    return o.load();
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    io.err(configErrorBlock(o.manifest.name, e));
    return io.exit(2);
  }
}

/** Exits 2 with the readable block when a later start-up step refuses the settings (ConfigError). */
export function exitOnConfigError(service: string, e: unknown, io: StartIo = processIo): void {
  if (e instanceof ConfigError) {
    io.err(configErrorBlock(service, e));
    io.exit(2);
  }
}
