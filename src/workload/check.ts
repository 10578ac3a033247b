/**
 * The checks that depend on the sequence of a workload, run after the shape
 * check of schema.ts: names unique, content runs covering their pages, `file:`
 * content readable in full, and every step naming a process and region that
 * exist at that point of the sequence, with its pages inside the region.
 *
 * A process exists from its declaration (or the `fork` that creates it) until
 * its `exit`; a region from its declaration, its `mmap` or the fork that copies
 * it, until its `munmap`. Entries that failed the shape check arrive as
 * `undefined`; the names they would create are still taken from the raw value
 * where possible, so that one typo does not cascade into errors further down.
 */

import { statSync } from 'node:fs';
import { resolve } from 'node:path';
import { PAGE_SIZE_BYTES } from '../backend/backend.ts';
import { parseCounterRef } from './counters.ts';
import type { ContentRunEntry, ContentSpecEntry, ProcessEntry, RegionEntry, StepEntry } from './schema.ts';

export type KeyPath = readonly (string | number)[];

export interface PathIssue {
  readonly path: KeyPath;
  readonly message: string;
}

/**
 * A process entry as far as it passed the shape check: `name` is undefined when
 * it did not, and so is each region that did not.
 */
export interface ProcessCheckEntry {
  readonly name: string | undefined;
  readonly regions: readonly (RegionEntry | undefined)[];
  /** Names of the regions that failed the shape check, where the file gives one. */
  readonly rawRegionNames: readonly (string | undefined)[];
}

export function completeProcess(entry: ProcessEntry): ProcessCheckEntry {
  const regions = entry.regions ?? [];
  return { name: entry.name, regions, rawRegionNames: regions.map((region) => region.name) };
}

export interface SequenceInput {
  readonly processes: readonly ProcessCheckEntry[];
  /** `undefined` where the step failed the shape check; `rawSteps` holds what the file had. */
  readonly steps: readonly (StepEntry | undefined)[];
  readonly rawSteps: readonly unknown[];
  /** Directory that `file:` paths are relative to. */
  readonly baseDir: string;
}

interface RegionScope {
  /** `undefined` when the region came from an entry that failed the shape check. */
  readonly pageCount: number | undefined;
  readonly origin: string;
  /** The step of the `mprotect` that made the region read-only, while it is. */
  readonly readOnlySince?: number;
}

interface ProcessScope {
  readonly regions: Map<string, RegionScope>;
  /** Step number that unmapped each region no longer present, for messages. */
  readonly unmappedAt: Map<string, number>;
  /** false when the process came from an entry that failed the shape check: its regions are unknown, so none is reported missing. */
  readonly regionsKnown: boolean;
  readonly origin: string;
}

function copyProcess(parent: ProcessScope, origin: string): ProcessScope {
  return {
    regions: new Map(parent.regions),
    unmappedAt: new Map(),
    regionsKnown: parent.regionsKnown,
    origin,
  };
}

export function checkSequence(input: SequenceInput): PathIssue[] {
  return new SequenceChecker(input.baseDir).run(input);
}

class SequenceChecker {
  private readonly issues: PathIssue[] = [];
  private readonly live = new Map<string, ProcessScope>();
  private readonly exitedAt = new Map<string, number>();

  constructor(private readonly baseDir: string) {}

  run(input: SequenceInput): PathIssue[] {
    input.processes.forEach((entry, index) => {
      this.declareProcess(entry, ['processes', index]);
    });
    input.steps.forEach((entry, index) => {
      const stepNumber = index + 1;
      if (entry === undefined) this.applyRawStep(input.rawSteps[index], stepNumber);
      else this.checkStep(entry, stepNumber, ['steps', index]);
    });
    return this.issues;
  }

  private report(path: KeyPath, message: string): void {
    this.issues.push({ path, message });
  }

  private declareProcess(entry: ProcessCheckEntry, path: KeyPath): void {
    if (entry.name === undefined) return;
    const existing = this.live.get(entry.name);
    if (existing !== undefined) {
      this.report([...path, 'name'], `duplicate process name "${entry.name}" (first at ${existing.origin})`);
      return;
    }
    const regionsKnown = entry.regions.every((region) => region !== undefined);
    const scope: ProcessScope = {
      regions: new Map(),
      unmappedAt: new Map(),
      regionsKnown,
      origin: path.join('.'),
    };
    this.live.set(entry.name, scope);
    entry.regions.forEach((region, index) => {
      const regionPath = [...path, 'regions', index];
      const rawName = entry.rawRegionNames[index];
      if (region !== undefined) this.declareRegion(entry.name!, scope, region, regionPath);
      else if (rawName !== undefined && !scope.regions.has(rawName)) {
        scope.regions.set(rawName, { pageCount: undefined, origin: regionPath.join('.') });
      }
    });
  }

  private declareRegion(process: string, scope: ProcessScope, region: RegionEntry, path: KeyPath): void {
    const existing = scope.regions.get(region.name);
    if (existing !== undefined) {
      this.report(
        [...path, 'name'],
        `duplicate region name "${region.name}" in process "${process}" (first at ${existing.origin})`,
      );
    } else {
      scope.regions.set(region.name, { pageCount: region.pages, origin: path.join('.') });
      scope.unmappedAt.delete(region.name);
    }
    this.checkRuns(region.content, region.pages, [...path, 'content'], "the region's pages");
  }

  private checkRuns(runs: readonly ContentRunEntry[], pageCount: number, path: KeyPath, what: string): void {
    let coveredPages = 0;
    runs.forEach((run, index) => {
      coveredPages += run.pages;
      this.checkFile(run, run.pages, [...path, index]);
    });
    if (coveredPages !== pageCount) {
      this.report(path, `content runs cover ${coveredPages} pages; expected ${pageCount} (${what})`);
    }
  }

  /** A `file:` run must be readable in full now: a short read is an error (spec, "Page content"). */
  private checkFile(spec: ContentSpecEntry, pageCount: number, path: KeyPath): void {
    if (spec.file === undefined) return;
    const offsetBytes = spec.offset ?? 0;
    const neededBytes = offsetBytes + pageCount * PAGE_SIZE_BYTES;
    const filePath = resolve(this.baseDir, spec.file);
    let sizeBytes: number;
    try {
      const stat = statSync(filePath);
      if (!stat.isFile()) {
        this.report([...path, 'file'], `"${spec.file}" is not a regular file (${filePath})`);
        return;
      }
      sizeBytes = stat.size;
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? 'error';
      this.report([...path, 'file'], `cannot read "${spec.file}" (${code}: ${filePath})`);
      return;
    }
    if (sizeBytes < neededBytes) {
      this.report(
        [...path, 'file'],
        `"${spec.file}" has ${sizeBytes} bytes; ${pageCount} pages from offset ${offsetBytes} need ${neededBytes} (a short read is an error)`,
      );
    }
  }

  private process(name: string, stepNumber: number, path: KeyPath): ProcessScope | undefined {
    const scope = this.live.get(name);
    if (scope !== undefined) return scope;
    const exitedAt = this.exitedAt.get(name);
    const liveNames = [...this.live.keys()].join(', ') || 'none';
    this.report(
      path,
      exitedAt === undefined
        ? `no process "${name}" at step ${stepNumber}; processes at this step: ${liveNames}`
        : `no process "${name}" at step ${stepNumber}: it exited at step ${exitedAt}; processes at this step: ${liveNames}`,
    );
    return undefined;
  }

  /** The region's page count when it exists (`undefined` for an unknown size), or `null` after reporting it missing. */
  private region(
    processName: string,
    scope: ProcessScope,
    region: string,
    stepNumber: number,
    path: KeyPath,
  ): RegionScope | null {
    const found = scope.regions.get(region);
    if (found !== undefined) return found;
    if (!scope.regionsKnown) return { pageCount: undefined, origin: '' };
    const unmappedAt = scope.unmappedAt.get(region);
    const names = [...scope.regions.keys()].join(', ') || 'none';
    this.report(
      path,
      unmappedAt === undefined
        ? `process "${processName}" has no region "${region}" at step ${stepNumber}; its regions: ${names}`
        : `process "${processName}" has no region "${region}" at step ${stepNumber}: it was unmapped at step ${unmappedAt}; its regions: ${names}`,
    );
    return null;
  }

  private checkRange(
    region: string,
    found: RegionScope,
    pageIndex: number,
    pageCount: number,
    path: KeyPath,
  ): void {
    if (found.pageCount === undefined || pageIndex + pageCount <= found.pageCount) return;
    const last = pageIndex + pageCount - 1;
    this.report(
      path,
      `pages ${pageIndex}..${last} are outside region "${region}" of ${found.pageCount} pages (0..${found.pageCount - 1})`,
    );
  }

  private checkStep(step: StepEntry, stepNumber: number, path: KeyPath): void {
    if (step.write !== undefined) {
      const { process, region, page } = step.write;
      const pages = step.write.pages ?? 1;
      const opPath = [...path, 'write'];
      const found = this.processRegion(process, region, stepNumber, opPath);
      if (found !== undefined) this.checkRange(region, found, page, pages, [...opPath, 'page']);
      if (found?.readOnlySince !== undefined) {
        this.report(
          [...opPath, 'region'],
          `region "${region}" of process "${process}" is read-only since step ${found.readOnlySince} (mprotect): a write would fault; make it read-write first`,
        );
      }
      const content = step.write.content;
      if (Array.isArray(content)) this.checkRuns(content, pages, [...opPath, 'content'], "the write's pages");
      else this.checkFile(content, pages, [...opPath, 'content']);
    } else if (step.read !== undefined) {
      const { process, region, page } = step.read;
      const opPath = [...path, 'read'];
      const found = this.processRegion(process, region, stepNumber, opPath);
      if (found !== undefined)
        this.checkRange(region, found, page, step.read.pages ?? 1, [...opPath, 'page']);
    } else if (step.madvise !== undefined) {
      this.processRegion(step.madvise.process, step.madvise.region, stepNumber, [...path, 'madvise']);
    } else if (step.prctl !== undefined) {
      this.process(step.prctl.process, stepNumber, [...path, 'prctl', 'process']);
    } else if (step.mmap !== undefined) {
      this.checkMmap(step.mmap.process, step.mmap.region, stepNumber, [...path, 'mmap']);
    } else if (step.munmap !== undefined) {
      const { process, region } = step.munmap;
      const scope = this.process(process, stepNumber, [...path, 'munmap', 'process']);
      if (scope === undefined) return;
      if (this.region(process, scope, region, stepNumber, [...path, 'munmap', 'region']) === null) return;
      scope.regions.delete(region);
      scope.unmappedAt.set(region, stepNumber);
    } else if (step.fork !== undefined) {
      this.checkFork(step.fork.process, step.fork.child, stepNumber, [...path, 'fork']);
    } else if (step.mprotect !== undefined) {
      const { process, region, prot } = step.mprotect;
      const scope = this.process(process, stepNumber, [...path, 'mprotect', 'process']);
      if (scope === undefined) return;
      const found = this.region(process, scope, region, stepNumber, [...path, 'mprotect', 'region']);
      if (found === null) return;
      const { readOnlySince: _, ...rest } = found;
      scope.regions.set(region, prot === 'read' ? { ...rest, readOnlySince: stepNumber } : rest);
    } else if (step.exec !== undefined) {
      const scope = this.process(step.exec.process, stepNumber, [...path, 'exec', 'process']);
      if (scope === undefined) return;
      for (const region of scope.regions.keys()) scope.unmappedAt.set(region, stepNumber);
      scope.regions.clear();
    } else if (step.exit !== undefined) {
      const { process } = step.exit;
      if (this.process(process, stepNumber, [...path, 'exit', 'process']) === undefined) return;
      this.live.delete(process);
      this.exitedAt.set(process, stepNumber);
    } else if (step.set !== undefined && step.as !== undefined) {
      this.process(step.as, stepNumber, [...path, 'as']);
    } else if (step.expect !== undefined) {
      for (const counter of Object.keys(step.expect)) {
        const ref = parseCounterRef(counter);
        if (ref?.scope === 'process') this.process(ref.process, stepNumber, [...path, 'expect', counter]);
      }
    }
  }

  /** The region a step names, reporting a missing process or region at `opPath.process`/`opPath.region`. */
  private processRegion(
    process: string,
    region: string,
    stepNumber: number,
    opPath: KeyPath,
  ): RegionScope | undefined {
    const scope = this.process(process, stepNumber, [...opPath, 'process']);
    if (scope === undefined) return undefined;
    return this.region(process, scope, region, stepNumber, [...opPath, 'region']) ?? undefined;
  }

  private checkMmap(process: string, region: RegionEntry, stepNumber: number, opPath: KeyPath): void {
    const scope = this.process(process, stepNumber, [...opPath, 'process']);
    const regionPath = [...opPath, 'region'];
    if (scope === undefined) {
      this.checkRuns(region.content, region.pages, [...regionPath, 'content'], "the region's pages");
      return;
    }
    if (scope.regions.has(region.name)) {
      this.report([...regionPath, 'name'], `process "${process}" already has a region "${region.name}"`);
      this.checkRuns(region.content, region.pages, [...regionPath, 'content'], "the region's pages");
      return;
    }
    this.declareRegion(process, scope, region, regionPath);
  }

  private checkFork(process: string, child: string, stepNumber: number, opPath: KeyPath): void {
    const parent = this.process(process, stepNumber, [...opPath, 'process']);
    if (this.live.has(child)) {
      this.report([...opPath, 'child'], `a process "${child}" already exists at step ${stepNumber}`);
      return;
    }
    const origin = `${opPath.join('.')}.child`;
    this.live.set(
      child,
      parent === undefined
        ? { regions: new Map(), unmappedAt: new Map(), regionsKnown: false, origin }
        : copyProcess(parent, origin),
    );
    this.exitedAt.delete(child);
  }

  /** A step that failed the shape check: keep the names it would create, check nothing. */
  private applyRawStep(raw: unknown, stepNumber: number): void {
    const fork = recordAt(raw, 'fork');
    const child = stringAt(fork, 'child');
    if (child !== undefined && !this.live.has(child)) {
      const parent = this.live.get(stringAt(fork, 'process') ?? '');
      const origin = `steps.${stepNumber - 1}.fork.child`;
      this.live.set(
        child,
        parent === undefined
          ? { regions: new Map(), unmappedAt: new Map(), regionsKnown: false, origin }
          : copyProcess(parent, origin),
      );
    }
    const mmap = recordAt(raw, 'mmap');
    const scope = this.live.get(stringAt(mmap, 'process') ?? '');
    const region = recordAt(mmap, 'region');
    const regionName = stringAt(region, 'name');
    if (scope !== undefined && regionName !== undefined && !scope.regions.has(regionName)) {
      const pages = region?.pages;
      scope.regions.set(regionName, {
        pageCount: Number.isSafeInteger(pages) ? (pages as number) : undefined,
        origin: `steps.${stepNumber - 1}.mmap.region`,
      });
    }
  }
}

function recordAt(value: unknown, key: string): Record<string, unknown> | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  const inner = (value as Record<string, unknown>)[key];
  return typeof inner === 'object' && inner !== null && !Array.isArray(inner)
    ? (inner as Record<string, unknown>)
    : undefined;
}

function stringAt(value: unknown, key: string): string | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const inner = (value as Record<string, unknown>)[key];
  return typeof inner === 'string' ? inner : undefined;
}
