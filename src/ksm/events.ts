/**
 * Typed events named after the kernel's KSM tracepoints
 * (include/trace/events/ksm.h), plus `ksm_decline`: ours, one per page the
 * engine looked at and did not merge, with the reason. Tests assert the path a
 * case took; tools answer "why is this page not merged?".
 */

export type DeclineReason =
  /** The checksum differs from the previous visit's (every page's first visit, and volatile pages). */
  | 'checksum_changed'
  /** No equal page yet: the page went into the unstable tree to wait for a twin. */
  | 'no_twin_yet'
  /** The unstable tree walk met an item whose page is gone or not mergeable any more: not inserted. */
  | 'unstable_tree_page_gone'
  /** The unstable tree walk met this very page (shared after fork): not inserted. */
  | 'same_page_after_fork'
  /** An equal KSM page exists but every copy holds max_page_sharing mappings (or none): wait for a twin. */
  | 'chain_full'
  /** Both pages are subpages of one THP: the THP is split now, the merge can happen next pass. */
  | 'thp_not_yet_split'
  /** With merge_across_nodes = 0 the equal page lives on another NUMA node. */
  | 'other_numa_node'
  /** smart_scan skipped the page this pass. */
  | 'smart_scan_skipped'
  /** The merge itself failed (page changed between the compare and the merge, or its mapping went away). */
  | 'merge_failed'
  /** SHIM (branch `attack`): the merging policy declines the page. */
  | 'policy';

/** Decline reasons in a fixed order: an rmap item keeps the index of its last one (0: none). */
export const DECLINE_REASONS: readonly DeclineReason[] = [
  'checksum_changed',
  'no_twin_yet',
  'unstable_tree_page_gone',
  'same_page_after_fork',
  'chain_full',
  'thp_not_yet_split',
  'other_numa_node',
  'smart_scan_skipped',
  'merge_failed',
  'policy',
];

export type KsmEvent =
  | { readonly type: 'ksm_start_scan'; readonly seqnr: number; readonly rmapItems: number }
  | { readonly type: 'ksm_stop_scan'; readonly seqnr: number; readonly rmapItems: number }
  | { readonly type: 'ksm_enter'; readonly mmId: number }
  | { readonly type: 'ksm_exit'; readonly mmId: number }
  | {
      readonly type: 'ksm_merge_one_page';
      readonly pfn: number;
      readonly mmId: number;
      readonly vpn: number;
      readonly ok: boolean;
    }
  | {
      readonly type: 'ksm_merge_with_ksm_page';
      readonly kpfn: number;
      readonly pfn: number;
      readonly mmId: number;
      readonly vpn: number;
      readonly ok: boolean;
    }
  | {
      readonly type: 'ksm_merge_zero_page';
      readonly pfn: number;
      readonly mmId: number;
      readonly vpn: number;
    }
  | { readonly type: 'ksm_remove_ksm_page'; readonly pfn: number }
  | {
      readonly type: 'ksm_remove_rmap_item';
      readonly pfn: number;
      readonly mmId: number;
      readonly vpn: number;
    }
  | {
      readonly type: 'ksm_advisor';
      readonly scanTimeS: number;
      readonly pagesToScan: number;
      readonly cpuPercent: number;
    }
  | {
      readonly type: 'ksm_decline';
      readonly mmId: number;
      readonly vpn: number;
      readonly reason: DeclineReason;
    };

export type KsmEventListener = (event: KsmEvent) => void;
