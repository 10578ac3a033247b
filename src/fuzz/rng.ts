/**
 * A small seeded pseudo-random source for the fuzzer: splitmix32 (the 32-bit
 * splitmix finaliser over a Weyl sequence). Everything the generator draws
 * comes from here, so a seed names a workload for ever; no `Math.random`.
 */

import { assert } from '../host/assert.ts';

export class Rng {
  private state: number;

  /** Any finite number: the integer part, folded to 32 bits (high and low words mixed). */
  constructor(seed: number) {
    assert(Number.isFinite(seed), `Rng: seed must be finite, got ${seed}`);
    const whole = Math.trunc(seed);
    const high = Math.floor(whole / 2 ** 32);
    this.state = (whole ^ Math.imul(high, 0x9e3779b9)) >>> 0;
  }

  /** A uniform 32-bit unsigned integer. */
  nextU32(): number {
    this.state = (this.state + 0x9e3779b9) >>> 0;
    let z = this.state;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return (z ^ (z >>> 16)) >>> 0;
  }

  /** A uniform number in [0, 1). */
  next(): number {
    return this.nextU32() / 2 ** 32;
  }

  /** A uniform integer in [min, max], both included. */
  int(min: number, max: number): number {
    assert(Number.isSafeInteger(min) && Number.isSafeInteger(max) && min <= max, `Rng.int(${min}, ${max})`);
    return min + Math.floor(this.next() * (max - min + 1));
  }

  /** true with probability `p`. */
  chance(p: number): boolean {
    return this.next() < p;
  }

  pick<T>(items: readonly T[]): T {
    assert(items.length > 0, 'Rng.pick: empty list');
    return items[this.int(0, items.length - 1)]!;
  }

  /** One key, with probability proportional to its weight (weights >= 0, at least one > 0). */
  weighted<K extends string>(weights: Readonly<Partial<Record<K, number>>>): K {
    return this.choose(Object.entries(weights) as [K, number][]);
  }

  /** One value, with probability proportional to its weight (weights >= 0, at least one > 0). */
  choose<T>(choices: readonly (readonly [value: T, weight: number])[]): T {
    const positive = choices.filter(([, weight]) => weight > 0);
    assert(positive.length > 0, 'Rng.choose: no positive weight');
    const total = positive.reduce((sum, [, weight]) => sum + weight, 0);
    let target = this.next() * total;
    for (const [value, weight] of positive) {
      target -= weight;
      if (target < 0) return value;
    }
    return positive[positive.length - 1]![0];
  }
}
