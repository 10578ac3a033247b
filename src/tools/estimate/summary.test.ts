/** Counting contents and deriving KSM's figures per source, per pair and in total. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ContentTable, NO_FRAME } from './content-table.ts';
import { type SummaryInput, summarize } from './summary.ts';

/** A page described by its content letter ('0' = zeroes) and optionally its frame. */
type Page = string | readonly [string, number];

function build(
  sources: readonly (readonly Page[])[],
  options: Partial<Omit<SummaryInput, 'table' | 'sourceCount' | 'zeroContent'>> = {},
) {
  const table = new ContentTable(2);
  let zeroContent = -1;
  sources.forEach((pages, s) => {
    table.beginSource(s);
    for (const p of pages) {
      const [content, frame] = typeof p === 'string' ? [p, NO_FRAME] : p;
      const id = table.add(content.charCodeAt(0), 7, frame);
      if (content === '0') zeroContent = id;
    }
  });
  return summarize({
    table,
    sourceCount: sources.length,
    zeroContent,
    maxPageSharing: options.maxPageSharing ?? 256,
    useZeroPages: options.useZeroPages ?? false,
    isKsmFrame: options.isKsmFrame ?? (() => false),
  });
}

test('content table: counts, entries per source, growth past its first size', () => {
  const t = new ContentTable(2);
  t.beginSource(0);
  for (let i = 0; i < 1000; i++) t.add(i % 300, i % 7, NO_FRAME);
  t.beginSource(1);
  for (let i = 0; i < 10; i++) t.add(i, i % 7, NO_FRAME);
  assert.equal(t.pageCount, 1010);
  // (i % 300, i % 7) over i < 1000: 300 × 7 pairs, of which i < 1000 reaches min(1000, 2100) = 1000 distinct keys.
  assert.equal(t.contentCount, 1000);
  const id = t.find(3, 3);
  assert.ok(id >= 0);
  const seen: Array<[number, number]> = [];
  t.forEachEntry(id, (source, count) => seen.push([source, count]));
  assert.deepEqual(seen.sort(), [
    [0, 1],
    [1, 1],
  ]);
  assert.equal(t.find(12345, 1), -1);
  assert.throws(() => t.beginSource(0), /in order/);
});

test('summary: totals, per source alone and in the set, pairs', () => {
  // A: 3 × X, 1 × Y; B: 1 × X, 1 × Z; C: 2 × Y, 1 × W.
  const s = build([
    ['X', 'X', 'X', 'Y'],
    ['X', 'Z'],
    ['Y', 'Y', 'W'],
  ]);
  assert.equal(s.examined, 9);
  assert.equal(s.distinct, 4);
  // X: 4 copies → SH 1, SG 3; Y: 3 copies → SH 1, SG 2.
  assert.equal(s.total.pages_shared, 2);
  assert.equal(s.total.pages_sharing, 5);
  assert.equal(s.total.rmap_items, 9);
  assert.equal(s.total.general_profit, 5 * 4096 - 9 * 64);
  assert.equal(s.uniquePages, 2);
  const [a, b, c] = s.sources;
  assert.equal(a!.alone.pages_sharing, 2);
  assert.equal(a!.distinct, 2);
  assert.equal(a!.inSet.ksm_merging_pages, 4);
  assert.equal(b!.alone.pages_sharing, 0);
  assert.equal(b!.inSet.ksm_merging_pages, 1);
  assert.equal(c!.alone.pages_sharing, 1);
  assert.equal(c!.inSet.ksm_merging_pages, 2);
  // Σ ksm_merging_pages = SH + SG.
  assert.equal(
    s.sources.reduce((x, y) => x + y.inSet.ksm_merging_pages, 0),
    7,
  );
  const pair = (i: number, j: number) => s.pairs.find((p) => p.a === i && p.b === j);
  // A and B: X × 4 → SG 3 (A alone had 2): +1.
  assert.equal(pair(0, 1)!.aPagesFoundInB, 3);
  assert.equal(pair(0, 1)!.bPagesFoundInA, 1);
  assert.equal(pair(0, 1)!.together.pages_sharing, 3);
  assert.equal(pair(0, 1)!.crossSharing, 1);
  // A and C: X × 3 (SG 2) and Y × 3 (SG 2).
  assert.equal(pair(0, 2)!.together.pages_sharing, 4);
  assert.equal(pair(0, 2)!.aPagesFoundInB, 1);
  assert.equal(pair(0, 2)!.bPagesFoundInA, 2);
  // B and C have nothing in common.
  assert.equal(pair(1, 2), undefined);
});

test('summary: max_page_sharing makes chains across sources', () => {
  const many = (n: number): string[] => Array.from({ length: n }, () => 'Q');
  const s = build([many(300), many(300)], { maxPageSharing: 256 });
  // 600 copies: ⌊600/256⌋ = 2, rest 88 → SH 3, SG 597.
  assert.equal(s.total.pages_shared, 3);
  assert.equal(s.total.pages_sharing, 597);
  // Each alone: 300 → SH 2, SG 298.
  assert.equal(s.sources[0]!.alone.pages_sharing, 298);
  assert.equal(s.pairs[0]!.together.pages_sharing, 597);
  // 513 copies: the leftover page stays unmerged, charged to one source.
  const odd = build([many(256), many(257)], { maxPageSharing: 256 });
  assert.equal(odd.total.pages_shared, 2);
  assert.equal(odd.total.pages_sharing, 510);
  assert.equal(
    odd.sources.reduce((x, y) => x + y.inSet.ksm_merging_pages, 0),
    512,
  );
});

test('summary: zero pages with use_zero_pages 0 merge like any content, with 1 they become KSM zero pages', () => {
  const sources = [
    ['0', '0', '0', 'A'],
    ['0', 'A'],
  ];
  const plain = build(sources, { useZeroPages: false });
  assert.equal(plain.zeroPages, 4);
  assert.equal(plain.total.pages_sharing, 3 + 1);
  assert.equal(plain.total.ksm_zero_pages, 0);
  assert.equal(plain.total.rmap_items, 6);

  const zero = build(sources, { useZeroPages: true });
  assert.equal(zero.total.pages_sharing, 1);
  assert.equal(zero.total.pages_shared, 1);
  assert.equal(zero.total.ksm_zero_pages, 4);
  // KSM zero pages keep no rmap item after convergence.
  assert.equal(zero.total.rmap_items, 2);
  assert.equal(zero.total.general_profit, (1 + 4) * 4096 - 2 * 64);
  assert.equal(zero.sources[0]!.inSet.ksm_zero_pages, 3);
  assert.equal(zero.sources[0]!.inSet.ksm_process_profit, (1 + 3) * 4096 - 1 * 64);
  assert.equal(zero.sources[0]!.alone.ksm_zero_pages, 3);
  assert.equal(zero.pairs[0]!.together.ksm_zero_pages, 4);
  assert.equal(zero.pairs[0]!.together.pages_sharing, 1);
});

test('summary: one page mapped at one frame (shared after fork) cannot merge, unless it is a KSM page already', () => {
  // Parent and child map frame 100 (content F); each also has its own copy of G.
  const sources: Page[][] = [
    [
      ['F', 100],
      ['G', 200],
    ],
    [
      ['F', 100],
      ['G', 201],
    ],
  ];
  const s = build(sources);
  assert.equal(s.total.pages_sharing, 1);
  assert.equal(s.sameFramePages, 2);
  assert.equal(s.pairs[0]!.together.pages_sharing, 1);
  // A third copy of F at another frame: all three mappings end on one KSM page.
  const third = build([...sources, [['F', 300]]]);
  assert.equal(third.total.pages_sharing, 1 + 2);
  assert.equal(third.sameFramePages, 0);
  // Frame 100 already a KSM page: its two mappings count (SH 1, SG 1).
  const ksm = build(sources, { isKsmFrame: (f) => f === 100 });
  assert.equal(ksm.total.pages_sharing, 2);
  assert.equal(ksm.total.pages_shared, 2);
  // Twice the same frame within one process (no other copy): not mergeable either.
  const self = build([
    [
      ['H', 5],
      ['H', 5],
    ],
  ]);
  assert.equal(self.total.pages_sharing, 0);
  assert.equal(self.sources[0]!.alone.pages_sharing, 0);
});
