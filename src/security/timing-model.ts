/**
 * How long a one-byte user write takes, by the fault it meets
 * (`host.lastAccessFault`): what a timing attacker on a KSM host sees. Each
 * kind has a distribution of nanoseconds, either a log-normal (median and
 * sigma of the log) or an empirical percentile table as measured; a write's
 * time is drawn from it with a seeded random source, so a run replays exactly.
 *
 * Shipped figures (`MEASURED_TIMING`), all from this machine (Linux 6.18.44,
 * 2 cores of an AMD EPYC), with clock_gettime around each store (its own
 * cost, 20-30 ns, is in the figures, as it is in an attacker's):
 * - `none` and `cow-ksm`: `ksmkit probe --pages 1024 --unthrottled
 *   --calibration FILE` on the real ksmd (branch `probe`, 2026-11-23; 544
 *   private and 576 merged writes). At the kernel's default pacing the merged
 *   writes had the same median and a heavier tail (p95 47 us), which only
 *   makes them easier to tell apart.
 * - `wp-reuse`, `anon`, `cow`: `bench/write-fault-timing.c`, 20,000 writes each.
 * - `copy-on-access` (VUsion) is a fault plus a page copy: the fork COW
 *   figures, whose median (1.96 us) is the KSM COW's (1.91 us) within 3%, as
 *   do_wp_page() -> wp_page_copy() is one path for both.
 */
import { readFileSync } from 'node:fs';
import type { Rng } from '../fuzz/rng.ts';
import { ACCESS_FAULTS, type AccessFault } from '../host/access-fault.ts';

export { ACCESS_FAULTS };

/** Cumulative fraction (0..1) and the time at or below which that fraction of writes took. */
export type PercentilePoint = readonly [fraction: number, ns: number];

export type TimingDistribution =
  | { readonly kind: 'lognormal'; readonly medianNs: number; readonly sigma: number }
  /** Points sorted by fraction, strictly inside (0, 1); times non-decreasing. */
  | { readonly kind: 'percentiles'; readonly points: readonly PercentilePoint[] };

export interface WriteTimingModel {
  /** Where the figures come from, for reports. */
  readonly origin: string;
  readonly byFault: Readonly<Record<AccessFault, TimingDistribution>>;
}

function table(
  p5: number,
  p25: number,
  p50: number,
  p75: number,
  p95: number,
  p99: number,
): TimingDistribution {
  return {
    kind: 'percentiles',
    points: [
      [0.05, p5],
      [0.25, p25],
      [0.5, p50],
      [0.75, p75],
      [0.95, p95],
      [0.99, p99],
    ],
  };
}

const COW_MEASURED = table(1733, 1853, 1963, 2093, 2854, 4928);

/** `ksmkit probe` percentiles p1, p5, p10, p25, p50, p75, p90, p95, p99 (ns). */
function probeTable(ns: readonly number[]): TimingDistribution {
  const fractions = [0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99];
  return { kind: 'percentiles', points: fractions.map((f, i): PercentilePoint => [f, ns[i]!]) };
}

export const MEASURED_TIMING: WriteTimingModel = {
  origin:
    'Linux 6.18.44 here: ksmkit probe on the real ksmd (none, cow-ksm), bench/write-fault-timing.c (others; copy-on-access: the fork COW figures)',
  byFault: {
    none: probeTable([20, 20, 20, 30, 30, 30, 30, 30, 31]),
    'wp-reuse': table(641, 661, 711, 761, 971, 1332),
    anon: table(1282, 1362, 1432, 1502, 1863, 4096),
    cow: COW_MEASURED,
    'cow-ksm': probeTable([1670.5, 1722.8, 1743, 1813, 1913, 2055.5, 2243, 2516.3, 4964.8]),
    'copy-on-access': COW_MEASURED,
  },
};

/** One write's time in ns, drawn from the kind's distribution. */
export function sampleWriteNs(model: WriteTimingModel, fault: AccessFault, rng: Rng): number {
  const d = model.byFault[fault];
  if (d.kind === 'lognormal') {
    // Box-Muller; 1 - next() is in (0, 1], so the log is finite.
    const u1 = 1 - rng.next();
    const u2 = rng.next();
    const normal = Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
    return d.medianNs * Math.exp(d.sigma * normal);
  }
  return percentileAt(d.points, rng.next());
}

/**
 * The inverse of the piecewise log-linear CDF through the points. Below the
 * first point and above the last, the first and last segments' slopes go on
 * (clamped at half the first time and twice the last): tails are rare and only
 * their order matters to a threshold.
 */
export function percentileAt(points: readonly PercentilePoint[], u: number): number {
  if (points.length === 1) return points[0]![1];
  let i = 1;
  while (i < points.length - 1 && points[i]![0] < u) i++;
  const [f0, t0] = points[i - 1]!;
  const [f1, t1] = points[i]!;
  const slope = (Math.log(t1) - Math.log(t0)) / (f1 - f0);
  const ns = Math.exp(Math.log(t0) + slope * (u - f0));
  return Math.min(Math.max(ns, points[0]![1] / 2), points.at(-1)![1] * 2);
}

/** Checks a model: every kind present, positive times, sorted points. Throws naming what is wrong. */
export function checkTimingModel(model: WriteTimingModel): void {
  for (const fault of ACCESS_FAULTS) {
    const d = model.byFault[fault];
    if (d === undefined)
      throw new Error(`timing model ${model.origin}: no distribution for fault kind "${fault}"`);
    if (d.kind === 'lognormal') {
      if (!(d.medianNs > 0) || !(d.sigma >= 0))
        throw new Error(`timing model ${model.origin}: ${fault}: expected medianNs > 0 and sigma >= 0`);
      continue;
    }
    if (d.points.length === 0)
      throw new Error(`timing model ${model.origin}: ${fault}: no percentile points`);
    d.points.forEach(([f, ns], k) => {
      const prev = d.points[k - 1];
      if (!(f > 0 && f < 1) || !(ns > 0) || (prev !== undefined && (f <= prev[0] || ns < prev[1])))
        throw new Error(
          `timing model ${model.origin}: ${fault}: point ${k} [${f}, ${ns}]: expected fractions rising in (0, 1) and times > 0, not falling`,
        );
    });
  }
}

/**
 * Reads distributions measured by `ksmkit probe --calibration` (JSON). Accepted: an object
 * with a `faults` (or `byFault`, or top-level) map from fault kind to either
 * `{ medianNs, sigma }` or percentiles in ns given as `{ p5, p25, p50, ... }`
 * or, as the probe writes them, `{ percentiles_ns: { p1, p5, ... } }`.
 * Kinds the file lacks keep the shipped figures (`fallback`).
 */
export function readProbeCalibration(path: string, fallback = MEASURED_TIMING): WriteTimingModel {
  const raw = JSON.parse(readFileSync(path, 'utf8')) as unknown;
  return timingModelFromJson(raw, path, fallback);
}

/** A file of several runs (`{ models: [...] }`, one per ksmd pacing) gives its first unless `modelIndex` says. */
export function timingModelFromJson(
  raw: unknown,
  origin: string,
  fallback = MEASURED_TIMING,
  modelIndex = 0,
): WriteTimingModel {
  if (typeof raw !== 'object' || raw === null) throw new Error(`${origin}: expected a JSON object`);
  let root = raw as Record<string, unknown>;
  if (Array.isArray(root.models)) {
    const model = root.models[modelIndex] as unknown;
    if (typeof model !== 'object' || model === null)
      throw new Error(
        `${origin}: models[${modelIndex}]: expected a model object (the file has ${root.models.length})`,
      );
    root = model as Record<string, unknown>;
    origin = `${origin} models[${modelIndex}]`;
  }
  const map = (root.faults ?? root.byFault ?? root) as Record<string, unknown>;
  const byFault: Record<AccessFault, TimingDistribution> = { ...fallback.byFault };
  const found: string[] = [];
  for (const fault of ACCESS_FAULTS) {
    const entry = map[fault];
    if (typeof entry !== 'object' || entry === null) continue;
    const e = entry as Record<string, unknown>;
    if (typeof e.medianNs === 'number' && typeof e.sigma === 'number') {
      byFault[fault] = { kind: 'lognormal', medianNs: e.medianNs, sigma: e.sigma };
    } else {
      // `ksmkit probe --calibration` nests them: { count, median_ns, percentiles_ns: { p1, p5, ... } }.
      const table = typeof e.percentiles_ns === 'object' && e.percentiles_ns !== null ? e.percentiles_ns : e;
      const points: PercentilePoint[] = Object.entries(table)
        .flatMap(([key, value]) => {
          const m = /^p(\d+(?:\.\d+)?)(?:_?ns)?$/.exec(key);
          return m !== null && typeof value === 'number' ? [[Number(m[1]) / 100, value] as const] : [];
        })
        .sort((a, b) => a[0] - b[0]);
      if (points.length === 0)
        throw new Error(`${origin}: ${fault}: expected { medianNs, sigma } or percentiles p5, p50, ...`);
      byFault[fault] = { kind: 'percentiles', points };
    }
    found.push(fault);
  }
  if (found.length === 0)
    throw new Error(`${origin}: no distribution for any of ${ACCESS_FAULTS.join(', ')}`);
  const model = { origin: `${origin} (${found.join(', ')}; others shipped)`, byFault };
  checkTimingModel(model);
  return model;
}
