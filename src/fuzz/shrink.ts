/**
 * Shrinking a failing workload: the smallest workload found, within a budget
 * of attempts and time, for which `stillFails` holds.
 *
 * Passes, repeated until none makes progress (or the budget runs out):
 * 0. every region at once to 1 page, or to half its size (cheap, and makes
 *    every later attempt cheaper);
 * 1. delta debugging over the steps: remove chunks of n/2, n/4, ..., 1 steps;
 * 2. remove whole processes (or merge one into another: its steps done by
 *    the other), then regions;
 * 3. make regions smaller (1 page, half, one page less);
 * 4. simplify what is left: fewer `ksm:` and `set` settings, two scans in a
 *    row as one, scan 1 pass,
 *    writes and reads of fewer pages, one content run instead of several,
 *    zero pages instead of other content, image offsets 0, false flags.
 *
 * A candidate is first repaired (steps that name a process or region that no
 * longer exists are dropped, page ranges clamped into their region; see
 * `repairWorkload`), then written with `workloadToYaml` and parsed back with
 * `parseWorkload`: one that does not parse is skipped without running it, and
 * what is tested is always the parsed workload, so the result is exactly what
 * a saved file replays. `stable_node_chains_prune_millisecs: 0` is never
 * removed from `ksm:` (without it the real kernel's chain pruning depends on
 * wall-clock time).
 */

import type { ContentRun, ProcessSpec, RegionSpec, Step, Workload } from '../workload/index.ts';
import { parseWorkload, WorkloadError } from '../workload/index.ts';
import { workloadToYaml } from './to-yaml.ts';

export interface ShrinkOptions {
  /** Most calls of `stillFails` (default 400). */
  readonly maxAttempts?: number;
  /** Stop starting new attempts after this long (default 300 000 ms). */
  readonly maxTimeMs?: number;
  /** Called after every attempt. */
  readonly onAttempt?: (progress: ShrinkProgress) => void;
  /** Milliseconds clock (default `performance.now`). */
  readonly now?: () => number;
}

export interface ShrinkProgress {
  readonly attempts: number;
  readonly accepted: boolean;
  /** The current smallest failing workload's size. */
  readonly steps: number;
  readonly processes: number;
  readonly pages: number;
}

export interface ShrinkResult {
  readonly workload: Workload;
  /** Calls of `stillFails`. */
  readonly attempts: number;
  /** Attempts that failed too, so became the new smallest. */
  readonly accepted: number;
  /** Candidates skipped because they did not parse. */
  readonly invalid: number;
  /** true when the budget ran out before the passes stopped making progress. */
  readonly budgetExhausted: boolean;
  readonly elapsedMs: number;
}

export const DEFAULT_SHRINK_ATTEMPTS = 400;
export const DEFAULT_SHRINK_TIME_MS = 300_000;

/** Settings never removed: without them the real kernel is not reproducible. */
const KEPT_KSM_SETTINGS: ReadonlySet<string> = new Set(['stable_node_chains_prune_millisecs']);

/** Pages mapped by the workload's declared and mmapped regions (a size measure). */
export function workloadPages(workload: Workload): number {
  let pages = 0;
  for (const process of workload.processes) for (const region of process.regions) pages += region.pageCount;
  for (const step of workload.steps) if (step.op === 'mmap') pages += step.region.pageCount;
  return pages;
}

class BudgetExhausted extends Error {}

export async function shrinkWorkload(
  workload: Workload,
  stillFails: (candidate: Workload) => Promise<boolean>,
  options: ShrinkOptions = {},
): Promise<ShrinkResult> {
  const shrinker = new Shrinker(workload, stillFails, options);
  let budgetExhausted = false;
  try {
    await shrinker.run();
  } catch (error) {
    if (!(error instanceof BudgetExhausted)) throw error;
    budgetExhausted = true;
  }
  return shrinker.result(budgetExhausted);
}

class Shrinker {
  private current: Workload;
  private readonly seen = new Set<string>();
  private readonly now: () => number;
  private readonly startMs: number;
  private readonly maxAttempts: number;
  private readonly maxTimeMs: number;
  private attempts = 0;
  private accepted = 0;
  private invalid = 0;

  constructor(
    workload: Workload,
    private readonly stillFails: (candidate: Workload) => Promise<boolean>,
    private readonly options: ShrinkOptions,
  ) {
    this.current = workload;
    this.seen.add(workloadToYaml(workload));
    this.now = options.now ?? (() => performance.now());
    this.startMs = this.now();
    this.maxAttempts = options.maxAttempts ?? DEFAULT_SHRINK_ATTEMPTS;
    this.maxTimeMs = options.maxTimeMs ?? DEFAULT_SHRINK_TIME_MS;
  }

  result(budgetExhausted: boolean): ShrinkResult {
    return {
      workload: this.current,
      attempts: this.attempts,
      accepted: this.accepted,
      invalid: this.invalid,
      budgetExhausted,
      elapsedMs: this.now() - this.startMs,
    };
  }

  async run(): Promise<void> {
    for (;;) {
      let progress = false;
      // Cheap first: every region at once to 1 page, or to half (each later attempt replays fewer pages).
      progress = (await this.attempt(allRegions(this.current, () => 1))) || progress;
      progress = (await this.attempt(allRegions(this.current, (pages) => Math.ceil(pages / 2)))) || progress;
      progress = (await this.removeSteps()) || progress;
      progress =
        (await this.eachIndex(
          () => this.current.processes.length,
          (i) => removeProcess(this.current, i),
        )) || progress;
      progress = (await this.mergeProcesses()) || progress;
      progress = (await this.removeRegions()) || progress;
      progress = (await this.shrinkRegions()) || progress;
      progress = (await this.simplify()) || progress;
      if (!progress) return;
    }
  }

  /**
   * Tries a candidate: repaired, validated, not seen before; it becomes the
   * current workload when it still fails.
   */
  private async attempt(candidate: Workload | undefined): Promise<boolean> {
    if (candidate === undefined) return false;
    const parsed = validated(repairWorkload(candidate));
    if (parsed === undefined) {
      this.invalid++;
      return false;
    }
    const text = workloadToYaml(parsed);
    if (this.seen.has(text)) return false;
    this.seen.add(text);
    if (this.attempts >= this.maxAttempts || this.now() - this.startMs >= this.maxTimeMs) {
      throw new BudgetExhausted();
    }
    this.attempts++;
    const fails = await this.stillFails(parsed);
    if (fails) {
      this.current = parsed;
      this.accepted++;
    }
    this.options.onAttempt?.({
      attempts: this.attempts,
      accepted: fails,
      steps: this.current.steps.length,
      processes: this.current.processes.length,
      pages: workloadPages(this.current),
    });
    return fails;
  }

  /** Delta debugging over the steps: chunks of n/2, n/4, ..., 1; a removed chunk keeps the position. */
  private async removeSteps(): Promise<boolean> {
    let progress = false;
    for (let chunk = Math.max(1, Math.floor(this.current.steps.length / 2)); chunk >= 1; ) {
      for (let start = 0; start < this.current.steps.length; ) {
        const steps = this.current.steps;
        const candidate = {
          ...this.current,
          steps: [...steps.slice(0, start), ...steps.slice(start + chunk)],
        };
        if (await this.attempt(candidate)) progress = true;
        else start += chunk;
      }
      if (chunk === 1) break;
      chunk = Math.max(1, Math.floor(chunk / 2));
    }
    return progress;
  }

  /** Tries `make(i)` for i = 0..count()-1, re-reading the count after each success. */
  private async eachIndex(
    count: () => number,
    make: (index: number) => Workload | undefined,
  ): Promise<boolean> {
    let progress = false;
    for (let index = 0; index < count(); ) {
      if (await this.attempt(make(index))) progress = true;
      else index++;
    }
    return progress;
  }

  /** A declared process removed, and what its steps did done by another one instead (fork from p1, not p2). */
  private async mergeProcesses(): Promise<boolean> {
    let progress = false;
    for (let from = 0; from < this.current.processes.length; from++) {
      for (let into = 0; into < this.current.processes.length; into++) {
        if (from === into) continue;
        if (await this.attempt(mergeProcess(this.current, from, into))) {
          progress = true;
          from = -1;
          break;
        }
      }
    }
    return progress;
  }

  private async removeRegions(): Promise<boolean> {
    let progress = false;
    for (let p = 0; p < this.current.processes.length; p++) {
      const regionCount = () => this.current.processes[p]?.regions.length ?? 0;
      const removed = (r: number): Workload =>
        withRegion(this.current, { process: p, region: r }, () => undefined);
      if (await this.eachIndex(regionCount, removed)) progress = true;
    }
    return progress;
  }

  /** Every region, declared or mmapped: 1 page, half, one page less. */
  private async shrinkRegions(): Promise<boolean> {
    let progress = false;
    for (const ref of regionRefs(this.current)) {
      for (;;) {
        const region = regionAt(this.current, ref);
        if (region === undefined || region.pageCount <= 1) break;
        const sizes = [...new Set([1, Math.floor(region.pageCount / 2), region.pageCount - 1])].filter(
          (size) => size >= 1 && size < region.pageCount,
        );
        let shrunk = false;
        for (const size of sizes) {
          if (await this.attempt(withRegion(this.current, ref, (r) => resized(r, size)))) {
            shrunk = true;
            break;
          }
        }
        if (!shrunk) break;
        progress = true;
      }
    }
    return progress;
  }

  private async simplify(): Promise<boolean> {
    let progress = false;
    const settingCount = () => this.current.ksm.length;
    const withoutSetting = (i: number): Workload | undefined => {
      const setting = this.current.ksm[i];
      if (setting === undefined || KEPT_KSM_SETTINGS.has(setting.name)) return undefined;
      return { ...this.current, ksm: this.current.ksm.filter((_, j) => j !== i) };
    };
    progress = (await this.eachIndex(settingCount, withoutSetting)) || progress;

    // Two scans in a row are one scan of both their passes.
    for (let s = 0; s + 1 < this.current.steps.length; s++) {
      const [first, second] = [this.current.steps[s]!, this.current.steps[s + 1]!];
      if (first.op !== 'scan' || second.op !== 'scan') continue;
      const steps = [...this.current.steps];
      steps.splice(s, 2, { op: 'scan', passes: first.passes + second.passes });
      if (await this.attempt({ ...this.current, steps })) progress = true;
    }
    for (let s = 0; s < this.current.steps.length; s++) {
      for (const simpler of simplerSteps(this.current.steps[s]!)) {
        const steps = this.current.steps.map((step, i) => (i === s ? simpler : step));
        if (await this.attempt({ ...this.current, steps })) progress = true;
      }
    }
    for (let p = 0; p < this.current.processes.length; p++) {
      const process = this.current.processes[p]!;
      if (process.memoryMerge) {
        const processes = this.current.processes.map((q, i) => (i === p ? { ...q, memoryMerge: false } : q));
        if (await this.attempt({ ...this.current, processes })) progress = true;
      }
    }
    for (const ref of regionRefs(this.current)) {
      const region = regionAt(this.current, ref);
      if (region === undefined) continue;
      for (const simpler of simplerRegions(region)) {
        if (await this.attempt(withRegion(this.current, ref, () => simpler))) progress = true;
      }
    }
    return progress;
  }
}

/** The candidate as a file would give it, or undefined when it does not parse. */
function validated(candidate: Workload): Workload | undefined {
  try {
    return parseWorkload(workloadToYaml(candidate), candidate.fileName, { baseDir: candidate.baseDir });
  } catch (error) {
    if (error instanceof WorkloadError) return undefined;
    throw error;
  }
}

// --- candidates -------------------------------------------------------------------

/** A region of the workload: of a declared process, or of an mmap step. */
type RegionRef = { readonly process: number; readonly region: number } | { readonly step: number };

function regionRefs(workload: Workload): RegionRef[] {
  const refs: RegionRef[] = [];
  workload.processes.forEach((process, p) => {
    process.regions.forEach((_, r) => {
      refs.push({ process: p, region: r });
    });
  });
  workload.steps.forEach((step, s) => {
    if (step.op === 'mmap') refs.push({ step: s });
  });
  return refs;
}

function regionAt(workload: Workload, ref: RegionRef): RegionSpec | undefined {
  if ('step' in ref) {
    const step = workload.steps[ref.step];
    return step?.op === 'mmap' ? step.region : undefined;
  }
  return workload.processes[ref.process]?.regions[ref.region];
}

/** The workload with one region replaced (`undefined` removes a declared region, or the mmap step). */
function withRegion(
  workload: Workload,
  ref: RegionRef,
  change: (region: RegionSpec) => RegionSpec | undefined,
): Workload {
  if ('step' in ref) {
    const steps: Step[] = [];
    workload.steps.forEach((step, s) => {
      if (s !== ref.step || step.op !== 'mmap') steps.push(step);
      else {
        const region = change(step.region);
        if (region !== undefined) steps.push({ ...step, region });
      }
    });
    return { ...workload, steps };
  }
  const processes = workload.processes.map((process, p): ProcessSpec => {
    if (p !== ref.process) return process;
    const regions: RegionSpec[] = [];
    process.regions.forEach((region, r) => {
      const changed = r === ref.region ? change(region) : region;
      if (changed !== undefined) regions.push(changed);
    });
    return { ...process, regions };
  });
  return { ...workload, processes };
}

/** Every region resized to `size(pageCount)` pages (at most its own size). */
function allRegions(workload: Workload, size: (pageCount: number) => number): Workload | undefined {
  let changed = false;
  const resize = (region: RegionSpec): RegionSpec => {
    const pageCount = Math.max(1, Math.min(region.pageCount, size(region.pageCount)));
    if (pageCount === region.pageCount) return region;
    changed = true;
    return resized(region, pageCount);
  };
  const processes = workload.processes.map((process) => ({
    ...process,
    regions: process.regions.map(resize),
  }));
  const steps = workload.steps.map((step) =>
    step.op === 'mmap' ? { ...step, region: resize(step.region) } : step,
  );
  return changed ? { ...workload, processes, steps } : undefined;
}

function removeProcess(workload: Workload, index: number): Workload | undefined {
  if (workload.processes.length <= 1) return undefined;
  return { ...workload, processes: workload.processes.filter((_, i) => i !== index) };
}

/** Process `from` removed; every step that named it names process `into` instead. */
function mergeProcess(workload: Workload, from: number, into: number): Workload | undefined {
  const fromName = workload.processes[from]?.name;
  const intoName = workload.processes[into]?.name;
  if (fromName === undefined || intoName === undefined) return undefined;
  const steps = workload.steps.map((step): Step => {
    if (
      step.op === 'scan' ||
      step.op === 'batch' ||
      step.op === 'wait' ||
      step.op === 'set' ||
      step.op === 'expect'
    )
      return step;
    return step.process === fromName ? { ...step, process: intoName } : step;
  });
  return { ...workload, processes: workload.processes.filter((_, i) => i !== from), steps };
}

/** The first `pageCount` pages of the runs. */
function truncateRuns(runs: readonly ContentRun[], pageCount: number): ContentRun[] {
  const result: ContentRun[] = [];
  let left = pageCount;
  for (const run of runs) {
    if (left <= 0) break;
    const take = Math.min(run.pageCount, left);
    result.push(take === run.pageCount ? run : { ...run, pageCount: take });
    left -= take;
  }
  return result;
}

function resized(region: RegionSpec, pageCount: number): RegionSpec {
  return { ...region, pageCount, content: truncateRuns(region.content, pageCount) };
}

/** Simpler versions of one region: flags off, one run, zero content, image offsets 0. */
function simplerRegions(region: RegionSpec): RegionSpec[] {
  const result: RegionSpec[] = [];
  if (region.thp) result.push({ ...region, thp: false });
  if (region.mlock) result.push({ ...region, mlock: false });
  if (region.shared) result.push({ ...region, shared: false });
  if (region.mergeable) result.push({ ...region, mergeable: false });
  result.push(...simplerRuns(region.content).map((content) => ({ ...region, content })));
  return result;
}

/** Fewer runs (each run merged into the one before it), then simpler specs, run by run. */
function simplerRuns(runs: readonly ContentRun[]): ContentRun[][] {
  const result: ContentRun[][] = [];
  const total = runs.reduce((sum, run) => sum + run.pageCount, 0);
  if (runs.length > 1) {
    result.push([{ pageCount: total, spec: runs[0]!.spec }]);
    for (let i = 1; i < runs.length; i++) {
      const merged = [
        ...runs.slice(0, i - 1),
        { ...runs[i - 1]!, pageCount: runs[i - 1]!.pageCount + runs[i]!.pageCount },
        ...runs.slice(i + 1),
      ];
      result.push(merged);
    }
  }
  runs.forEach((run, i) => {
    const replace = (spec: ContentRun['spec']): ContentRun[] =>
      runs.map((r, j) => (j === i ? { pageCount: r.pageCount, spec } : r));
    if (run.spec.kind !== 'zero') result.push(replace({ kind: 'zero' }));
    if (run.spec.kind === 'image' && run.spec.offsetPages !== 0)
      result.push(replace({ ...run.spec, offsetPages: 0 }));
    if (run.spec.kind === 'unique' || run.spec.kind === 'image' || run.spec.kind === 'tag') {
      result.push(replace({ kind: 'byte', value: 1 }));
    }
  });
  return result;
}

function simplerSteps(step: Step): Step[] {
  switch (step.op) {
    case 'scan':
      return step.passes > 1
        ? [
            { ...step, passes: 1 },
            { ...step, passes: step.passes - 1 },
          ]
        : [];
    case 'write': {
      const result: Step[] = [];
      if (step.pageCount > 1) {
        for (const pageCount of new Set([1, Math.floor(step.pageCount / 2)])) {
          result.push({ ...step, pageCount, content: truncateRuns(step.content, pageCount) });
        }
      }
      result.push(...simplerRuns(step.content).map((content) => ({ ...step, content })));
      return result;
    }
    case 'read':
      return step.pageCount > 1 ? [{ ...step, pageCount: 1 }] : [];
    case 'batch':
      return step.pageCount > 1 ? [{ ...step, pageCount: Math.floor(step.pageCount / 2) }] : [];
    case 'set':
      return step.settings.length > 1
        ? step.settings.map((_, i) => ({ ...step, settings: step.settings.filter((__, j) => j !== i) }))
        : [];
    case 'expect':
      return step.counters.length > 1
        ? step.counters.map((_, i) => ({ ...step, counters: step.counters.filter((__, j) => j !== i) }))
        : [];
    case 'mmap':
    case 'madvise':
    case 'prctl':
    case 'munmap':
    case 'fork':
    case 'exit':
    case 'wait':
    case 'mprotect':
    case 'exec':
      return [];
  }
}

// --- repair -----------------------------------------------------------------------

/**
 * The workload with every step that no longer makes sense dropped: a step
 * naming a process or region that does not exist at that point, a fork to a
 * name in use, an mmap of a name the process has. Page ranges of writes and
 * reads are clamped into their region (and the written runs cut to match).
 * Follows check.ts's view of what exists when.
 */
export function repairWorkload(workload: Workload): Workload {
  const live = new Map<string, Map<string, number>>();
  for (const process of workload.processes) {
    live.set(process.name, new Map(process.regions.map((region) => [region.name, region.pageCount])));
  }
  const regionPages = (process: string, region: string): number | undefined => live.get(process)?.get(region);
  /** `process/region` of the regions an mprotect left read-only: a write there would fault. */
  const readOnly = new Set<string>();
  const key = (process: string, region: string): string => `${process}/${region}`;
  const forget = (process: string, region: string): boolean => readOnly.delete(key(process, region));
  const steps: Step[] = [];
  for (const step of workload.steps) {
    switch (step.op) {
      case 'scan':
      case 'batch':
      case 'wait':
      case 'set':
        steps.push(step);
        break;
      case 'mprotect':
        if (regionPages(step.process, step.region) === undefined) break;
        if (step.prot === 'read') readOnly.add(key(step.process, step.region));
        else forget(step.process, step.region);
        steps.push(step);
        break;
      case 'exec': {
        const regions = live.get(step.process);
        if (regions === undefined) break;
        for (const region of regions.keys()) forget(step.process, region);
        regions.clear();
        steps.push(step);
        break;
      }
      case 'expect': {
        const counters = step.counters.filter(({ counter }) => {
          const dot = counter.lastIndexOf('.');
          return dot < 0 || live.has(counter.slice(0, dot));
        });
        if (counters.length > 0) steps.push({ ...step, counters });
        break;
      }
      case 'write':
      case 'read': {
        const pages = regionPages(step.process, step.region);
        if (pages === undefined) break;
        if (step.op === 'write' && readOnly.has(key(step.process, step.region))) break;
        const pageIndex = Math.min(step.pageIndex, pages - 1);
        const pageCount = Math.min(step.pageCount, pages - pageIndex);
        if (step.op === 'read') steps.push({ ...step, pageIndex, pageCount });
        else steps.push({ ...step, pageIndex, pageCount, content: truncateRuns(step.content, pageCount) });
        break;
      }
      case 'madvise':
        if (regionPages(step.process, step.region) !== undefined) steps.push(step);
        break;
      case 'prctl':
        if (live.has(step.process)) steps.push(step);
        break;
      case 'mmap': {
        const regions = live.get(step.process);
        if (regions === undefined || regions.has(step.region.name)) break;
        regions.set(step.region.name, step.region.pageCount);
        steps.push(step);
        break;
      }
      case 'munmap': {
        const regions = live.get(step.process);
        if (regions?.has(step.region) !== true) break;
        regions.delete(step.region);
        forget(step.process, step.region);
        steps.push(step);
        break;
      }
      case 'fork': {
        const parent = live.get(step.process);
        if (parent === undefined || live.has(step.child)) break;
        live.set(step.child, new Map(parent));
        for (const region of parent.keys()) {
          if (readOnly.has(key(step.process, region))) readOnly.add(key(step.child, region));
        }
        steps.push(step);
        break;
      }
      case 'exit':
        if (!live.delete(step.process)) break;
        for (const k of [...readOnly]) if (k.startsWith(`${step.process}/`)) readOnly.delete(k);
        steps.push(step);
        break;
    }
  }
  return { ...workload, steps };
}
