/**
 * A seeded random source for the engine, which may not use Math.random: a
 * run must replay exactly from its seed. splitmix32 (the 32-bit splitmix
 * finaliser over a Weyl sequence), the generator the fuzzer uses.
 */

/** What the host draws random numbers from (the fuzzer's Rng fits too). */
export interface RandomSource {
  /** A uniform 32-bit unsigned integer. */
  nextU32(): number;
}

export class SplitMix32 implements RandomSource {
  private state: number;

  constructor(seed: number) {
    if (!Number.isSafeInteger(seed)) throw new Error(`random seed must be a safe integer, got ${seed}`);
    this.state = (seed ^ Math.imul(Math.floor(seed / 2 ** 32), 0x9e3779b9)) >>> 0;
  }

  nextU32(): number {
    this.state = (this.state + 0x9e3779b9) >>> 0;
    let z = this.state;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return (z ^ (z >>> 16)) >>> 0;
  }
}

/** A uniform integer in [0, n), n ≤ 2^32 (the modulo bias is below 2^-20 for the n a host has). */
export function randomBelow(random: RandomSource, n: number): number {
  return Math.floor((random.nextU32() / 2 ** 32) * n);
}
