/**
 * Compression beside KSM on the engine's scenarios: the `compression:`
 * block, the figures of `simulate --compression` over time, and `estimate
 * --compare --scenario` against what the engine's ksmd reaches on the same
 * guests.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { compressorUnavailable } from '../tools/compress/native.ts';
import { runEstimate } from '../tools/estimate/estimate.ts';
import { PAGE_BYTES } from '../tools/estimate/model.ts';
import { ContentCompression, DEFAULT_COMPRESSIBILITY } from './compression.ts';
import { SHIPPED_CALIBRATION } from './cost.ts';
import { runOnEngine } from './engine-run.ts';
import { renderReport } from './report.ts';
import { parseScenario, ScenarioError } from './scenario.ts';
import { summarize } from './summary.ts';

const skip = compressorUnavailable() ?? false;

/** 4 guests of 4 MiB: half one image, a quarter zero, a quarter their own; 30 s with no writes. */
const SCENARIO = `
version: 1
name: small-compressed
host: { memory: 64MiB }
run: { duration: 30s, sample_every: 1s }
groups:
  - name: guest
    count: 4
    memory: 4MiB
    content:
      - { share: 0.5, image: base }
      - { share: 0.25, zero: true }
      - { share: 0.25, unique: true }
`;

test('compression: true takes the defaults; fractions are checked with the key named', () => {
  const on = parseScenario(`${SCENARIO}compression: true\n`, 's.yaml');
  assert.deepEqual(on.compression, DEFAULT_COMPRESSIBILITY);
  const some = parseScenario(`${SCENARIO}compression: { unique: 0.3 }\n`, 's.yaml');
  assert.deepEqual(some.compression, { ...DEFAULT_COMPRESSIBILITY, unique: 0.3 });
  assert.equal(parseScenario(SCENARIO, 's.yaml').compression, undefined);
  assert.throws(
    () => parseScenario(`${SCENARIO}compression: { unique: 2 }\n`, 's.yaml'),
    (e: unknown) =>
      e instanceof ScenarioError && /compression\.unique: expected a fraction 0\.05\.\.1/.test(e.message),
  );
  assert.throws(
    () => parseScenario(`${SCENARIO}compression: { heap: 0.3 }\n`, 's.yaml'),
    (e: unknown) => e instanceof ScenarioError && /unknown key; allowed: image, tag, unique/.test(e.message),
  );
});

test('synthesised pages compress to about the fraction asked, under every algorithm', { skip }, () => {
  const c = new ContentCompression({ image: 0.5, tag: 0.5, unique: 0.25 });
  for (const [hi, lo, fraction] of [
    [0x1000, 7, 0.5],
    [0x100000, 12345, 0.25],
  ] as const) {
    const a = c.analysisFor(hi, lo);
    for (let k = 1; k <= 3; k++) {
      const ratio = a[k]! / PAGE_BYTES;
      assert.ok(Math.abs(ratio - fraction) < 0.12, `kind ${hi.toString(16)} algorithm ${k}: ${ratio}`);
    }
  }
  // Zero pages are same-filled: zram keeps a word for them.
  assert.equal(c.analysisFor(0, 0)[0], 3);
});

test('simulate: zram figures at every sample; KSM then zram never below zram on what KSM leaves', {
  skip,
}, () => {
  const scenario = parseScenario(`${SCENARIO}compression: true\n`, 's.yaml');
  const compression = new ContentCompression(scenario.compression);
  const run = runOnEngine(scenario, { figures: SHIPPED_CALIBRATION.figures, compression });
  assert.ok(run.samples.every((s) => s.compression !== undefined));
  const first = run.samples[0]!.compression!;
  const last = run.samples.at(-1)!;
  const guestPages = 4 * 1024;
  assert.equal(last.compression!.pages, guestPages);
  for (const a of last.compression!.algorithms) {
    // Zero pages cost zram nothing; image pages half, unique pages 40%: about 55% saved.
    assert.ok(
      a.zramSavedBytes > 0.45 * guestPages * PAGE_BYTES && a.zramSavedBytes < 0.7 * guestPages * PAGE_BYTES,
    );
    assert.ok(
      a.ksmThenZramSavedBytes > a.zramSavedBytes,
      `${a.algorithm}: merging first adds the image copies`,
    );
  }
  // Before ksmd merged anything, KSM then zram is zram alone less nothing merged.
  assert.ok(last.general_profit > 0);
  assert.ok(first.algorithms[0]!.ksmThenZramSavedBytes <= first.algorithms[0]!.zramSavedBytes);
  const html = renderReport({
    scenario,
    results: [
      {
        spec: { label: 'scenario settings', settings: [] },
        run,
        summary: summarize(scenario, run.samples, SHIPPED_CALIBRATION.figures, run.steadyAtMs),
        wallMs: 1,
      },
    ],
    calibration: SHIPPED_CALIBRATION,
    command: 'ksmkit simulate s.yaml --compression',
    generatedAt: '2026-12-06 00:00:00',
  });
  assert.match(html, /<h2>KSM beside compression<\/h2>/);
  assert.match(html, /unique\s+pages to 0\.4 of a page/);
});

test('estimate --scenario: KSM figures as the engine converges to, compression beside them', {
  skip,
}, async () => {
  const scenario = parseScenario(`${SCENARIO}compression: true\n`, 's.yaml');
  const estimate = await runEstimate({ scenario, compare: true, sysfsDir: '/nonexistent', settings: {} });
  const run = runOnEngine(scenario, { figures: SHIPPED_CALIBRATION.figures });
  const last = run.samples.at(-1)!;
  assert.equal(estimate.sources.length, 4);
  assert.deepEqual(
    estimate.sources.map((s) => s.label),
    ['guest-1', 'guest-2', 'guest-3', 'guest-4'],
  );
  assert.equal(estimate.total.total.pages_sharing, last.pages_sharing);
  assert.equal(estimate.total.total.pages_shared, last.pages_shared);
  const compare = estimate.compare!;
  assert.equal(compare.pages, 4 * 1024);
  // KSM leaves one copy of each of the 512 image pages, 4 KSM pages for the 1,024 zero pages (chains of
  // max_page_sharing 256), and the 1,024 unique pages.
  assert.equal(compare.pagesAfterKsm, 512 + 4 + 1024);
});
