/**
 * The statistics an attack's success rate needs before anyone may call it
 * "at chance": a Wilson score interval, an exact binomial test against a coin,
 * and the threshold a timing attacker sets from pages whose state it knows.
 */

/** z for a two-sided 95% interval. */
export const Z_95 = 1.959963984540054;

/**
 * The standard normal quantile (inverse CDF), after Acklam's rational
 * approximation (relative error < 1.2e-9), enough for interval widths.
 */
export function normalQuantile(p: number): number {
  if (!(p > 0 && p < 1)) throw new RangeError(`normalQuantile: p must be in (0, 1), got ${p}`);
  const a = [
    -39.69683028665376, 220.9460984245205, -275.9285104469687, 138.357751867269, -30.66479806614716,
    2.506628277459239,
  ];
  const b = [
    -54.47609879822406, 161.5858368580409, -155.6989798598866, 66.80131188771972, -13.28068155288572,
  ];
  const c = [
    -0.007784894002430293, -0.3223964580411365, -2.400758277161838, -2.549732539343734, 4.374664141464968,
    2.938163982698783,
  ];
  const d = [0.007784695709041462, 0.3224671290700398, 2.445134137142996, 3.754408661907416];
  const low = 0.02425;
  const tail = (q: number) =>
    (((((c[0]! * q + c[1]!) * q + c[2]!) * q + c[3]!) * q + c[4]!) * q + c[5]!) /
    ((((d[0]! * q + d[1]!) * q + d[2]!) * q + d[3]!) * q + 1);
  if (p < low) return tail(Math.sqrt(-2 * Math.log(p)));
  if (p > 1 - low) return -tail(Math.sqrt(-2 * Math.log(1 - p)));
  const q = p - 0.5;
  const r = q * q;
  return (
    ((((((a[0]! * r + a[1]!) * r + a[2]!) * r + a[3]!) * r + a[4]!) * r + a[5]!) * q) /
    (((((b[0]! * r + b[1]!) * r + b[2]!) * r + b[3]!) * r + b[4]!) * r + 1)
  );
}

/** z of a two-sided interval at `confidence` (0.95 -> 1.96). */
export function zForConfidence(confidence: number): number {
  if (!(confidence > 0 && confidence < 1))
    throw new RangeError(`confidence must be in (0, 1), got ${confidence}`);
  return normalQuantile(1 - (1 - confidence) / 2);
}

/** The rule for "at chance": the 95% interval holds 0.5 and is at most this wide on either side. */
export const CHANCE_HALF_WIDTH = 0.02;

export interface Interval {
  readonly low: number;
  readonly high: number;
}

/** Wilson score interval of a proportion of `successes` in `trials` (Wilson 1927); [0, 1] for no trials. */
export function wilsonInterval(successes: number, trials: number, z = Z_95): Interval {
  checkCounts(successes, trials);
  if (trials === 0) return { low: 0, high: 1 };
  const p = successes / trials;
  const z2 = z * z;
  const denominator = 1 + z2 / trials;
  const centre = (p + z2 / (2 * trials)) / denominator;
  const half = (z * Math.sqrt((p * (1 - p)) / trials + z2 / (4 * trials * trials))) / denominator;
  return { low: Math.max(0, centre - half), high: Math.min(1, centre + half) };
}

/**
 * Two-sided exact binomial test of `successes` in `trials` against p = 0.5:
 * the probability, for a fair coin, of an outcome at least as far from n/2.
 * (For p = 0.5 the distribution is symmetric, so doubling the smaller tail is
 * the exact test.) Summed in log space, exact for millions of trials.
 */
export function binomialPValueHalf(successes: number, trials: number): number {
  checkCounts(successes, trials);
  if (trials === 0) return 1;
  const k = Math.min(successes, trials - successes);
  if (2 * k === trials) return 1;
  // P(X <= k) for X ~ Bin(n, 1/2), k < n/2.
  const logHalfN = trials * Math.log(0.5);
  let logTerm = logHalfN; // log C(n, 0) + n log 1/2
  let tail = Math.exp(logTerm);
  for (let i = 1; i <= k; i++) {
    logTerm += Math.log(trials - i + 1) - Math.log(i);
    tail += Math.exp(logTerm);
  }
  return Math.min(1, 2 * tail);
}

/** Trials needed so that an accuracy of 0.5 has a 95% Wilson half-width of at most `halfWidth`. */
export function trialsForHalfWidth(halfWidth: number, z = Z_95): number {
  if (!(halfWidth > 0 && halfWidth < 0.5))
    throw new RangeError(`half-width must be in (0, 0.5), got ${halfWidth}`);
  return Math.ceil((z * z * 0.25) / (halfWidth * halfWidth));
}

export type Verdict =
  /** The 95% interval holds 0.5 and is narrow enough (half-width <= CHANCE_HALF_WIDTH). */
  | 'at chance'
  /** The interval lies above 0.5: the attacker learns something. */
  | 'above chance'
  | 'below chance'
  /** The interval holds 0.5 but is too wide to claim chance: more trials needed. */
  | 'inconclusive';

export interface SuccessRate {
  readonly trials: number;
  readonly successes: number;
  readonly accuracy: number;
  /** The Wilson interval, 95% unless a corrected level was asked for. */
  readonly ci95: Interval;
  /** Exact two-sided binomial test against 0.5. */
  readonly pValue: number;
  readonly verdict: Verdict;
}

/** With `z` other than Z_95 (a corrected level for a family of claims), `ci95` is the interval at that level. */
export function successRate(successes: number, trials: number, z = Z_95): SuccessRate {
  const ci95 = wilsonInterval(successes, trials, z);
  return {
    trials,
    successes,
    accuracy: trials === 0 ? 0 : successes / trials,
    ci95,
    pValue: binomialPValueHalf(successes, trials),
    verdict: verdictOf(ci95),
  };
}

export function verdictOf(ci95: Interval): Verdict {
  if (ci95.low > 0.5) return 'above chance';
  if (ci95.high < 0.5) return 'below chance';
  return (ci95.high - ci95.low) / 2 <= CHANCE_HALF_WIDTH ? 'at chance' : 'inconclusive';
}

export interface Threshold {
  /** A write taking longer than this is taken for a write to a merged page. */
  readonly thresholdNs: number;
  /** Balanced accuracy ((TPR + TNR) / 2) of the threshold on the calibration samples themselves. */
  readonly calibrationAccuracy: number;
}

/**
 * The threshold a timing attacker sets from its own pages: writes to pages it
 * made merge (pairs of equal pages) and to pages it knows are unique. It picks,
 * among the midpoints between consecutive observed times, the one with the
 * best balanced accuracy on those samples (ties: the lowest). When the two
 * sets look alike (a policy that makes every write equally slow or fast) no
 * threshold separates them, and the accuracy it reaches is chance.
 */
export function calibrateThreshold(mergedNs: readonly number[], uniqueNs: readonly number[]): Threshold {
  if (mergedNs.length === 0 || uniqueNs.length === 0)
    throw new RangeError('calibrateThreshold: needs at least one merged and one unique sample');
  const points = [
    ...mergedNs.map((ns) => ({ ns, merged: true })),
    ...uniqueNs.map((ns) => ({ ns, merged: false })),
  ].sort((a, b) => a.ns - b.ns);
  // Threshold below everything: every sample is called merged.
  let mergedAbove = mergedNs.length;
  let uniqueAbove = uniqueNs.length;
  const score = () => (mergedAbove / mergedNs.length + (1 - uniqueAbove / uniqueNs.length)) / 2;
  let best = { thresholdNs: points[0]!.ns - 1, calibrationAccuracy: score() };
  for (let i = 0; i < points.length; i++) {
    if (points[i]!.merged) mergedAbove--;
    else uniqueAbove--;
    const next = points[i + 1];
    if (next !== undefined && next.ns === points[i]!.ns) continue;
    const accuracy = score();
    if (accuracy > best.calibrationAccuracy)
      best = {
        thresholdNs: next === undefined ? points[i]!.ns : (points[i]!.ns + next.ns) / 2,
        calibrationAccuracy: accuracy,
      };
  }
  return best;
}

function checkCounts(successes: number, trials: number): void {
  if (!Number.isSafeInteger(trials) || trials < 0)
    throw new RangeError(`trials must be an integer >= 0, got ${trials}`);
  if (!Number.isSafeInteger(successes) || successes < 0 || successes > trials)
    throw new RangeError(`successes must be an integer in [0, ${trials}], got ${successes}`);
}
