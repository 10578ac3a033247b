/**
 * Random valid workloads from a seed, for comparing two backends (fuzz.ts).
 *
 * Same seed, same workload: every draw comes from `Rng(seed)`. The generator
 * tracks which processes and regions exist at each step (as check.ts will
 * verify), so every step it writes names something alive and every page range
 * lies inside its region; the result goes through the same validation as a
 * file (the tests parse every generated workload).
 *
 * What it aims at: contents where duplicates are the rule (a few images, tags
 * and bytes per seed, shared across processes; zero pages; images at nearby
 * offsets), and every step type, with weights redrawn per seed (some types off,
 * some four times as likely) and an occasional focus that favours one rare
 * path: chains (max_page_sharing 2..4 and many copies of few pages), zero pages
 * (use_zero_pages 1), unmerging (unmergeable, prctl off, run 2), fork of
 * merged memory, mlocked THPs with fork, exec and munmap, or time (chains
 * with `wait` steps).
 *
 * Time. Chain pruning runs on jiffies (mm/ksm.c stable_node_dup: a chain is
 * pruned when stable_node_chains_prune_millisecs have passed since its last
 * prune or its creation). The prune setting is left at its default 2000 ms in
 * most workloads (0 or 60000 in the others), and a `wait` is either short
 * (WAIT_SHORT_MS: far below 2000 ms) or long (WAIT_LONG_MS: far above), so
 * that the real time the kernel backend spends on the other steps of a
 * workload (a few hundred ms) never decides whether a chain is pruned.
 *
 * What it keeps out, so that the real kernel gives reproducible counters:
 * - `advisor_mode: scan-time` never: the advisor measures wall-clock time.
 * - `file:` content never (it needs files next to the workload).
 * - at most `maxPages` (16 MiB) mapped at any time, counting a fork's copy of
 *   its parent's regions, and at most `maxSteps` (40) steps.
 *
 * A `set` may carry values the kernel refuses (run 3, max_page_sharing 1,
 * merge_across_nodes 2, ...) or that fail with EBUSY (max_page_sharing while
 * pages are shared): the errno is part of what the backends must agree on.
 */

import type { MadviseAdvice } from '../backend/backend.ts';
import { assert } from '../host/assert.ts';
import type {
  ContentRun,
  ContentSpec,
  ProcessSpec,
  RegionSpec,
  Step,
  SysfsSetting,
  Workload,
} from '../workload/index.ts';
import { Rng } from './rng.ts';

export { workloadToYaml } from './to-yaml.ts';

export interface GenerateOptions {
  /** Most steps in a workload (default 40). */
  readonly maxSteps?: number;
  /** Most 4 KiB pages mapped at any one time, all live processes together (default 4096, 16 MiB). */
  readonly maxPages?: number;
  /** Most processes alive at once, forks included (default 6). */
  readonly maxProcesses?: number;
  /** `Workload.fileName` (default `fuzz-<seed>.yaml`). */
  readonly fileName?: string;
  /** `Workload.baseDir` (default the current directory; generated workloads read no file). */
  readonly baseDir?: string;
}

export const DEFAULT_MAX_STEPS = 40;
export const DEFAULT_MAX_PAGES = 4096;
export const DEFAULT_MAX_PROCESSES = 6;

/** The step types the generator writes (all of workload-format.md's but `expect`). */
export type GeneratedOp = Exclude<Step['op'], 'expect'>;

/** Base weight of each step type; each seed multiplies them by factors drawn from `WEIGHT_FACTORS`. */
export const STEP_WEIGHTS: Readonly<Record<GeneratedOp, number>> = {
  scan: 24,
  batch: 6,
  wait: 2,
  write: 16,
  madvise: 10,
  set: 8,
  read: 6,
  fork: 6,
  mmap: 5,
  prctl: 4,
  munmap: 3,
  exit: 3,
  mprotect: 3,
  exec: 2,
};

/** A `wait` that never makes a chain due for pruning at the default 2000 ms, and one that always does. */
export const WAIT_SHORT_MS = 20;
export const WAIT_LONG_MS = 3000;

/** Most `wait` steps per workload: each long one costs its time on the kernel. */
const MAX_WAITS = 2;

export type GeneratedContent = Exclude<ContentSpec['kind'], 'file'>;

export const CONTENT_WEIGHTS: Readonly<Record<GeneratedContent, number>> = {
  image: 30,
  zero: 15,
  byte: 15,
  tag: 15,
  unique: 15,
};

export const ADVICE_WEIGHTS: Readonly<Record<MadviseAdvice, number>> = {
  mergeable: 30,
  unmergeable: 20,
  dontneed: 15,
  hugepage: 10,
  nohugepage: 10,
};

/** What a `set` step writes: one of these kinds, each with its own values (see `settingsFor`). */
export type SettingKind =
  | 'run'
  | 'max_page_sharing'
  | 'unmerge_then_max_page_sharing'
  | 'use_zero_pages'
  | 'smart_scan'
  | 'merge_across_nodes'
  | 'pages_to_scan'
  | 'sleep_millisecs'
  | 'advisor';

export const SETTING_WEIGHTS: Readonly<Record<SettingKind, number>> = {
  run: 6,
  max_page_sharing: 4,
  unmerge_then_max_page_sharing: 3,
  use_zero_pages: 4,
  smart_scan: 2,
  merge_across_nodes: 1,
  pages_to_scan: 1,
  sleep_millisecs: 1,
  advisor: 1,
};

/** Per-seed multipliers: a 0 turns a step type off for that seed (never scan). */
export const WEIGHT_FACTORS: readonly number[] = [0, 0.25, 0.5, 1, 1, 2, 4];

export type Focus = 'none' | 'chains' | 'zero-pages' | 'unmerge' | 'fork' | 'thp-mlock' | 'time';

const FOCUS_WEIGHTS: Readonly<Record<Focus, number>> = {
  none: 50,
  chains: 10,
  'zero-pages': 10,
  unmerge: 10,
  fork: 10,
  'thp-mlock': 10,
  time: 5,
};

/**
 * Longest run of `unique` content. Each unique page costs 128 SHA-256 to
 * build (workload-format.md, `tag:`), and a long run of pages that never merge
 * adds time, not coverage.
 */
export const MAX_UNIQUE_RUN_PAGES = 64;

const IMAGE_NAMES = ['debian-12', 'alpine-3', 'win-11'] as const;
const TAG_NAMES = ['heap', 'stack', 'cache', 'log'] as const;
const BYTE_VALUES = [0, 1, 7, 42, 255] as const;

interface Profile {
  readonly focus: Focus;
  readonly stepWeights: Record<GeneratedOp, number>;
  readonly contentWeights: Record<GeneratedContent, number>;
  readonly adviceWeights: Record<MadviseAdvice, number>;
  readonly settingWeights: Record<SettingKind, number>;
  /** The few contents this seed draws from, so that equal pages are common. */
  readonly images: readonly string[];
  readonly tags: readonly string[];
  readonly bytes: readonly number[];
  /** Chance that a region is a THP region of 512+ pages. */
  readonly thpChance: number;
  /** Chance that a region is mlocked. */
  readonly mlockChance: number;
}

function scaled<K extends string>(rng: Rng, base: Readonly<Record<K, number>>): Record<K, number> {
  const result = {} as Record<K, number>;
  for (const key of Object.keys(base) as K[]) result[key] = base[key] * rng.pick(WEIGHT_FACTORS);
  return result;
}

function drawProfile(rng: Rng): Profile {
  const focus = rng.weighted(FOCUS_WEIGHTS);
  const stepWeights = scaled(rng, STEP_WEIGHTS);
  stepWeights.scan = Math.max(stepWeights.scan, STEP_WEIGHTS.scan / 2);
  const contentWeights = scaled(rng, CONTENT_WEIGHTS);
  if (Object.values(contentWeights).every((weight) => weight === 0)) contentWeights.image = 1;
  const adviceWeights = scaled(rng, ADVICE_WEIGHTS);
  if (Object.values(adviceWeights).every((weight) => weight === 0)) adviceWeights.mergeable = 1;
  const settingWeights = scaled(rng, SETTING_WEIGHTS);
  settingWeights.run = Math.max(settingWeights.run, 1);
  switch (focus) {
    case 'chains':
      contentWeights.byte += 30;
      contentWeights.image += 20;
      stepWeights.fork += 10;
      stepWeights.scan += 10;
      break;
    case 'zero-pages':
      contentWeights.zero += 40;
      settingWeights.use_zero_pages += 6;
      break;
    case 'unmerge':
      adviceWeights.unmergeable += 30;
      stepWeights.prctl += 8;
      stepWeights.set += 8;
      settingWeights.run += 10;
      break;
    case 'fork':
      stepWeights.fork += 15;
      stepWeights.write += 10;
      break;
    case 'thp-mlock':
      stepWeights.fork += 10;
      stepWeights.exit += 4;
      stepWeights.munmap += 4;
      stepWeights.exec += 3;
      contentWeights.zero += 20;
      break;
    case 'time':
      contentWeights.byte += 30;
      stepWeights.wait += 6;
      stepWeights.fork += 6;
      stepWeights.write += 6;
      break;
    case 'none':
      break;
  }
  const imageCount = rng.int(1, 2);
  const thpMlock = focus === 'thp-mlock';
  return {
    focus,
    stepWeights,
    contentWeights,
    adviceWeights,
    settingWeights,
    images: IMAGE_NAMES.slice(0, imageCount),
    tags: TAG_NAMES.slice(0, rng.int(1, 3)),
    bytes: rng.chance(0.5) ? [0, rng.pick(BYTE_VALUES)] : BYTE_VALUES.slice(0, rng.int(1, 5)),
    thpChance: thpMlock ? rng.pick([0.3, 0.6]) : rng.pick([0, 0.05, 0.15]),
    mlockChance: thpMlock ? rng.pick([0.3, 0.6]) : 0.1,
  };
}

interface LiveRegion {
  readonly pageCount: number;
  /** Left PROT_READ by an mprotect: no write may follow until it is read-write again. */
  readOnly: boolean;
}

interface LiveProcess {
  memoryMerge: boolean;
  readonly regions: Map<string, LiveRegion>;
}

/** Builds one workload; `live` mirrors check.ts's view of what exists at the current step. */
class Generator {
  private readonly live = new Map<string, LiveProcess>();
  private nextProcessNumber = 1;
  private nextRegionNumber = 1;
  private useZeroPages = false;
  private smartScan = true;
  private waits = 0;
  /** max_page_sharing chains are likely: the profile's focus or a small max_page_sharing. */
  private chainsLikely = false;

  constructor(
    private readonly rng: Rng,
    private readonly profile: Profile,
    private readonly limits: { maxSteps: number; maxPages: number; maxProcesses: number },
  ) {}

  private livePages(): number {
    let pages = 0;
    for (const process of this.live.values()) {
      for (const region of process.regions.values()) pages += region.pageCount;
    }
    return pages;
  }

  private freePages(): number {
    return this.limits.maxPages - this.livePages();
  }

  ksmSettings(): SysfsSetting[] {
    const { rng, profile } = this;
    const settings: SysfsSetting[] = [];
    const prune = rng.weighted({ default: 14, zero: 4, long: 2 });
    if (prune !== 'default') {
      settings.push({ name: 'stable_node_chains_prune_millisecs', value: prune === 'zero' ? '0' : '60000' });
    }
    if (profile.focus === 'chains' || profile.focus === 'time' || rng.chance(0.15)) {
      this.chainsLikely = true;
      settings.push({ name: 'max_page_sharing', value: String(rng.int(2, 4)) });
    } else if (rng.chance(0.1)) {
      settings.push({ name: 'max_page_sharing', value: String(rng.int(2, 300)) });
    }
    if (profile.focus === 'zero-pages' || rng.chance(0.25)) {
      settings.push({ name: 'use_zero_pages', value: '1' });
      this.useZeroPages = true;
    }
    if (rng.chance(0.2)) {
      settings.push({ name: 'smart_scan', value: '0' });
      this.smartScan = false;
    }
    return settings;
  }

  processes(): ProcessSpec[] {
    const count = this.rng.int(1, Math.min(4, this.limits.maxProcesses));
    const processes: ProcessSpec[] = [];
    for (let i = 0; i < count; i++) {
      const name = `p${this.nextProcessNumber++}`;
      const memoryMerge = this.rng.chance(0.2);
      const process: LiveProcess = { memoryMerge, regions: new Map() };
      this.live.set(name, process);
      const regions: RegionSpec[] = [];
      const regionCount = this.rng.choose([
        [0, 1],
        [1, 6],
        [2, 4],
        [3, 2],
      ] as const);
      for (let r = 0; r < regionCount; r++) {
        const region = this.region();
        if (region === undefined) break;
        process.regions.set(region.name, { pageCount: region.pageCount, readOnly: false });
        regions.push(region);
      }
      processes.push({ name, memoryMerge, regions });
    }
    return processes;
  }

  /** A new region within the free budget, or undefined when none is left. */
  private region(): RegionSpec | undefined {
    const { rng } = this;
    const free = this.freePages();
    if (free < 1) return undefined;
    const thp = rng.chance(this.profile.thpChance) && free >= 512;
    const wanted = thp ? rng.int(512, 1024) : this.regionPageCount();
    const pageCount = Math.min(wanted, free);
    return {
      name: `r${this.nextRegionNumber++}`,
      pageCount,
      mergeable: rng.chance(0.8),
      shared: rng.chance(0.12),
      thp,
      mlock: rng.chance(this.profile.mlockChance),
      content: this.runs(
        pageCount,
        rng.choose([
          [1, 4],
          [2, 3],
          [3, 2],
          [4, 1],
        ] as const),
      ),
    };
  }

  private regionPageCount(): number {
    const size = this.rng.weighted({ tiny: 4, small: 4, large: 1 });
    if (size === 'tiny') return this.rng.int(1, 16);
    if (size === 'small') return this.rng.int(17, 128);
    return this.rng.int(129, 600);
  }

  /** Up to `runCount` runs covering exactly `pageCount` pages. */
  private runs(pageCount: number, runCount: number): ContentRun[] {
    const count = Math.min(runCount, pageCount);
    const cuts = new Set<number>();
    while (cuts.size < count - 1) cuts.add(this.rng.int(1, pageCount - 1));
    const edges = [0, ...[...cuts].sort((a, b) => a - b), pageCount];
    const runs: ContentRun[] = [];
    for (let i = 0; i + 1 < edges.length; i++) {
      const runPages = edges[i + 1]! - edges[i]!;
      runs.push({ pageCount: runPages, spec: this.contentSpec(runPages) });
    }
    return runs;
  }

  /** The content of a run of `pageCount` pages; a long run is never `unique` (see `MAX_UNIQUE_RUN_PAGES`). */
  private contentSpec(pageCount: number): ContentSpec {
    const { rng, profile } = this;
    const weights = { ...profile.contentWeights };
    if (pageCount > MAX_UNIQUE_RUN_PAGES) weights.unique = 0;
    if (Object.values(weights).every((weight) => weight === 0)) weights.image = 1;
    switch (rng.weighted(weights)) {
      case 'zero':
        return { kind: 'zero' };
      case 'byte':
        return { kind: 'byte', value: rng.pick(profile.bytes) };
      case 'tag':
        return { kind: 'tag', tag: rng.pick(profile.tags) };
      case 'image':
        // Nearby offsets: two runs of one image overlap in most of their pages.
        return {
          kind: 'image',
          image: rng.pick(profile.images),
          offsetPages: rng.chance(0.5) ? 0 : rng.int(0, 32),
        };
      case 'unique':
        return { kind: 'unique' };
    }
  }

  steps(): Step[] {
    const { rng } = this;
    const shape = rng.weighted({ few: 1, some: 5, many: 4 });
    const wanted = shape === 'few' ? rng.int(0, 5) : shape === 'some' ? rng.int(5, 20) : rng.int(20, 40);
    const stepCount = Math.min(this.limits.maxSteps, wanted);
    const steps: Step[] = [];
    for (let i = 0; i < stepCount; i++) steps.push(this.step());
    return steps;
  }

  private processNames(filter: (process: LiveProcess) => boolean = () => true): string[] {
    return [...this.live].filter(([, process]) => filter(process)).map(([name]) => name);
  }

  private step(): Step {
    const weights = { ...this.profile.stepWeights };
    const withRegions = this.processNames((process) => process.regions.size > 0);
    const withWritable = this.processNames((process) =>
      [...process.regions.values()].some((region) => !region.readOnly),
    );
    const free = this.freePages();
    if (withRegions.length === 0) {
      weights.read = 0;
      weights.madvise = 0;
      weights.munmap = 0;
      weights.mprotect = 0;
    }
    if (withWritable.length === 0) weights.write = 0;
    if (this.live.size === 0) {
      weights.prctl = 0;
      weights.mmap = 0;
      weights.fork = 0;
      weights.exit = 0;
      weights.exec = 0;
    }
    if (this.waits >= MAX_WAITS) weights.wait = 0;
    if (free < 1) weights.mmap = 0;
    const canFork = this.processNames(
      (process) => [...process.regions.values()].reduce((sum, r) => sum + r.pageCount, 0) <= free,
    );
    if (this.live.size >= this.limits.maxProcesses || canFork.length === 0) weights.fork = 0;
    // The last process exits rarely: nothing but scan and set can follow.
    if (this.live.size === 1) weights.exit *= 0.1;
    const op = this.rng.weighted<GeneratedOp>(weights);
    switch (op) {
      case 'scan':
        return {
          op,
          passes: this.rng.chance(0.04)
            ? 0
            : this.rng.choose([
                [1, 6],
                [2, 3],
                [3, 1],
              ] as const),
        };
      case 'batch':
        return { op, pageCount: this.rng.pick([1, 7, 64, 100, 1000]) };
      case 'wait':
        this.waits++;
        // A long wait matters only where chains may be: elsewhere a short one covers the step.
        return { op, ms: this.chainsLikely && this.rng.chance(0.7) ? WAIT_LONG_MS : WAIT_SHORT_MS };
      case 'mprotect': {
        const [process, region] = this.pickRegion(withRegions);
        const live = this.live.get(process)!.regions.get(region)!;
        live.readOnly = this.rng.chance(0.2) ? live.readOnly : !live.readOnly;
        return { op, process, region, prot: live.readOnly ? 'read' : 'read-write' };
      }
      case 'exec': {
        const process = this.rng.pick(this.processNames());
        this.live.get(process)!.regions.clear();
        return { op, process };
      }
      case 'write':
        return this.write(withWritable);
      case 'read':
        return this.read(withRegions);
      case 'madvise': {
        const [process, region] = this.pickRegion(withRegions);
        return { op, process, region, advice: this.rng.weighted(this.profile.adviceWeights) };
      }
      case 'prctl': {
        const process = this.rng.pick(this.processNames());
        const live = this.live.get(process)!;
        const memoryMerge = this.rng.chance(0.7) ? !live.memoryMerge : live.memoryMerge;
        live.memoryMerge = memoryMerge;
        return { op, process, memoryMerge };
      }
      case 'mmap': {
        const process = this.rng.pick(this.processNames());
        const region = this.region()!;
        this.live.get(process)!.regions.set(region.name, { pageCount: region.pageCount, readOnly: false });
        return { op, process, region };
      }
      case 'munmap': {
        const [process, region] = this.pickRegion(withRegions);
        this.live.get(process)!.regions.delete(region);
        return { op, process, region };
      }
      case 'fork': {
        const process = this.rng.pick(canFork);
        const parent = this.live.get(process)!;
        const child = `p${this.nextProcessNumber++}`;
        const regions = new Map([...parent.regions].map(([name, region]) => [name, { ...region }]));
        this.live.set(child, { memoryMerge: parent.memoryMerge, regions });
        return { op, process, child };
      }
      case 'exit': {
        const process = this.rng.pick(this.processNames());
        this.live.delete(process);
        return { op, process };
      }
      case 'set':
        return { op, settings: this.settings() };
    }
  }

  private pickRegion(processes: readonly string[]): [process: string, region: string] {
    const process = this.rng.pick(processes);
    const regions = [...this.live.get(process)!.regions.keys()];
    return [process, this.rng.pick(regions)];
  }

  private pageRange(regionPages: number, maxPages: number): { pageIndex: number; pageCount: number } {
    const { rng } = this;
    if (rng.chance(0.1)) return { pageIndex: 0, pageCount: Math.min(regionPages, maxPages) };
    const pageIndex = rng.int(0, regionPages - 1);
    const room = Math.min(regionPages - pageIndex, maxPages);
    const size = rng.weighted({ one: 4, few: 4, many: 2 });
    const pageCount = size === 'one' ? 1 : size === 'few' ? rng.int(1, Math.min(room, 8)) : rng.int(1, room);
    return { pageIndex, pageCount };
  }

  private write(processes: readonly string[]): Step {
    const process = this.rng.pick(processes);
    const writable = [...this.live.get(process)!.regions].filter(([, live]) => !live.readOnly);
    const region = this.rng.pick(writable.map(([name]) => name));
    const { pageIndex, pageCount } = this.pageRange(
      this.live.get(process)!.regions.get(region)!.pageCount,
      256,
    );
    const content = this.rng.chance(0.8)
      ? [{ pageCount, spec: this.contentSpec(pageCount) }]
      : this.runs(pageCount, this.rng.int(2, 3));
    return { op: 'write', process, region, pageIndex, pageCount, content };
  }

  private read(processes: readonly string[]): Step {
    const [process, region] = this.pickRegion(processes);
    const { pageIndex, pageCount } = this.pageRange(
      this.live.get(process)!.regions.get(region)!.pageCount,
      32,
    );
    return { op: 'read', process, region, pageIndex, pageCount };
  }

  private settings(): SysfsSetting[] {
    const { rng } = this;
    const kind = rng.weighted(this.profile.settingWeights);
    const one = (name: string, value: string | number): SysfsSetting[] => [{ name, value: String(value) }];
    switch (kind) {
      case 'run':
        return one(
          'run',
          rng.choose([
            [2, 5],
            [0, 2],
            [1, 2],
            [3, 1],
          ] as const),
        );
      case 'max_page_sharing':
        return one('max_page_sharing', this.maxPageSharing());
      case 'unmerge_then_max_page_sharing':
        return [
          { name: 'run', value: '2' },
          { name: 'max_page_sharing', value: String(this.maxPageSharing()) },
        ];
      case 'use_zero_pages':
        this.useZeroPages = rng.chance(0.8) ? !this.useZeroPages : this.useZeroPages;
        return one('use_zero_pages', this.useZeroPages ? 1 : 0);
      case 'smart_scan':
        this.smartScan = !this.smartScan;
        return one('smart_scan', this.smartScan ? 1 : 0);
      case 'merge_across_nodes':
        return one(
          'merge_across_nodes',
          rng.choose([
            [0, 2],
            [1, 2],
            [2, 1],
          ] as const),
        );
      case 'pages_to_scan':
        return one('pages_to_scan', rng.pick([0, 1, 100, 5000]));
      case 'sleep_millisecs':
        return one('sleep_millisecs', rng.pick([0, 20, 500]));
      case 'advisor':
        return rng.pick([
          one('advisor_mode', 'none'),
          one('advisor_mode', 'bogus'),
          one('advisor_max_cpu', rng.int(0, 100)),
          one('advisor_target_scan_time', rng.pick([0, 1, 200])),
          one('advisor_min_pages_to_scan', rng.pick([1, 500])),
        ]);
    }
  }

  /** Mostly small (chains), sometimes anything in 2..300, sometimes a value the kernel refuses. */
  private maxPageSharing(): number {
    const { rng } = this;
    const kind = rng.weighted({ small: 5, any: 3, refused: 1 });
    if (kind === 'small') return rng.int(2, 5);
    if (kind === 'any') return rng.int(2, 300);
    return rng.int(0, 1);
  }
}

/** A random valid workload, the same for the same seed (a safe integer) and options. */
export function generateWorkload(seed: number, options: GenerateOptions = {}): Workload {
  assert(Number.isSafeInteger(seed), `generateWorkload: seed must be a safe integer, got ${seed}`);
  const limits = {
    maxSteps: options.maxSteps ?? DEFAULT_MAX_STEPS,
    maxPages: options.maxPages ?? DEFAULT_MAX_PAGES,
    maxProcesses: options.maxProcesses ?? DEFAULT_MAX_PROCESSES,
  };
  assert(
    limits.maxSteps >= 0 && limits.maxPages >= 1 && limits.maxProcesses >= 1,
    'generateWorkload: limits',
  );
  const rng = new Rng(seed);
  const profile = drawProfile(rng);
  const generator = new Generator(rng, profile, limits);
  const ksm = generator.ksmSettings();
  const processes = generator.processes();
  const steps = generator.steps();
  return {
    version: 1,
    name: `fuzz-${seed}`,
    description: `generated by ksmkit fuzz from seed ${seed} (focus: ${profile.focus})`,
    ksm,
    processes,
    steps,
    fileName: options.fileName ?? `fuzz-${seed}.yaml`,
    baseDir: options.baseDir ?? process.cwd(),
  };
}
