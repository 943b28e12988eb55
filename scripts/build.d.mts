// Types of what TypeScript callers use from scripts/build.mjs.
export declare const ENTRIES: Readonly<Record<string, readonly string[]>>;
export declare const EXTERNAL: readonly string[];
export declare const BANNER: string;
export declare function bundleOf(entry: string, folder?: string): string;
export declare function buildBundles(names?: readonly string[]): Promise<string[]>;
export declare function buildVariant(
  entry: string,
  outfile: string,
  sources: Readonly<Record<string, string>>,
): Promise<void>;
