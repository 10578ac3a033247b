/**
 * What the replay last wrote to every page, so that a `read` step can check
 * the backend's bytes against it.
 *
 * A page is recorded as the run that wrote it plus its index in that run, not
 * as bytes: the bytes are rebuilt on demand (content is deterministic), which
 * costs 12 bytes per page instead of 4096 and names the expected content in
 * messages. A page with no run holds zeros (never written, or dropped).
 *
 * The ledger follows the workload's view of which processes and regions
 * exist (as check.ts validated it), whatever the backend answered; only the
 * page contents depend on the backend accepting a write or a MADV_DONTNEED.
 *
 * Semantics followed (mm/memory.c, mm/madvise.c, kernel/fork.c):
 * - fork: a private region is copied (copy-on-write: later writes on either
 *   side are not seen by the other); a MAP_SHARED region is the same memory in
 *   parent and child, so both see every write.
 * - MADV_DONTNEED: a private anonymous page reads as zero afterwards; a shared
 *   anonymous (shmem) page keeps its data, since DONTNEED only unmaps it.
 */

import { PAGE_SIZE_BYTES } from '../backend/backend.ts';
import { assert } from '../host/assert.ts';
import { type ContentPlacement, contentPages, describeRunPage, type TagPageCache } from './content.ts';
import type { ContentSpec } from './workload.ts';

interface WrittenRun {
  readonly spec: ContentSpec;
  readonly placement: ContentPlacement;
}

class RegionPages {
  readonly writtenBy: (WrittenRun | undefined)[];
  readonly runPage: Int32Array;

  constructor(
    readonly pageCount: number,
    readonly shared: boolean,
    from?: RegionPages,
  ) {
    this.writtenBy =
      from === undefined ? new Array<WrittenRun | undefined>(pageCount).fill(undefined) : [...from.writtenBy];
    this.runPage = from === undefined ? new Int32Array(pageCount) : from.runPage.slice();
  }
}

/** The bytes a page should hold, and how to name them. */
export interface ExpectedPage {
  readonly bytes: Uint8Array;
  readonly description: string;
}

const ZERO_PAGE: ExpectedPage = { bytes: new Uint8Array(PAGE_SIZE_BYTES), description: 'zero' };

export class PageLedger {
  private readonly processes = new Map<string, Map<string, RegionPages>>();

  constructor(private readonly cache: TagPageCache) {}

  spawn(process: string): void {
    assert(!this.processes.has(process), `PageLedger.spawn: process "${process}" already exists`);
    this.processes.set(process, new Map());
  }

  /** A new mapping: every page reads as zero until written. */
  map(
    process: string,
    region: string,
    options: { readonly pageCount: number; readonly shared: boolean },
  ): void {
    const regions = this.regionsOf(process);
    assert(!regions.has(region), `PageLedger.map: "${process}" already has region "${region}"`);
    regions.set(region, new RegionPages(options.pageCount, options.shared));
  }

  unmap(process: string, region: string): void {
    this.regionsOf(process).delete(region);
  }

  fork(parent: string, child: string): void {
    assert(!this.processes.has(child), `PageLedger.fork: process "${child}" already exists`);
    const copies = new Map<string, RegionPages>();
    for (const [name, pages] of this.regionsOf(parent)) {
      copies.set(name, pages.shared ? pages : new RegionPages(pages.pageCount, false, pages));
    }
    this.processes.set(child, copies);
  }

  exit(process: string): void {
    this.processes.delete(process);
  }

  /** exec: a fresh address space without any region. */
  exec(process: string): void {
    this.regionsOf(process).clear();
  }

  /** Records that pages `firstRunPage .. firstRunPage + pageCount - 1` of a run were written. */
  record(
    spec: ContentSpec,
    placement: ContentPlacement,
    span: { readonly firstRunPage: number; readonly pageCount: number },
  ): void {
    const pages = this.regionPages(placement.process, placement.region);
    const run: WrittenRun = { spec, placement };
    const firstRegionPage = placement.regionPageIndex + span.firstRunPage;
    assert(
      firstRegionPage >= 0 && firstRegionPage + span.pageCount <= pages.pageCount,
      `PageLedger.record: pages ${firstRegionPage}+${span.pageCount} outside "${placement.region}"`,
    );
    for (let i = 0; i < span.pageCount; i++) {
      pages.writtenBy[firstRegionPage + i] = run;
      pages.runPage[firstRegionPage + i] = span.firstRunPage + i;
    }
  }

  /** MADV_DONTNEED over the whole region. */
  dropPages(process: string, region: string): void {
    const pages = this.regionPages(process, region);
    if (pages.shared) return;
    pages.writtenBy.fill(undefined);
    pages.runPage.fill(0);
  }

  expectedPage(process: string, region: string, pageIndex: number): ExpectedPage {
    const pages = this.regionPages(process, region);
    assert(
      pageIndex >= 0 && pageIndex < pages.pageCount,
      `PageLedger.expectedPage: page ${pageIndex} outside`,
    );
    const run = pages.writtenBy[pageIndex];
    if (run === undefined) return ZERO_PAGE;
    const runPage = pages.runPage[pageIndex]!;
    return {
      bytes: contentPages(run.spec, run.placement, { firstRunPage: runPage, pageCount: 1 }, this.cache),
      description: describeRunPage(run.spec, run.placement, runPage),
    };
  }

  private regionsOf(process: string): Map<string, RegionPages> {
    const regions = this.processes.get(process);
    assert(regions !== undefined, `PageLedger: no process "${process}"`);
    return regions;
  }

  private regionPages(process: string, region: string): RegionPages {
    const pages = this.regionsOf(process).get(region);
    assert(pages !== undefined, `PageLedger: "${process}" has no region "${region}"`);
    return pages;
  }
}
