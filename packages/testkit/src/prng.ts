import { createHash } from "node:crypto";

/**
 * A deterministic pseudo-random generator. Every random choice of a chaos run or a simulated world (which
 * service, when, which fault, which request to duplicate) is drawn from one of these, so
 * the same seed replays the same fault schedule and the same traffic.
 */
export interface Prng {
  /** The seed text this generator was made from (for the printout). */
  readonly seed: string;
  /** A float in [0, 1). */
  next(): number;
  /** An integer in [min, max], both included. */
  int(min: number, max: number): number;
  /** A float in [min, max). */
  float(min: number, max: number): number;
  /** True with probability `p`. */
  chance(p: number): boolean;
  /** One element of a non-empty list. @throws RangeError on an empty list. */
  pick<T>(items: readonly T[]): T;
  /** A shuffled copy (Fisher-Yates). */
  shuffle<T>(items: readonly T[]): T[];
  /**
   * A child generator for one concern (the traffic, one scenario's schedule): seeded by a
   * draw of this generator and `label`, so the child's draws never shift this one's, and
   * the order in which children are forked is all that matters.
   */
  fork(label: string): Prng;
}

/** sfc32 state from a SHA-256 of the seed text: every seed, however short, mixes well. */
function stateOf(seed: string): [number, number, number, number] {
  const h = createHash("sha256").update(seed).digest();
  return [h.readUInt32LE(0), h.readUInt32LE(4), h.readUInt32LE(8), h.readUInt32LE(12)];
}

/**
 * Creates a generator (sfc32, 128 bits of state) from a seed. Numbers and strings that
 * print the same give the same generator: `createPrng(7)` equals `createPrng("7")`.
 */
export function createPrng(seed: string | number): Prng {
  const text = String(seed);
  let [a, b, c, d] = stateOf(text);
  const next = (): number => {
    a |= 0;
    b |= 0;
    c |= 0;
    d |= 0;
    const t = (((a + b) | 0) + d) | 0;
    d = (d + 1) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    c = (c + t) | 0;
    return (t >>> 0) / 4294967296;
  };
  // Discard the first draws: sfc32 needs a few rounds to leave its seeded state.
  for (let i = 0; i < 12; i++) next();
  const prng: Prng = {
    seed: text,
    next,
    int(min, max) {
      if (!Number.isInteger(min) || !Number.isInteger(max) || max < min)
        throw new RangeError(`int(${min}, ${max}) needs integers with min <= max`);
      return min + Math.floor(next() * (max - min + 1));
    },
    float(min, max) {
      return min + next() * (max - min);
    },
    chance(p) {
      return next() < p;
    },
    pick<T>(items: readonly T[]): T {
      if (items.length === 0) throw new RangeError("pick from an empty list");
      return items[Math.floor(next() * items.length)] as T;
    },
    shuffle<T>(items: readonly T[]): T[] {
      const out = [...items];
      for (let i = out.length - 1; i > 0; i--) {
        const j = Math.floor(next() * (i + 1));
        [out[i], out[j]] = [out[j] as T, out[i] as T];
      }
      return out;
    },
    fork(label) {
      return createPrng(`${text}/${label}/${Math.floor(next() * 2 ** 32)}`);
    },
  };
  return prng;
}
