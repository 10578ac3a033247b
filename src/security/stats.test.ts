import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  binomialPValueHalf,
  CHANCE_HALF_WIDTH,
  calibrateThreshold,
  normalQuantile,
  successRate,
  trialsForHalfWidth,
  verdictOf,
  wilsonInterval,
  zForConfidence,
} from './stats.ts';

const close = (actual: number, expected: number, tolerance = 5e-5) =>
  assert.ok(Math.abs(actual - expected) <= tolerance, `${actual} is not within ${tolerance} of ${expected}`);

test('Wilson interval: textbook values (50/100, 0/10, 10/10, 81/263)', () => {
  const half = wilsonInterval(50, 100);
  close(half.low, 0.4038);
  close(half.high, 0.5962);
  const none = wilsonInterval(0, 10);
  assert.equal(none.low, 0);
  close(none.high, 0.2775);
  const all = wilsonInterval(10, 10);
  close(all.low, 0.7225);
  close(all.high, 1, 1e-12);
  // Newcombe (1998), example: 81/263 -> 0.2553 to 0.3662.
  const n = wilsonInterval(81, 263);
  close(n.low, 0.2553, 1e-4);
  close(n.high, 0.3662, 1e-4);
  assert.deepEqual(wilsonInterval(0, 0), { low: 0, high: 1 });
});

test('Wilson interval refuses impossible counts', () => {
  assert.throws(() => wilsonInterval(11, 10), /successes must be an integer in \[0, 10\], got 11/);
  assert.throws(() => wilsonInterval(1, -1), /trials must be an integer >= 0/);
  assert.throws(() => wilsonInterval(0.5, 10), /successes/);
});

test('binomial p-value against 0.5: exact two-sided values', () => {
  close(binomialPValueHalf(60, 100), 0.056887, 1e-6); // R: binom.test(60, 100)
  close(binomialPValueHalf(8, 10), 0.109375, 1e-9);
  close(binomialPValueHalf(2, 10), 0.109375, 1e-9);
  close(binomialPValueHalf(0, 10), 2 / 1024, 1e-12);
  assert.equal(binomialPValueHalf(5, 10), 1);
  assert.equal(binomialPValueHalf(0, 0), 1);
  // Large n stays finite and tiny for a clear effect; symmetric.
  const p = binomialPValueHalf(1300, 2400);
  assert.ok(p > 0 && p < 1e-4, `p = ${p}`);
  close(binomialPValueHalf(1100, 2400), p, 1e-15);
  assert.equal(binomialPValueHalf(2400, 2400), 0); // underflows to 0: 2^-2399
});

test('trials for a +-2 point interval at 50%: 2,401', () => {
  assert.equal(trialsForHalfWidth(0.02), 2401);
  assert.equal(trialsForHalfWidth(0.05), 385);
  const at = wilsonInterval(1200, 2401);
  assert.ok((at.high - at.low) / 2 <= CHANCE_HALF_WIDTH);
  const below = wilsonInterval(1100, 2200);
  assert.ok((below.high - below.low) / 2 > CHANCE_HALF_WIDTH);
  assert.throws(() => trialsForHalfWidth(0), /half-width must be in \(0, 0.5\)/);
});

test('verdict: at chance only with 0.5 inside a narrow enough interval', () => {
  assert.equal(successRate(1201, 2402).verdict, 'at chance');
  assert.equal(successRate(50, 100).verdict, 'inconclusive');
  assert.equal(successRate(1300, 2400).verdict, 'above chance');
  assert.equal(successRate(1100, 2400).verdict, 'below chance');
  assert.equal(verdictOf({ low: 0.49, high: 0.51 }), 'at chance');
  assert.equal(verdictOf({ low: 0.47, high: 0.53 }), 'inconclusive');
  const r = successRate(2000, 2402);
  assert.equal(r.trials, 2402);
  close(r.accuracy, 2000 / 2402, 1e-12);
});

test('threshold: separates distinct sets perfectly, between them', () => {
  const t = calibrateThreshold([1900, 2100, 2000], [20, 30, 25]);
  assert.equal(t.calibrationAccuracy, 1);
  assert.equal(t.thresholdNs, (30 + 1900) / 2);
});

test('threshold: overlapping sets give the best balanced cut', () => {
  // merged: 5, 6, 7, 8; unique: 1, 2, 3, 6. Best cut 5.5 or 6: above 5.5 -> 5? no.
  const t = calibrateThreshold([5, 6, 7, 8], [1, 2, 3, 6]);
  // Cut at 4 (between 3 and 5): merged 4/4 above, unique 1/4 above -> (1 + 0.75) / 2.
  assert.equal(t.thresholdNs, 4);
  assert.equal(t.calibrationAccuracy, 0.875);
});

test('threshold: identical sets leave the attacker at chance', () => {
  const same = [10, 20, 30, 40];
  const t = calibrateThreshold(same, same);
  assert.equal(t.calibrationAccuracy, 0.5);
  assert.throws(() => calibrateThreshold([], [1]), /at least one merged and one unique/);
});

test('normal quantiles: 95%, 99%, Bonferroni levels', () => {
  close(normalQuantile(0.975), 1.959964, 1e-6);
  close(normalQuantile(0.995), 2.575829, 1e-6);
  close(normalQuantile(0.5), 0, 1e-12);
  close(normalQuantile(0.001), -3.090232, 1e-6);
  close(zForConfidence(0.95), 1.959964, 1e-6);
  close(zForConfidence(1 - 0.05 / 14), 2.913, 1e-3);
  assert.throws(() => normalQuantile(1), /p must be in \(0, 1\), got 1/);
  // A wider level needs more trials for the same width: 5,307 for +-2 points at 1 - 0.05/14.
  assert.equal(trialsForHalfWidth(0.02, zForConfidence(1 - 0.05 / 14)), 5307);
  const wide = successRate(2654, 5308, zForConfidence(1 - 0.05 / 14));
  assert.equal(wide.verdict, 'at chance');
  assert.ok(
    wide.ci95.high - wide.ci95.low > wilsonInterval(2654, 5308).high - wilsonInterval(2654, 5308).low,
  );
});
