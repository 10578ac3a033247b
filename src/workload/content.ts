/**
 * Page bytes from content specs, exactly as workload-format.md "Page content"
 * defines them, so that both backends (and any other tool) get identical bytes:
 *
 *   zero         4096 zero bytes
 *   byte B       4096 bytes equal to B
 *   tag S        for k = 0..127: SHA-256 of the UTF-8 string `ksmkit:S:k` (32 bytes each)
 *   image S, N   page i of the run = tag `S/(N+i)`
 *   unique       tag `unique/P/R/I/G` (process, region, page index in the region, writing step; 0 = initial fill)
 *   file PATH, B consecutive pages of the file from byte B; a short read is an error
 *
 * A tag page costs 128 SHA-256 calls. Image pages repeat across processes (two
 * guests of one image hold the same pages), so tag pages are kept in a bounded
 * LRU cache.
 */

import { hash } from 'node:crypto';
import { closeSync, openSync, readSync } from 'node:fs';
import { resolve } from 'node:path';
import { PAGE_SIZE_BYTES } from '../backend/backend.ts';
import { assert, assertNever } from '../host/assert.ts';
import type { ContentRun, ContentSpec } from './workload.ts';

const SHA256_BYTES = 32;
export const TAG_DIGESTS_PER_PAGE = PAGE_SIZE_BYTES / SHA256_BYTES;

/** The 4096 bytes of `tag: S`. */
export function tagPage(tag: string): Uint8Array {
  const page = new Uint8Array(PAGE_SIZE_BYTES);
  for (let k = 0; k < TAG_DIGESTS_PER_PAGE; k++) {
    page.set(hash('sha256', `ksmkit:${tag}:${k}`, 'buffer'), k * SHA256_BYTES);
  }
  return page;
}

/** 64 MiB of tag pages. */
export const DEFAULT_TAG_CACHE_PAGES = 16384;

/** A bounded LRU of tag pages. The pages it returns are shared: copy, never modify. */
export class TagPageCache {
  private readonly pages = new Map<string, Uint8Array>();
  hitCount = 0;
  missCount = 0;

  constructor(readonly capacityPages: number = DEFAULT_TAG_CACHE_PAGES) {
    assert(
      Number.isSafeInteger(capacityPages) && capacityPages >= 0,
      `TagPageCache: bad capacity ${capacityPages}`,
    );
  }

  get sizePages(): number {
    return this.pages.size;
  }

  page(tag: string): Uint8Array {
    const cached = this.pages.get(tag);
    if (cached !== undefined) {
      this.hitCount++;
      // Map keeps insertion order: re-inserting makes this the most recently used.
      this.pages.delete(tag);
      this.pages.set(tag, cached);
      return cached;
    }
    this.missCount++;
    const page = tagPage(tag);
    if (this.capacityPages === 0) return page;
    if (this.pages.size >= this.capacityPages) {
      const oldest = this.pages.keys().next();
      if (oldest.done !== true) this.pages.delete(oldest.value);
    }
    this.pages.set(tag, page);
    return page;
  }
}

/** The cache used when none is passed. */
export const sharedTagPageCache = new TagPageCache();

/** Where a run lands: what `unique` and `file` need besides the spec. */
export interface ContentPlacement {
  readonly process: string;
  readonly region: string;
  /** Index in the region of the run's first page (I of `unique` is this plus the page's index in the run). */
  readonly regionPageIndex: number;
  /** The step that writes the run, 1-based; 0 for the initial fill (G of `unique`). */
  readonly step: number;
  /** Directory that `file:` paths are relative to (the workload file's). */
  readonly baseDir: string;
}

/** Pages of a run, by their index in the run. */
export interface RunPageSpan {
  readonly firstRunPage: number;
  readonly pageCount: number;
}

/** A `file:` run that cannot be read in full (the file changed after the workload was validated). */
export class ContentError extends Error {
  override name = 'ContentError';
}

/** The bytes of a whole run: `run.pageCount` × 4096. */
export function contentBytes(
  run: ContentRun,
  placement: ContentPlacement,
  cache: TagPageCache = sharedTagPageCache,
): Uint8Array {
  return contentPages(run.spec, placement, { firstRunPage: 0, pageCount: run.pageCount }, cache);
}

/** The bytes of `span.pageCount` pages of a run from page `span.firstRunPage` of the run. */
export function contentPages(
  spec: ContentSpec,
  placement: ContentPlacement,
  span: RunPageSpan,
  cache: TagPageCache = sharedTagPageCache,
): Uint8Array {
  const { firstRunPage, pageCount } = span;
  assert(
    Number.isSafeInteger(firstRunPage) && firstRunPage >= 0,
    `contentPages: bad first page ${firstRunPage}`,
  );
  assert(Number.isSafeInteger(pageCount) && pageCount >= 0, `contentPages: bad page count ${pageCount}`);
  const bytes = new Uint8Array(pageCount * PAGE_SIZE_BYTES);
  switch (spec.kind) {
    case 'zero':
      return bytes;
    case 'byte':
      return bytes.fill(spec.value);
    case 'tag': {
      const page = cache.page(spec.tag);
      for (let i = 0; i < pageCount; i++) bytes.set(page, i * PAGE_SIZE_BYTES);
      return bytes;
    }
    case 'image':
    case 'unique':
      for (let i = 0; i < pageCount; i++) {
        bytes.set(cache.page(pageTag(spec, placement, firstRunPage + i)), i * PAGE_SIZE_BYTES);
      }
      return bytes;
    case 'file':
      readFileRange(
        resolve(placement.baseDir, spec.path),
        spec.offsetBytes + firstRunPage * PAGE_SIZE_BYTES,
        bytes,
      );
      return bytes;
    default:
      return assertNever(spec, 'content spec');
  }
}

/** The tag of one page of an `image` or `unique` run. */
function pageTag(
  spec: ContentSpec & { kind: 'image' | 'unique' },
  placement: ContentPlacement,
  runPage: number,
) {
  if (spec.kind === 'image') return `${spec.image}/${spec.offsetPages + runPage}`;
  const { process, region, regionPageIndex, step } = placement;
  return `unique/${process}/${region}/${regionPageIndex + runPage}/${step}`;
}

function readFileRange(path: string, offsetBytes: number, into: Uint8Array): void {
  const fd = openSync(path, 'r');
  try {
    let filledBytes = 0;
    while (filledBytes < into.length) {
      const readBytes = readSync(fd, into, filledBytes, into.length - filledBytes, offsetBytes + filledBytes);
      if (readBytes === 0) {
        throw new ContentError(
          `${path}: short read: ${filledBytes} of ${into.length} bytes from offset ${offsetBytes} (a short read is an error)`,
        );
      }
      filledBytes += readBytes;
    }
  } finally {
    closeSync(fd);
  }
}

/** How one page of a run is named in messages: `byte 7`, `image debian-12/5`, `unique/a/ram/3/0`, `file x.img+8192`. */
export function describeRunPage(spec: ContentSpec, placement: ContentPlacement, runPage: number): string {
  switch (spec.kind) {
    case 'zero':
      return 'zero';
    case 'byte':
      return `byte ${spec.value}`;
    case 'tag':
      return `tag ${spec.tag}`;
    case 'image':
      return `tag ${pageTag(spec, placement, runPage)} (image ${spec.image})`;
    case 'unique':
      return `tag ${pageTag(spec, placement, runPage)}`;
    case 'file':
      return `file ${spec.path}+${spec.offsetBytes + runPage * PAGE_SIZE_BYTES}`;
    default:
      return assertNever(spec, 'content spec');
  }
}

/** How bytes read back are named in messages: `zero`, `byte 7`, or the start of their SHA-256. */
export function describePageBytes(page: Uint8Array): string {
  const first = page[0] ?? 0;
  if (page.every((value) => value === first)) return first === 0 ? 'zero' : `byte ${first}`;
  return `sha256:${hash('sha256', page, 'hex').slice(0, 16)}`;
}
