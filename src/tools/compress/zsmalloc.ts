/**
 * zsmalloc's size classes (mm/zsmalloc.c), so that "memory used" is what the
 * kernel spends: an object of n bytes takes n + ZS_HANDLE_SIZE rounded up to
 * its class, and a class allocates whole zspages (chains of 1 to
 * CONFIG_ZSMALLOC_CHAIN_SIZE pages) holding a fixed number of objects.
 *
 * mem_used_total in /sys/block/zram0/mm_stat is zs_get_total_pages(): every
 * page of every zspage, full or not. A pool written once, without frees, holds
 * ⌈objects / objs_per_zspage⌉ zspages per class: the figure here. After frees
 * the kernel's is higher until compaction (pages_compacted).
 */
import { PAGE_BYTES } from '../estimate/model.ts';

/** ZS_HANDLE_SIZE: the handle stored at the head of every object of a non-huge class. */
export const ZS_HANDLE_SIZE = 8;
/** ZS_MIN_ALLOC_SIZE on 64-bit (OBJ_INDEX_BITS leaves it at 32). */
export const ZS_MIN_ALLOC_SIZE = 32;
export const ZS_MAX_ALLOC_SIZE = PAGE_BYTES;
/** CLASS_BITS 8: a class every PAGE_SIZE >> 8 bytes. */
export const ZS_SIZE_CLASS_DELTA = PAGE_BYTES >> 8;
export const ZS_SIZE_CLASSES = Math.ceil((ZS_MAX_ALLOC_SIZE - ZS_MIN_ALLOC_SIZE) / ZS_SIZE_CLASS_DELTA) + 1;
/** CONFIG_ZSMALLOC_CHAIN_SIZE: 8 by default, and on this machine's kernel (/proc/config.gz). */
export const DEFAULT_CHAIN_SIZE = 8;

export interface SizeClass {
  /** The largest object (handle included) the class holds. */
  readonly size: number;
  readonly pagesPerZspage: number;
  readonly objsPerZspage: number;
  /** One object per zspage: such classes hold what zram calls huge pages. */
  readonly huge: boolean;
}

/** calculate_zspage_chain_size(): the chain length (1..chain) that wastes the least of its pages. */
export function zspageChainSize(classSize: number, chainSize: number): number {
  if ((classSize & (classSize - 1)) === 0) return 1;
  let minWaste = Number.POSITIVE_INFINITY;
  let best = 1;
  for (let i = 1; i <= chainSize; i++) {
    const waste = (i * PAGE_BYTES) % classSize;
    if (waste < minWaste) {
      minWaste = waste;
      best = i;
    }
  }
  return best;
}

/** A pool's class table, as zs_create_pool() builds it: neighbouring classes of one shape are merged. */
export class SizeClassTable {
  /** Class index (get_size_class_index) → the class that serves it (merged ones share an object). */
  readonly classOf: readonly SizeClass[];
  /** zs_huge_class_size(): objects this large or larger go to a huge class. */
  readonly hugeClassSize: number;

  constructor(readonly chainSize = DEFAULT_CHAIN_SIZE) {
    const classOf: SizeClass[] = new Array<SizeClass>(ZS_SIZE_CLASSES);
    let prev: SizeClass | undefined;
    let huge = 0;
    // From the biggest class down, as zs_create_pool does: the merge test looks at the previous (larger) one.
    for (let i = ZS_SIZE_CLASSES - 1; i >= 0; i--) {
      const size = Math.min(ZS_MIN_ALLOC_SIZE + i * ZS_SIZE_CLASS_DELTA, ZS_MAX_ALLOC_SIZE);
      const pagesPerZspage = zspageChainSize(size, chainSize);
      const objsPerZspage = Math.floor((pagesPerZspage * PAGE_BYTES) / size);
      // The first class from the top that is not huge: anything that needs more than it is huge.
      if (pagesPerZspage !== 1 && objsPerZspage !== 1 && huge === 0) huge = size - (ZS_HANDLE_SIZE - 1);
      if (
        prev !== undefined &&
        prev.pagesPerZspage === pagesPerZspage &&
        prev.objsPerZspage === objsPerZspage
      ) {
        classOf[i] = prev;
        continue;
      }
      prev = { size, pagesPerZspage, objsPerZspage, huge: objsPerZspage === 1 };
      classOf[i] = prev;
    }
    this.classOf = classOf;
    this.hugeClassSize = huge;
  }

  /** The class zs_malloc(bytes) allocates from (the handle added first). */
  classFor(bytes: number): SizeClass {
    if (bytes <= 0 || bytes > ZS_MAX_ALLOC_SIZE)
      throw new RangeError(`zs_malloc size ${bytes} is not 1..4096`);
    const size = bytes + ZS_HANDLE_SIZE;
    const index = size > ZS_MIN_ALLOC_SIZE ? Math.ceil((size - ZS_MIN_ALLOC_SIZE) / ZS_SIZE_CLASS_DELTA) : 0;
    return this.classOf[Math.min(ZS_SIZE_CLASSES - 1, index)]!;
  }
}

export const DEFAULT_CLASSES = new SizeClassTable();

/** Objects per class of a pool that is only ever written; its pages as the kernel counts them. */
export class ZsPool {
  private readonly objects = new Map<SizeClass, number>();

  constructor(readonly classes: SizeClassTable = DEFAULT_CLASSES) {}

  /** zs_malloc(bytes), `count` times. */
  malloc(bytes: number, count = 1): void {
    const c = this.classes.classFor(bytes);
    this.objects.set(c, (this.objects.get(c) ?? 0) + count);
  }

  /** zs_get_total_pages(): whole zspages of every class. */
  totalPages(): number {
    let pages = 0;
    for (const [c, n] of this.objects) pages += Math.ceil(n / c.objsPerZspage) * c.pagesPerZspage;
    return pages;
  }

  /** The bytes of the objects themselves (handles and class rounding included). */
  objectBytes(): number {
    let bytes = 0;
    for (const [c, n] of this.objects) bytes += n * c.size;
    return bytes;
  }
}
