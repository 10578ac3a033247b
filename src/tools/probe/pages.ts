/**
 * The pages of one probe round, from its seed: the victim's secrets, the
 * attacker's guesses (exactly half of them a victim secret, which ones drawn
 * at random), and the attacker's calibration pages, shuffled together in its
 * address space so that no kind of page sits in one block.
 *
 * The truth (which guess is right) is kept beside the pages for scoring; what
 * the attacker process receives is only bytes, and what its classifier sees is
 * only write times and which of its own pages it made identical or unique.
 */
import { Rng } from '../../fuzz/rng.ts';

export const PAGE_BYTES = 4096;

/** One page of the attacker's region. */
export type AttackerPage =
  | { readonly kind: 'guess'; readonly guess: number }
  /** Half of a pair the attacker made identical: merged for sure after ksmd's passes. */
  | { readonly kind: 'pair'; readonly pair: number }
  /** A page the attacker made unique: never merged. */
  | { readonly kind: 'unique' };

export interface RoundPages {
  /** pages × 4096 bytes: every page random, all different. */
  readonly victim: Uint8Array;
  /** attackerLayout.length × 4096 bytes, page i as attackerLayout[i] says. */
  readonly attacker: Uint8Array;
  readonly attackerLayout: readonly AttackerPage[];
  /** truth[g]: guess g is one of the victim's pages. For scoring only. */
  readonly truth: readonly boolean[];
}

export interface RoundPagesOptions {
  readonly seed: number;
  /** Victim pages, and attacker guesses: the same number. Even, so exactly half can be right. */
  readonly pages: number;
  /** Calibration: this many identical pairs, and as many unique pages. */
  readonly calibrationPairs: number;
}

function fillRandom(rng: Rng, bytes: Uint8Array, page: number): void {
  const words = new Uint32Array(bytes.buffer, bytes.byteOffset + page * PAGE_BYTES, PAGE_BYTES / 4);
  for (let i = 0; i < words.length; i++) words[i] = rng.nextU32();
}

function shuffle<T>(rng: Rng, items: T[]): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = rng.int(0, i);
    [items[i], items[j]] = [items[j]!, items[i]!];
  }
  return items;
}

/** The round's pages; the same seed gives the same bytes, truth and layout. */
export function buildRoundPages(options: RoundPagesOptions): RoundPages {
  const { seed, pages, calibrationPairs } = options;
  if (!Number.isSafeInteger(pages) || pages < 2 || pages % 2 !== 0) {
    throw new Error(`pages must be an even integer ≥ 2 (half the guesses are right), got ${pages}`);
  }
  if (!Number.isSafeInteger(calibrationPairs) || calibrationPairs < 1) {
    throw new Error(`calibrationPairs must be a positive integer, got ${calibrationPairs}`);
  }
  const rng = new Rng(seed);
  const victim = new Uint8Array(pages * PAGE_BYTES);
  for (let i = 0; i < pages; i++) fillRandom(rng, victim, i);

  // Exactly half right: a random half of the guess indices, each guessing a distinct victim page.
  const order = shuffle(
    rng,
    Array.from({ length: pages }, (_, i) => i),
  );
  const truth = new Array<boolean>(pages).fill(false);
  for (const g of order.slice(0, pages / 2)) truth[g] = true;
  const secretOf = shuffle(
    rng,
    Array.from({ length: pages }, (_, i) => i),
  );

  const layout: AttackerPage[] = [];
  for (let g = 0; g < pages; g++) layout.push({ kind: 'guess', guess: g });
  for (let p = 0; p < calibrationPairs; p++)
    layout.push({ kind: 'pair', pair: p }, { kind: 'pair', pair: p });
  for (let u = 0; u < calibrationPairs; u++) layout.push({ kind: 'unique' });
  shuffle(rng, layout);

  const attacker = new Uint8Array(layout.length * PAGE_BYTES);
  const pairPage = new Map<number, number>();
  for (let i = 0; i < layout.length; i++) {
    const page = layout[i]!;
    if (page.kind === 'guess' && truth[page.guess]) {
      const s = secretOf[page.guess]!;
      attacker.set(victim.subarray(s * PAGE_BYTES, (s + 1) * PAGE_BYTES), i * PAGE_BYTES);
    } else if (page.kind === 'pair' && pairPage.has(page.pair)) {
      const first = pairPage.get(page.pair)!;
      attacker.copyWithin(i * PAGE_BYTES, first * PAGE_BYTES, (first + 1) * PAGE_BYTES);
    } else {
      fillRandom(rng, attacker, i);
      if (page.kind === 'pair') pairPage.set(page.pair, i);
    }
  }
  return { victim, attacker, attackerLayout: layout, truth };
}
