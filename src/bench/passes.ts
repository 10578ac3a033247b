/**
 * Full passes of ksmd, on either side, measured one at a time: pass 1 only
 * records checksums, pass 2 merges, and the steady pass is the first pass
 * from the fourth on that, like the pass before it, leaves every counter as
 * the previous pass left it (nothing merged, unmerged or moved). The pass that
 * is first quiet still carries the last change's after-effects on both sides
 * (the engine renumbers the rmap items freed the pass before; ksmd's slabs
 * and page tables settle too): a "settle" pass, not the steady state.
 */

/** The counters compared between passes and between the two sides. */
export const PASS_COUNTERS = [
  'pages_shared',
  'pages_sharing',
  'pages_unshared',
  'pages_volatile',
  'ksm_zero_pages',
  'stable_node_chains',
  'stable_node_dups',
] as const;

export type PassCounterName = (typeof PASS_COUNTERS)[number];
export type PassCounters = Readonly<Record<PassCounterName, number>>;

export type PassRole = 'first' | 'merge' | 'settle' | 'steady';

export interface PassMeasure {
  /** 1-based. */
  readonly pass: number;
  readonly role: PassRole;
  readonly pagesScanned: number;
  /** ksmd's CPU (kernel) or this process's (engine) during the pass. */
  readonly cpuNs: number;
  readonly pagesPerCpuSecond: number;
  /** After the pass. */
  readonly counters: PassCounters;
}

/** One pass as a side measures it. */
export interface PassSample {
  readonly pagesScanned: number;
  readonly cpuNs: number;
  readonly counters: PassCounters;
}

/** Past this many passes without a steady one the workload is reported as never settling. */
export const MAX_PASSES = 8;

export function pickCounters(source: Readonly<Partial<Record<PassCounterName, unknown>>>): PassCounters {
  const out = {} as Record<PassCounterName, number>;
  for (const name of PASS_COUNTERS) {
    const v = source[name];
    if (typeof v !== 'number') throw new Error(`counter ${name} is missing (got ${JSON.stringify(v)})`);
    out[name] = v;
  }
  return out;
}

export function sameCounters(a: PassCounters, b: PassCounters): boolean {
  return PASS_COUNTERS.every((name) => a[name] === b[name]);
}

/** Names and values of the counters that differ, "pages_sharing 10 ≠ 12". */
export function counterDifferences(
  a: PassCounters,
  b: PassCounters,
): Array<{ name: PassCounterName; a: number; b: number }> {
  return PASS_COUNTERS.filter((name) => a[name] !== b[name]).map((name) => ({
    name,
    a: a[name],
    b: b[name],
  }));
}

export function rate(pages: number, cpuNs: number): number {
  return cpuNs > 0 ? pages / (cpuNs / 1e9) : 0;
}

/**
 * Runs passes until a steady one (at most MAX_PASSES), `pass` doing one
 * whole pass and returning what it measured. Returns every pass, the last
 * being the steady one unless the limit was hit (then it is "settle").
 */
export async function runPasses(pass: () => PassSample | Promise<PassSample>): Promise<PassMeasure[]> {
  const out: PassMeasure[] = [];
  for (let n = 1; n <= MAX_PASSES; n++) {
    const s = await pass();
    const previous = out.at(-1);
    const beforePrevious = out.at(-2);
    const steady =
      n >= 4 &&
      previous !== undefined &&
      beforePrevious !== undefined &&
      sameCounters(previous.counters, s.counters) &&
      sameCounters(beforePrevious.counters, previous.counters);
    const role: PassRole = n === 1 ? 'first' : n === 2 ? 'merge' : steady ? 'steady' : 'settle';
    out.push({
      pass: n,
      role,
      pagesScanned: s.pagesScanned,
      cpuNs: s.cpuNs,
      pagesPerCpuSecond: rate(s.pagesScanned, s.cpuNs),
      counters: s.counters,
    });
    if (steady) break;
  }
  return out;
}

export function passOfRole(passes: readonly PassMeasure[], role: PassRole): PassMeasure | undefined {
  return passes.find((p) => p.role === role);
}
