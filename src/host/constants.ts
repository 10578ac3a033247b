/** x86_64 base page. */
export const PAGE_SIZE = 4096;
export const PAGE_SHIFT = 12;
/** Base pages in a PMD-mapped transparent huge page (2 MiB). */
export const HPAGE_PMD_NR = 512;
export const HPAGE_PMD_SIZE = PAGE_SIZE * HPAGE_PMD_NR;
/** CONFIG_HZ of the reference kernel (6.18.44 here): ksmd's sleep and chain pruning run in jiffies. */
export const HZ = 250;
/** sizeof(struct ksm_rmap_item) on x86_64: what both profit formulas charge per rmap item. */
export const KSM_RMAP_ITEM_BYTES = 64;

/** msecs_to_jiffies(): rounds up to whole ticks, as the kernel does. */
export function msecsToJiffies(ms: number): number {
  return Math.ceil((ms * HZ) / 1000);
}
