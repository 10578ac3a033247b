/**
 * What zram and zswap would hold for a set of pages, counter for counter with
 * the kernel's own figures.
 *
 * zram (drivers/block/zram/zram_drv.c, zram_write_page): a page whose every
 * unsigned long is the same (page_same_filled) is kept as that word only
 * (same_pages); otherwise it is compressed, and a result of huge_class_size
 * bytes or more (zs_huge_class_size(): 3625 with 4 KiB pages and 8-page
 * zspage chains) is stored whole instead (write_incompressible_page:
 * huge_pages, and PAGE_SIZE in compr_data_size). orig_data_size counts every
 * stored page; mem_used_total is the zsmalloc pool's pages.
 *
 * zswap (mm/zswap.c, Linux 6.18): zero-filled pages never reach it, the swap
 * layer keeps them as one bit (swap_writeout(): is_folio_zero_filled() →
 * the swap zeromap); other same-filled pages are compressed like any page
 * (zswap dropped its own same-filled handling in 6.12); a page that does not
 * compress below PAGE_SIZE is stored as it is (zswap_compress(): dlen =
 * PAGE_SIZE, unless the memcg's memory.zswap.writeback is 0, when it is
 * rejected and stays resident: not modelled). The pool is zsmalloc too.
 * The proposed zswap deduplication keeps one entry per distinct content.
 */
import { PAGE_BYTES } from '../estimate/model.ts';
import { SAME_FILLED, ZERO_FILLED } from './native.ts';
import { DEFAULT_CLASSES, type SizeClassTable, ZsPool } from './zsmalloc.ts';

/** The counters of /sys/block/zram0/mm_stat this model reproduces (bytes or pages, as the kernel prints them). */
export interface MmStat {
  readonly orig_data_size: number;
  readonly compr_data_size: number;
  readonly mem_used_total: number;
  readonly same_pages: number;
  readonly huge_pages: number;
}

export class ZramModel {
  private readonly pool: ZsPool;
  private pagesStored = 0;
  private comprBytes = 0;
  private samePages = 0;
  private hugePages = 0;

  constructor(readonly classes: SizeClassTable = DEFAULT_CLASSES) {
    this.pool = new ZsPool(classes);
  }

  /** zram_write_page() for `count` pages of one content: its analyze() flags and compressed length. */
  write(flags: number, compressedBytes: number, count = 1): void {
    if (count === 0) return;
    this.pagesStored += count;
    if ((flags & SAME_FILLED) !== 0) {
      this.samePages += count;
      return;
    }
    if (compressedBytes >= this.classes.hugeClassSize) {
      this.hugePages += count;
      this.comprBytes += PAGE_BYTES * count;
      this.pool.malloc(PAGE_BYTES, count);
      return;
    }
    this.comprBytes += compressedBytes * count;
    this.pool.malloc(compressedBytes, count);
  }

  mmStat(): MmStat {
    return {
      orig_data_size: this.pagesStored * PAGE_BYTES,
      compr_data_size: this.comprBytes,
      mem_used_total: this.pool.totalPages() * PAGE_BYTES,
      same_pages: this.samePages,
      huge_pages: this.hugePages,
    };
  }
}

export interface ZswapStat {
  /** Pages swapped out. */
  readonly pages: number;
  /** Of those, zero-filled ones kept in the swap zeromap (no zswap entry, no pool memory). */
  readonly zeroFilledPages: number;
  /** Entries in zswap (stored_pages), and of those, ones stored uncompressed. */
  readonly storedPages: number;
  readonly incompressiblePages: number;
  /** Compressed bytes handed to zsmalloc. */
  readonly compressedBytes: number;
  /** The pool's pages × 4096 (zswap's pool_total_size). */
  readonly poolBytes: number;
}

export class ZswapModel {
  private readonly pool: ZsPool;
  private pages = 0;
  private zero = 0;
  private stored = 0;
  private incompressible = 0;
  private bytes = 0;

  constructor(classes: SizeClassTable = DEFAULT_CLASSES) {
    this.pool = new ZsPool(classes);
  }

  /** zswap_store() for `count` pages of one content. */
  store(flags: number, compressedBytes: number, count = 1): void {
    if (count === 0) return;
    this.pages += count;
    if ((flags & ZERO_FILLED) !== 0) {
      this.zero += count;
      return;
    }
    this.stored += count;
    const dlen = Math.min(compressedBytes, PAGE_BYTES);
    if (dlen === PAGE_BYTES) this.incompressible += count;
    this.bytes += dlen * count;
    this.pool.malloc(dlen, count);
  }

  stat(): ZswapStat {
    return {
      pages: this.pages,
      zeroFilledPages: this.zero,
      storedPages: this.stored,
      incompressiblePages: this.incompressible,
      compressedBytes: this.bytes,
      poolBytes: this.pool.totalPages() * PAGE_BYTES,
    };
  }
}
