// Types of packages/catalog/src/read.mjs.

/** A durable consumer a service reads through (manifest `inputs`). */
export interface ManifestInput {
  readonly stream: string;
  readonly durable: string;
  readonly types: readonly string[];
  /**
   * What it reads of each event type: field → JSON type (consumer-driven contracts, checked by
   * `consumerContractIssues` against the schema producers write).
   */
  readonly reads?: Readonly<Record<string, Readonly<Record<string, string>>>>;
}

/** Events a service publishes (manifest `outputs`). */
export interface ManifestOutput {
  readonly stream: string;
  readonly types: readonly string[];
}

/** A port a service listens on (manifest `ports`); the first is the one it is reached at. */
export interface ManifestPort {
  readonly name: string;
  /** Environment variable that sets it. */
  readonly env: string;
  readonly default: number;
  /** Paths served there (`/readyz`, `/metrics`, ...). */
  readonly paths?: readonly string[];
}

/**
 * How docker-compose.yml runs a service beyond what the rest of its manifest says (`pnpm
 * gen:deploy` writes its compose service and build arguments from both).
 */
export interface ManifestDeploy {
  /** NODE_OPTIONS of its image (V8 limits). */
  readonly nodeOptions?: string;
  /** Environment as deployed, beyond its ports and, for a jetmesh service, the shared stage settings. */
  readonly environment?: Readonly<Record<string, string>>;
  /** Secrets it reads besides its NATS seed and Redis password: name → file under JETMESH_SECRETS, target in /run/secrets. */
  readonly secrets?: Readonly<Record<string, { readonly file: string; readonly target: string }>>;
  /** Variables of the ports published on the host (none: reachable inside the network only). */
  readonly publish?: readonly string[];
  /** Services that must be healthy before it starts. */
  readonly dependsOn?: readonly string[];
  /** Named volumes, `<volume>:<folder>`. */
  readonly volumes?: readonly string[];
}

/**
 * A services/<name>/manifest.json as the tools read it. Other keys (http, redis, ...) are
 * carried but not read.
 */
export interface ServiceManifest {
  readonly name: string;
  readonly package?: string;
  readonly kind?: string;
  readonly inputs?: readonly ManifestInput[];
  readonly outputs?: readonly ManifestOutput[];
  /** Its DLQ subject, `dlq.<stage>`. */
  readonly dlq?: string;
  /** Streams it reads with ordered (ephemeral) consumers. */
  readonly follows?: readonly { readonly stream: string; readonly consumer?: string }[];
  /** Other services' consumers whose info it reads. */
  readonly watches?: readonly { readonly stream: string; readonly durable: string }[];
  readonly effects?: readonly unknown[];
  readonly env?: Readonly<Record<string, { readonly default?: unknown } | undefined>>;
  readonly ports?: readonly ManifestPort[];
  /** Entry points bundled by scripts/build.mjs, relative to its folder (default `src/main.ts`). */
  readonly bundles?: readonly string[];
  readonly deploy?: ManifestDeploy;
  /** Extra commands of the service (`rebuild`): each connects as `<name>-<command>`. */
  readonly commands?: Readonly<Record<string, string>>;
}

export declare const DEFAULT_BUNDLES: readonly string[];
export declare function readManifests(servicesDir: string): ServiceManifest[];
export declare function bundlesOf(m: ServiceManifest): string[];
