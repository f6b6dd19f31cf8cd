/**
 * Seeded pseudo-random numbers for workload choices. Every thread derives its own stream from the
 * run's seed (`deriveSeed(seed, stream)`), so the *choices* each thread makes are reproducible from
 * the seed; the interleaving of threads is not (real threads, real scheduler).
 *
 * The generator is sfc32 (Chris Doty-Humphrey's small fast counting generator): four 32-bit words,
 * no allocation per draw, good statistical quality for simulation.
 */

/** Mix a seed and a stream number into a fresh 32-bit seed (splitmix32-style finaliser). */
export function deriveSeed(seed: number, stream: number): number {
  let z = (seed ^ Math.imul(stream + 1, 0x9e3779b9)) | 0;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) >>> 0;
}

export class Prng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(seed: number) {
    this.a = 0x9e3779b9;
    this.b = 0x243f6a88;
    this.c = 0xb7e15162;
    this.d = seed | 0;
    for (let i = 0; i < 12; i++) this.nextU32();
  }

  /** A uniform 32-bit unsigned integer. */
  nextU32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }

  /** A uniform float in [0, 1). */
  nextFloat(): number {
    return this.nextU32() / 4294967296;
  }

  /** A uniform integer in [0, n) for n >= 1. */
  below(n: number): number {
    return Math.floor(this.nextFloat() * n);
  }

  /** A uniform integer in [lo, hi] (inclusive). */
  between(lo: number, hi: number): number {
    return lo + this.below(hi - lo + 1);
  }

  /** True with probability p. */
  chance(p: number): boolean {
    return this.nextFloat() < p;
  }
}

/**
 * A Zipf(s) sampler over [0, n): the CDF is built once (n floats), each draw is a binary search,
 * so sampling allocates nothing. Rank 0 is the most popular; callers map ranks to places.
 */
export class ZipfSampler {
  private readonly cdf: Float64Array;

  constructor(
    readonly n: number,
    readonly s: number,
  ) {
    this.cdf = new Float64Array(n);
    let sum = 0;
    for (let k = 0; k < n; k++) {
      sum += 1 / (k + 1) ** s;
      this.cdf[k] = sum;
    }
    for (let k = 0; k < n; k++) this.cdf[k] = this.cdf[k]! / sum;
  }

  sample(rng: Prng): number {
    const u = rng.nextFloat();
    const cdf = this.cdf;
    let lo = 0;
    let hi = this.n - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (cdf[mid]! < u) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}

/** Pick an index by weight from `cum` (cumulative weights, last = total > 0). Allocation-free. */
export function pickWeighted(rng: Prng, cum: Float64Array): number {
  const total = cum[cum.length - 1]!;
  const u = rng.nextFloat() * total;
  for (let i = 0; i < cum.length; i++) if (u < cum[i]!) return i;
  return cum.length - 1;
}
