/**
 * The arithmetic of an estimate: what KSM reaches for n pages of one content
 * (max_page_sharing chains), what that costs in rmap items, and how long ksmd
 * takes to get there.
 */

/** Bytes per page (x86_64) and per rmap item (`struct ksm_rmap_item`, reference §1.8). */
export const PAGE_BYTES = 4096;
export const RMAP_ITEM_BYTES = 64;

export interface Sharing {
  /** KSM pages made for this content (each counts once in pages_shared). */
  readonly shared: number;
  /** Further mappings of those KSM pages (pages_sharing). */
  readonly sharing: number;
}

const NONE: Sharing = { shared: 0, sharing: 0 };

/**
 * n pages of one content that can merge (distinct physical pages, or an
 * existing KSM page), with max_page_sharing m (reference §2.12 Example 3):
 * if n mod m is 0 or 1, SH = ⌊n/m⌋ and SG = SH × (m − 1) (a single leftover
 * page finds no partner); otherwise SH = ⌊n/m⌋ + 1 and SG = n − SH.
 */
export function sharingOf(n: number, m: number): Sharing {
  if (n < 2) return NONE;
  const full = Math.floor(n / m);
  const rest = n - full * m;
  if (rest <= 1) return { shared: full, sharing: full * (m - 1) };
  return { shared: full + 1, sharing: n - full - 1 };
}

/** general_profit (reference §4.3): (pages_sharing + ksm_zero_pages) × 4096 − rmap_items × 64. */
export function generalProfit(pagesSharing: number, ksmZeroPages: number, rmapItems: number): number {
  return (pagesSharing + ksmZeroPages) * PAGE_BYTES - rmapItems * RMAP_ITEM_BYTES;
}

/** ksm_process_profit: (ksm_merging_pages + ksm_zero_pages) × 4096 − ksm_rmap_items × 64. */
export function processProfit(mergingPages: number, zeroPages: number, rmapItems: number): number {
  return (mergingPages + zeroPages) * PAGE_BYTES - rmapItems * RMAP_ITEM_BYTES;
}

/** msecs_to_jiffies: rounded up to whole ticks. */
export function msecsToJiffies(ms: number, hz: number): number {
  return Math.ceil((ms * hz) / 1000);
}

export interface TimeInput {
  /** Pages ksmd processes in each of the first two passes (every present anonymous page it can scan). */
  readonly pagesPerPass: number;
  /** Pages that become KSM zero pages (use_zero_pages = 1): their items go in the third pass. */
  readonly zeroPageMerges: number;
  /** Whether anything merges at all. */
  readonly anythingMerges: boolean;
  readonly pagesToScan: number;
  readonly sleepMillisecs: number;
  readonly hz: number;
}

export interface TimeEstimate {
  readonly pagesPerPass: number;
  /** ⌊P / pages_to_scan⌋ + 1: a pass always ends a batch (reference §2.1). */
  readonly batchesPerPass: number;
  /** The period a sleep really takes: whole jiffies, plus the tick on which the timer fires (0 stays 0). */
  readonly sleepPerBatchMs: number;
  /** Sleeping time of one pass (ksmd's own processing time is not modelled). */
  readonly passSeconds: number;
  /** 2 when something merges (pass 1 records checksums, pass 2 merges), else 0. */
  readonly passesToConverge: number;
  readonly convergeSeconds: number;
  /** One more partial pass when ksmd is mid-pass as the processes register (they join at the next pass). */
  readonly worstCaseSeconds: number;
  /** With KSM zero pages, their rmap items are freed in pass 3: general_profit is final then. */
  readonly profitFinalPasses: number;
  readonly profitFinalSeconds: number;
}

export function estimateTime(t: TimeInput): TimeEstimate {
  // The timer fires on the tick after the timeout expires: 20 ms is a 24 ms period at HZ 250 (measured on 6.18.44).
  const jiffies = msecsToJiffies(t.sleepMillisecs, t.hz);
  const sleepPerBatchMs = jiffies === 0 ? 0 : ((jiffies + 1) * 1000) / t.hz;
  const batches = (pages: number): number =>
    t.pagesToScan > 0 ? Math.floor(pages / t.pagesToScan) + 1 : Number.POSITIVE_INFINITY;
  const batchesPerPass = batches(t.pagesPerPass);
  const passSeconds = (batchesPerPass * sleepPerBatchMs) / 1000;
  const passesToConverge = t.anythingMerges ? 2 : 0;
  const convergeSeconds = passesToConverge * passSeconds;
  const zeroFree = t.zeroPageMerges > 0;
  const thirdPassSeconds = (batches(t.pagesPerPass - t.zeroPageMerges) * sleepPerBatchMs) / 1000;
  return {
    pagesPerPass: t.pagesPerPass,
    batchesPerPass,
    sleepPerBatchMs,
    passSeconds,
    passesToConverge,
    convergeSeconds,
    worstCaseSeconds: passesToConverge > 0 ? convergeSeconds + passSeconds : 0,
    profitFinalPasses: zeroFree ? 3 : passesToConverge,
    profitFinalSeconds: zeroFree ? convergeSeconds + thirdPassSeconds : convergeSeconds,
  };
}
