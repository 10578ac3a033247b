/** The probe's arithmetic: quantiles, the attacker's threshold, the score, the leak rate, the histogram. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  bestSplitThreshold,
  binaryEntropy,
  classify,
  errorRateUpper95,
  leakRate,
  logHistogram,
  quantileSorted,
  score,
  summarize,
} from './stats.ts';

test('quantiles interpolate between closest ranks', () => {
  const v = [10, 20, 30, 40, 50];
  assert.equal(quantileSorted(v, 0), 10);
  assert.equal(quantileSorted(v, 0.5), 30);
  assert.equal(quantileSorted(v, 1), 50);
  assert.equal(quantileSorted(v, 0.1), 14);
  assert.equal(quantileSorted([7], 0.99), 7);
  assert.throws(() => quantileSorted([], 0.5), /no values/);
  assert.throws(() => quantileSorted(v, 1.5), /within \[0, 1\]/);
});

test('a summary carries count, extremes, mean, median and p1..p99; no values give undefined', () => {
  const s = summarize([50, 10, 40, 20, 30])!;
  assert.equal(s.count, 5);
  assert.equal(s.minNs, 10);
  assert.equal(s.maxNs, 50);
  assert.equal(s.meanNs, 30);
  assert.equal(s.medianNs, 30);
  assert.deepEqual(Object.keys(s.percentilesNs), [
    'p1',
    'p5',
    'p10',
    'p25',
    'p50',
    'p75',
    'p90',
    'p95',
    'p99',
  ]);
  assert.equal(s.percentilesNs.p25, 20);
  assert.equal(summarize([]), undefined);
});

test('separated classes: the threshold lies in the gap, near the geometric mean of the medians', () => {
  const merged = [2000, 2500, 3000, 3100, 9000];
  const priv = [20, 30, 30, 40, 150];
  const t = bestSplitThreshold(merged, priv);
  assert.ok(t > 150 && t < 2000, `threshold ${t} in the gap`);
  // The cut in the gap is its middle on a log scale: √(150 × 2000) ≈ 548 ns, not the arithmetic 1075.
  assert.ok(Math.abs(t - Math.sqrt(150 * 2000)) < 1e-9);
  assert.deepEqual(classify([25, 547, 548, 1000, 5000], t), [false, false, true, true, true]);
});

test('overlapping classes: the cut with the lowest balanced error wins', () => {
  // One private write was slow (a preemption): 5000 sits among the merged ones.
  const merged = [1000, 1100, 1200, 1300];
  const priv = [10, 20, 30, 5000];
  const t = bestSplitThreshold(merged, priv);
  const missed = merged.filter((v) => v < t).length / merged.length;
  const falseAlarms = priv.filter((v) => v >= t).length / priv.length;
  assert.equal(missed + falseAlarms, 0.25);
  assert.ok(t > 30 && t <= 1000);
  assert.ok(Math.abs(t - Math.sqrt(30 * 1000)) < 1e-9, 'the middle, on a log scale, of the gap it cuts');
  // Class sizes do not tilt the cut: four times the private samples, the same cut.
  assert.equal(bestSplitThreshold(merged, [...priv, ...priv, ...priv, ...priv]), t);
});

test('the threshold needs both kinds of calibration writes', () => {
  assert.throws(() => bestSplitThreshold([], [1, 2]), /0 merged, 2 private/);
  assert.throws(() => bestSplitThreshold([1], []), /1 merged, 0 private/);
});

test('score counts true and false positives and negatives against the truth', () => {
  const s = score([true, true, false, false, true], [true, false, false, true, true]);
  assert.deepEqual([s.truePositives, s.falsePositives, s.trueNegatives, s.falseNegatives], [2, 1, 1, 1]);
  assert.equal(s.accuracy, 3 / 5);
  assert.equal(s.truePositiveRate, 2 / 3);
  assert.equal(s.falsePositiveRate, 1 / 2);
  assert.equal(s.errorRate, 2 / 5);
  assert.throws(() => score([true], [true, false]), /1 verdicts for 2 guesses/);
});

test('binary entropy: 0 at certainty, 1 bit at a coin toss, symmetric', () => {
  assert.equal(binaryEntropy(0), 0);
  assert.equal(binaryEntropy(1), 0);
  assert.equal(binaryEntropy(0.5), 1);
  assert.ok(Math.abs(binaryEntropy(0.11) - 0.4999) < 1e-3);
  assert.equal(binaryEntropy(0.2), binaryEntropy(0.8));
  assert.throws(() => binaryEntropy(-0.1), /within \[0, 1\]/);
});

test('bits/s = N (1 - H2(e)) / T; a coin toss leaks nothing', () => {
  const perfect = leakRate({ guesses: 1000, errors: 0, attackSeconds: 2 });
  assert.equal(perfect.guessesPerSecond, 500);
  assert.equal(perfect.bitsPerGuess, 1);
  assert.equal(perfect.bitsPerSecond, 500);
  const noisy = leakRate({ guesses: 1000, errors: 110, attackSeconds: 2 });
  assert.ok(Math.abs(noisy.bitsPerSecond - (1000 * (1 - binaryEntropy(0.11))) / 2) < 1e-9);
  const chance = leakRate({ guesses: 1000, errors: 500, attackSeconds: 2 });
  assert.equal(chance.bitsPerSecond, 0);
  assert.equal(chance.bitsPerSecondLower95, 0);
  // Always wrong is as good as always right: flip every verdict.
  assert.equal(leakRate({ guesses: 1000, errors: 1000, attackSeconds: 2 }).bitsPerSecond, 500);
  assert.throws(() => leakRate({ guesses: 10, errors: 0, attackSeconds: 0 }), /attackSeconds > 0/);
  assert.throws(() => leakRate({ guesses: 10, errors: 11, attackSeconds: 1 }), /errors ≤ guesses/);
});

test('the lower bound: no error in N guesses still allows an error rate of about 3.8/N', () => {
  const upper = errorRateUpper95(0, 1000);
  assert.ok(upper > 0.0035 && upper < 0.004, `upper ${upper}`);
  assert.ok(errorRateUpper95(50, 100) > 0.5);
  const leak = leakRate({ guesses: 1000, errors: 0, attackSeconds: 1 });
  assert.ok(leak.bitsPerSecondLower95 < leak.bitsPerSecond);
  assert.ok(Math.abs(leak.bitsPerSecondLower95 - 1000 * (1 - binaryEntropy(upper))) < 1e-9);
});

test('the log histogram keeps every value, the outliers in the end bins', () => {
  const values = [20, 30, 30, 2000, 3000, 100_000, 1];
  const bins = logHistogram(values, { loNs: 10, hiNs: 10_000, binsPerDecade: 4 });
  assert.equal(bins.length, 12);
  assert.equal(
    bins.reduce((s, b) => s + b.count, 0),
    values.length,
  );
  assert.equal(bins[0]!.count, 1); // 1 ns, below the range
  assert.equal(bins[1]!.count, 3); // 20 and 30 ns: from 10^1.25 to 10^1.5
  assert.equal(bins[bins.length - 1]!.count, 1);
  assert.ok(Math.abs(bins[0]!.fromNs - 10) < 1e-9);
  assert.ok(Math.abs(bins[bins.length - 1]!.toNs - 10_000) < 1e-6);
});
