/**
 * The arithmetic of `ksmkit probe`, apart from any machine: the attacker's
 * threshold, the scoring against the truth, the timing summaries, and the
 * leak rate. Pure functions over arrays of ns, so each is unit-tested.
 */

/** The percentiles every timing summary carries (and the attack model reads). */
export const PERCENTILES = [1, 5, 10, 25, 50, 75, 90, 95, 99] as const;
export type PercentileKey = `p${(typeof PERCENTILES)[number]}`;

export interface TimingSummary {
  readonly count: number;
  readonly minNs: number;
  readonly maxNs: number;
  readonly meanNs: number;
  readonly medianNs: number;
  /** p1 … p99 in ns, linear interpolation between closest ranks. */
  readonly percentilesNs: Readonly<Record<PercentileKey, number>>;
}

function sortedCopy(values: readonly number[]): number[] {
  return [...values].sort((a, b) => a - b);
}

/** The q-quantile (0 ≤ q ≤ 1) of sorted values, interpolated between closest ranks. */
export function quantileSorted(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) throw new Error('quantile of no values');
  if (!(q >= 0 && q <= 1)) throw new Error(`quantile must be within [0, 1], got ${q}`);
  const rank = q * (sorted.length - 1);
  const lo = Math.floor(rank);
  const hi = Math.ceil(rank);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (rank - lo);
}

/** Count, extremes, mean and percentiles; undefined for no values (a class that did not occur). */
export function summarize(valuesNs: readonly number[]): TimingSummary | undefined {
  if (valuesNs.length === 0) return undefined;
  const sorted = sortedCopy(valuesNs);
  const percentilesNs = {} as Record<PercentileKey, number>;
  for (const p of PERCENTILES) percentilesNs[`p${p}`] = round1(quantileSorted(sorted, p / 100));
  return {
    count: sorted.length,
    minNs: sorted[0]!,
    maxNs: sorted[sorted.length - 1]!,
    meanNs: round1(sorted.reduce((s, v) => s + v, 0) / sorted.length),
    medianNs: percentilesNs.p50,
    percentilesNs,
  };
}

function round1(n: number): number {
  return Math.round(n * 10) / 10;
}

/**
 * The attacker's threshold, from its own calibration pages only (never the
 * truth): `mergedNs` are write times to pages it made identical in pairs
 * (merged for sure once ksmd passed), `privateNs` to pages it made unique.
 *
 * Best split: between every two neighbouring calibration values, their
 * geometric mean is a candidate; the one with the lowest balanced error (the
 * miss rate of the merged class plus the false-alarm rate of the private
 * class, each class weighing the same whatever its size) wins, ties to the
 * candidate closest, on a log scale, to the geometric mean of the two class
 * medians. Geometric, not arithmetic, because write times spread by factors:
 * with private writes up to 60 ns and the fastest calibration COW at 5.8 µs
 * (a loaded host), the arithmetic midpoint, 2.9 µs, would call the victim's
 * faster COWs (1.6 µs) private; the geometric one, 590 ns, does not.
 */
export function bestSplitThreshold(mergedNs: readonly number[], privateNs: readonly number[]): number {
  if (mergedNs.length === 0 || privateNs.length === 0) {
    throw new Error(
      `the threshold needs calibration writes of both kinds: ${mergedNs.length} merged, ${privateNs.length} private`,
    );
  }
  const merged = sortedCopy(mergedNs);
  const priv = sortedCopy(privateNs);
  const all = sortedCopy([...merged, ...priv]);
  const centre =
    Math.log(Math.max(1, quantileSorted(merged, 0.5))) / 2 +
    Math.log(Math.max(1, quantileSorted(priv, 0.5))) / 2;
  const candidates = new Set<number>([all[0]! - 1, all[all.length - 1]! + 1]);
  for (let i = 1; i < all.length; i++) {
    if (all[i] !== all[i - 1]) candidates.add(Math.sqrt(Math.max(1, all[i - 1]!) * Math.max(1, all[i]!)));
  }
  let best = Number.NaN;
  let bestError = Number.POSITIVE_INFINITY;
  let bestDistance = Number.POSITIVE_INFINITY;
  for (const t of candidates) {
    const missed = countBelow(merged, t) / merged.length;
    const falseAlarms = (priv.length - countBelow(priv, t)) / priv.length;
    const error = missed + falseAlarms;
    const distance = Math.abs(Math.log(Math.max(1, t)) - centre);
    if (error < bestError - 1e-12 || (Math.abs(error - bestError) <= 1e-12 && distance < bestDistance)) {
      best = t;
      bestError = error;
      bestDistance = distance;
    }
  }
  return best;
}

/** How many sorted values are strictly below t. */
function countBelow(sorted: readonly number[], t: number): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (sorted[mid]! < t) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** The attacker's verdict on each guess: merged (a write at or above the threshold) means "the victim holds it". */
export function classify(guessNs: readonly number[], thresholdNs: number): boolean[] {
  return guessNs.map((ns) => ns >= thresholdNs);
}

export interface Score {
  readonly truePositives: number;
  readonly falsePositives: number;
  readonly trueNegatives: number;
  readonly falseNegatives: number;
  /** (TP + TN) / guesses. */
  readonly accuracy: number;
  /** TP / right guesses (the victim holds the page). */
  readonly truePositiveRate: number;
  /** FP / wrong guesses. */
  readonly falsePositiveRate: number;
  /** (FP + FN) / guesses = 1 - accuracy. */
  readonly errorRate: number;
}

/** The verdicts against the truth (which guesses were the victim's pages): only here does the truth enter. */
export function score(verdicts: readonly boolean[], truth: readonly boolean[]): Score {
  if (verdicts.length !== truth.length || verdicts.length === 0) {
    throw new Error(`score: ${verdicts.length} verdicts for ${truth.length} guesses`);
  }
  let tp = 0;
  let fp = 0;
  let tn = 0;
  let fn = 0;
  for (let i = 0; i < truth.length; i++) {
    if (verdicts[i]) {
      if (truth[i]) tp++;
      else fp++;
    } else if (truth[i]) fn++;
    else tn++;
  }
  return scoreFromCounts({ tp, fp, tn, fn });
}

export function scoreFromCounts(c: { tp: number; fp: number; tn: number; fn: number }): Score {
  const total = c.tp + c.fp + c.tn + c.fn;
  const positives = c.tp + c.fn;
  const negatives = c.fp + c.tn;
  return {
    truePositives: c.tp,
    falsePositives: c.fp,
    trueNegatives: c.tn,
    falseNegatives: c.fn,
    accuracy: total === 0 ? 0 : (c.tp + c.tn) / total,
    truePositiveRate: positives === 0 ? 0 : c.tp / positives,
    falsePositiveRate: negatives === 0 ? 0 : c.fp / negatives,
    errorRate: total === 0 ? 0 : (c.fp + c.fn) / total,
  };
}

/** Binary entropy in bits: H2(p) = -p log2 p - (1-p) log2 (1-p), with H2(0) = H2(1) = 0. */
export function binaryEntropy(p: number): number {
  if (!(p >= 0 && p <= 1)) throw new Error(`binaryEntropy: p must be within [0, 1], got ${p}`);
  if (p === 0 || p === 1) return 0;
  return -p * Math.log2(p) - (1 - p) * Math.log2(1 - p);
}

export interface LeakRate {
  readonly guesses: number;
  readonly errors: number;
  readonly attackSeconds: number;
  /** guesses / attackSeconds: how fast yes/no questions get answered, right or wrong. */
  readonly guessesPerSecond: number;
  /** errors / guesses. */
  readonly errorRate: number;
  /** 1 - H2(errorRate): the capacity of a binary symmetric channel with that crossover probability. */
  readonly bitsPerGuess: number;
  /** guesses * bitsPerGuess / attackSeconds. */
  readonly bitsPerSecond: number;
  /** The error rate's 95% upper bound (Wilson), and the bits/s at that rate: what the run shows at least. */
  readonly errorRateUpper95: number;
  readonly bitsPerSecondLower95: number;
}

export const LEAK_FORMULA = 'bits/s = N * (1 - H2(e)) / T, N guesses, e error rate, T attack seconds';

/**
 * The upper end of the 95% Wilson score interval of an error rate seen as
 * `errors` out of `trials`: with no error at all the point estimate says the
 * channel is perfect, and this says how imperfect it may still be (about
 * 3.8/N for 0 errors out of N).
 */
export function errorRateUpper95(errors: number, trials: number): number {
  if (!(trials > 0) || errors < 0 || errors > trials) {
    throw new Error(`errorRateUpper95: needs 0 ≤ errors ≤ trials and trials > 0, got ${errors} of ${trials}`);
  }
  const z = 1.959964;
  const p = errors / trials;
  const z2n = (z * z) / trials;
  const centre = p + z2n / 2;
  const spread = z * Math.sqrt((p * (1 - p)) / trials + z2n / (4 * trials));
  return Math.min(1, (centre + spread) / (1 + z2n));
}

/**
 * The leak rate, taking each guess as one use of a binary symmetric channel
 * (the victim holds the page or not; the attacker reads it with error rate e).
 * An error rate above 1/2 carries as much as its complement (the attacker
 * would flip its verdicts), which H2's symmetry gives; the lower bound uses
 * the bound of e nearest 1/2.
 */
export function leakRate(run: { guesses: number; errors: number; attackSeconds: number }): LeakRate {
  const { guesses, errors, attackSeconds } = run;
  if (!(guesses > 0) || !(attackSeconds > 0) || !(errors >= 0 && errors <= guesses)) {
    throw new Error(
      `leakRate: needs guesses > 0, 0 ≤ errors ≤ guesses and attackSeconds > 0, got ${guesses}, ${errors}, ${attackSeconds}`,
    );
  }
  const errorRate = errors / guesses;
  const bitsPerGuess = 1 - binaryEntropy(errorRate);
  const upper = errorRateUpper95(errors, guesses);
  const lower = 1 - errorRateUpper95(guesses - errors, guesses);
  const worst = Math.abs(upper - 0.5) < Math.abs(lower - 0.5) ? upper : lower;
  const nearHalf = lower <= 0.5 && upper >= 0.5 ? 0.5 : worst;
  return {
    guesses,
    errors,
    attackSeconds,
    guessesPerSecond: guesses / attackSeconds,
    errorRate,
    bitsPerGuess,
    bitsPerSecond: (guesses * bitsPerGuess) / attackSeconds,
    errorRateUpper95: upper,
    bitsPerSecondLower95: (guesses * (1 - binaryEntropy(nearHalf))) / attackSeconds,
  };
}

export interface HistogramBin {
  /** Lower edge, ns (included). */
  readonly fromNs: number;
  /** Upper edge, ns (excluded, but the last bin includes its edge). */
  readonly toNs: number;
  readonly count: number;
}

/**
 * Log-spaced bins from `loNs` to `hiNs` (write times span two or three decades:
 * tens of ns for a plain store, µs for a copy). Values outside go to the end bins.
 */
export function logHistogram(
  valuesNs: readonly number[],
  range: { readonly loNs: number; readonly hiNs: number; readonly binsPerDecade: number },
): HistogramBin[] {
  const lo = Math.log10(Math.max(1, range.loNs));
  const hi = Math.log10(Math.max(range.hiNs, range.loNs + 1));
  const binCount = Math.max(1, Math.ceil((hi - lo) * range.binsPerDecade));
  const width = (hi - lo) / binCount;
  const counts = new Array<number>(binCount).fill(0);
  for (const v of valuesNs) {
    const i = Math.floor((Math.log10(Math.max(1, v)) - lo) / width);
    counts[Math.min(binCount - 1, Math.max(0, i))]!++;
  }
  return counts.map((count, i) => ({
    fromNs: 10 ** (lo + i * width),
    toNs: 10 ** (lo + (i + 1) * width),
    count,
  }));
}
