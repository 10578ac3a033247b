/**
 * What ksmd's work costs in CPU time, so that the virtual clock moves as the
 * real ksmd's would: batches take time, sleep_millisecs 0 does not spin in
 * zero time, and the scan-time advisor sees a CPU share. The defaults are
 * figures of the order measured on this project's machine (a 2-core EPYC VM:
 * about 1 million pages/s for a checksum-only pass, 215k–340k pages/s in a
 * steady pass); `ksmkit calibrate` (a later tool) measures them on the host.
 */
export interface CostModel {
  /** Fixed cost of one ksmd batch (wake-up, locks, LRU drain at pass start). */
  readonly batchNs: number;
  /** Visiting one page: page table walk, rmap item lookup, folio get/put. */
  readonly visitPageNs: number;
  /** calc_checksum() of one 4 KiB page. */
  readonly checksumNs: number;
  /**
   * One step of an unstable tree walk: get_mergeable_page() (the other mm's
   * mmap lock, its VMA and page-table walk, a folio reference) and
   * memcmp_pages().
   */
  readonly compareNs: number;
  /**
   * One step of a stable tree walk (stable_tree_search, stable_tree_insert):
   * ksm_get_folio() from the node's kpfn and memcmp_pages(). No mm, no page
   * table: on 6.18.44 it measured a small fraction of an unstable step, and
   * charging both alike put the simulated ksmd's CPU 80% above the real one's
   * over 90 s of six guests from two images (120% in the merging pass, where
   * most steps are stable ones).
   */
  readonly stableCompareNs: number;
  /** One successful merge (write-protect, replace_page, rmap work). */
  readonly mergeNs: number;
}

export const DEFAULT_COST_MODEL: CostModel = {
  batchNs: 2_000,
  visitPageNs: 350,
  checksumNs: 600,
  compareNs: 180,
  stableCompareNs: 20,
  mergeNs: 3_000,
};
