/**
 * The verdicts of `ksmkit doctor`: one closed vocabulary for a real host
 * (sysfs, /proc/PID/smaps, pagemap, kpageflags) and for the engine
 * (`explainPage` and its decline reasons), so that "why is this not merged?"
 * has the same answer words on both. Each verdict has a level, the scope it
 * applies to, a one-line meaning and a generic fix; a finding carries the
 * exact fix for its case (the command, the setting, the range to madvise).
 *
 * No Node API here: the engine side (doctor on a workload) uses it too.
 */

/** The page verdicts a real host's page analysis gives (pages.ts): what ksmd will make of each page. */
export const PAGE_VERDICTS = [
  'merged',
  'twin-waiting',
  'zero-candidate',
  'volatile',
  'unique',
  'chain-full',
] as const;

export const VERDICTS = [
  // Host: ksmd and its settings.
  'ksm-missing',
  'ksmd-stopped',
  'ksmd-unmerging',
  'tuner-gating',
  'tuner-running',
  'scan-too-slow',
  'ksmd-cpu',
  'advisor-mode',
  'zero-pages-off',
  'smart-scan-off',
  'merge-across-nodes',
  'numa-apart',
  // Process and VMA: what ksmd never scans, or scans at a loss.
  'not-registered',
  'not-advised',
  'shared-mapping',
  'hugetlb',
  'special-mapping',
  'file-pages',
  'not-present',
  'swapped',
  'thp-split',
  'metadata-over-gain',
  'merge-any-targeted',
  // Page: what ksmd makes of the pages it scans.
  ...PAGE_VERDICTS,
  'not-yet-scanned',
  'policy',
] as const;

export type Verdict = (typeof VERDICTS)[number];

/**
 * `ok`: nothing to do (merged pages, a setting in order);
 * `info`: worth knowing, not a fault (content with no twin is nobody's fault);
 * `finding`: something keeps memory from merging, or costs more than it gives:
 * any finding makes the exit status 1.
 */
export type VerdictLevel = 'ok' | 'info' | 'finding';

export type VerdictScope = 'host' | 'process' | 'vma' | 'page';

export interface VerdictInfo {
  readonly level: VerdictLevel;
  readonly scope: VerdictScope;
  /** A few words, for the table's group heading. */
  readonly title: string;
  /** Why KSM does what it does here, citing the kernel where it helps. */
  readonly meaning: string;
}

export const VERDICT_INFO: Readonly<Record<Verdict, VerdictInfo>> = {
  'ksm-missing': {
    level: 'finding',
    scope: 'host',
    title: 'KSM absent or too old',
    meaning: 'no /sys/kernel/mm/ksm (CONFIG_KSM off), or a kernel without the files doctor needs',
  },
  'ksmd-stopped': {
    level: 'finding',
    scope: 'host',
    title: 'ksmd stopped',
    meaning: 'run is 0: ksmd scans nothing, pages already merged stay merged',
  },
  'ksmd-unmerging': {
    level: 'finding',
    scope: 'host',
    title: 'ksmd unmerging',
    meaning: 'run is 2: every KSM page was unmerged and ksmd scans nothing',
  },
  'tuner-gating': {
    level: 'finding',
    scope: 'host',
    title: 'a tuning daemon keeps KSM off',
    meaning: 'a tuner runs and its thresholds say "no memory pressure": it leaves run at 0',
  },
  'tuner-running': {
    level: 'info',
    scope: 'host',
    title: 'a tuning daemon sets pages_to_scan',
    meaning: "run, pages_to_scan and sleep_millisecs are the tuner's: a change by hand is overwritten",
  },
  'scan-too-slow': {
    level: 'finding',
    scope: 'host',
    title: 'full scan too slow',
    meaning: 'a full scan at the current pages_to_scan / sleep_millisecs takes longer than the target',
  },
  'ksmd-cpu': {
    level: 'info',
    scope: 'host',
    title: 'ksmd CPU',
    meaning: 'the share of one CPU ksmd used over the measuring window (/proc/<ksmd>/schedstat)',
  },
  'advisor-mode': {
    level: 'info',
    scope: 'host',
    title: 'scan-time advisor',
    meaning: 'advisor_mode scan-time sets pages_to_scan itself to reach advisor_target_scan_time',
  },
  'zero-pages-off': {
    level: 'finding',
    scope: 'host',
    title: 'use_zero_pages off with many zero pages',
    meaning:
      'zero-filled pages merge into ordinary KSM pages (chained past max_page_sharing); with use_zero_pages they map the shared zero page at no metadata cost',
  },
  'smart-scan-off': {
    level: 'info',
    scope: 'host',
    title: 'smart_scan off',
    meaning:
      'ksmd visits pages that never merged at every pass; smart_scan skips them for a while (about 10-20% fewer pages scanned)',
  },
  'merge-across-nodes': {
    level: 'info',
    scope: 'host',
    title: 'merges across NUMA nodes',
    meaning: 'merge_across_nodes 1 on a multi-node host: a merged page may be remote to some of its users',
  },
  'numa-apart': {
    level: 'info',
    scope: 'page',
    title: 'twin on another NUMA node',
    meaning: 'merge_across_nodes 0: twins on different nodes are kept apart',
  },
  'not-registered': {
    level: 'finding',
    scope: 'process',
    title: 'process not registered with KSM',
    meaning: 'no VMA is VM_MERGEABLE and PR_SET_MEMORY_MERGE is off: ksmd does not know this process',
  },
  'not-advised': {
    level: 'finding',
    scope: 'vma',
    title: 'region never advised',
    meaning: 'no `mg` in smaps VmFlags: ksmd does not scan this VMA',
  },
  'shared-mapping': {
    level: 'finding',
    scope: 'vma',
    title: 'shared mapping',
    meaning:
      'MAP_SHARED (memfd, shm, share=on guest RAM): vma_ksm_compatible() refuses VM_SHARED, KSM never merges it',
  },
  hugetlb: {
    level: 'finding',
    scope: 'vma',
    title: 'hugetlb',
    meaning: 'hugetlbfs pages are not KSM-compatible (VM_HUGETLB)',
  },
  'special-mapping': {
    level: 'info',
    scope: 'vma',
    title: 'special mapping',
    meaning: 'VM_IO / VM_PFNMAP / VM_DONTEXPAND / VM_MIXEDMAP / VM_DROPPABLE: not KSM-compatible',
  },
  'file-pages': {
    level: 'info',
    scope: 'vma',
    title: 'file pages not yet copied',
    meaning:
      'page-cache pages of a private file mapping: ksmd scans only their anonymous (copy-on-write) copies',
  },
  'not-present': {
    level: 'info',
    scope: 'vma',
    title: 'no anonymous page',
    meaning: 'never written (or mapping the shared zero page): nothing for ksmd to scan yet',
  },
  swapped: {
    level: 'info',
    scope: 'vma',
    title: 'swapped out',
    meaning: 'ksmd skips pages that are not present; they are scanned again once swapped in',
  },
  'thp-split': {
    level: 'info',
    scope: 'vma',
    title: 'THP that KSM will split',
    meaning:
      'to merge one 4 KiB subpage ksmd splits its 2 MiB transparent huge page (split_huge_page in try_to_merge_one_page)',
  },
  'metadata-over-gain': {
    level: 'finding',
    scope: 'vma',
    title: 'metadata costs more than it saves',
    meaning: 'rmap items outnumber merging pages more than 64 to 1 (ksm.rst: drop the advice there)',
  },
  'merge-any-targeted': {
    level: 'info',
    scope: 'process',
    title: 'prctl could be a targeted madvise',
    meaning: 'PR_SET_MEMORY_MERGE marks every VMA; only some earn their rmap items',
  },
  merged: {
    level: 'ok',
    scope: 'page',
    title: 'merged',
    meaning: 'mapped to a KSM page (KPF_KSM) or to the zero page by use_zero_pages',
  },
  'twin-waiting': {
    level: 'info',
    scope: 'page',
    title: 'twin found, not merged yet',
    meaning: 'another page of the set has the same content: ksmd merges it on its next visits',
  },
  'zero-candidate': {
    level: 'info',
    scope: 'page',
    title: 'zero-filled, not merged yet',
    meaning: 'an all-zero page: merges with the other zero pages (or the zero page with use_zero_pages)',
  },
  volatile: {
    level: 'info',
    scope: 'page',
    title: 'volatile',
    meaning:
      'the content changed between two reads: ksmd keeps a page out of the unstable tree while its checksum changes',
  },
  unique: {
    level: 'info',
    scope: 'page',
    title: 'unique',
    meaning: 'no other page of the set has this content: nothing to merge with',
  },
  'chain-full': {
    level: 'info',
    scope: 'page',
    title: 'held back by max_page_sharing',
    meaning:
      'every KSM copy of this content holds max_page_sharing mappings and no second page is left to start a new one',
  },
  'not-yet-scanned': {
    level: 'info',
    scope: 'page',
    title: 'not yet scanned',
    meaning: 'ksmd has not reached this page yet (no rmap item)',
  },
  policy: {
    level: 'info',
    scope: 'page',
    title: 'held back by a merging policy',
    meaning: 'a hardening policy forbids merging this page',
  },
};

export const PAGE_SIZE_BYTES = 4096;

/** Verdict order for the table: findings first, then info, then ok; within a level, VERDICTS order. */
export function verdictRank(v: Verdict): number {
  const level = VERDICT_INFO[v].level;
  const base = level === 'finding' ? 0 : level === 'info' ? 1 : 2;
  return base * VERDICTS.length + VERDICTS.indexOf(v);
}

/** What a finding is about. */
export interface Subject {
  /** undefined for the host. */
  readonly pid?: number;
  readonly command?: string;
  /** A VMA, or a workload region on the engine. */
  readonly start?: number;
  readonly end?: number;
  /** The mapping's name ([heap], a path, a workload region name) or '' for anonymous memory. */
  readonly name?: string;
}

/** One row of the report: a verdict about a subject, with its memory, evidence and exact fix. */
export interface Finding {
  readonly verdict: Verdict;
  readonly subject: Subject;
  /** Pages concerned (0 for a host setting). */
  readonly pages: number;
  /** Memory concerned in bytes (pages × 4096, or a host figure). */
  readonly bytes: number;
  /** What was read that shows it, in one line. */
  readonly evidence: string;
  /** The command or setting that fixes it ('' when there is nothing to fix). */
  readonly fix: string;
}

/** Findings grouped by verdict (findings first), each group biggest memory first. */
export function sortFindings(findings: readonly Finding[]): Finding[] {
  return [...findings].sort(
    (a, b) =>
      verdictRank(a.verdict) - verdictRank(b.verdict) ||
      b.bytes - a.bytes ||
      (a.subject.pid ?? -1) - (b.subject.pid ?? -1) ||
      (a.subject.start ?? 0) - (b.subject.start ?? 0),
  );
}

/** True when any finding is at level `finding`. */
export function hasFindings(findings: readonly Finding[]): boolean {
  return findings.some((f) => VERDICT_INFO[f.verdict].level === 'finding');
}

/** Per page verdicts of one VMA or region, as counts. */
export type PageVerdictCounts = Partial<Record<Verdict, number>>;

/** The page verdicts a prediction counts as "will merge" (or already has). */
export const WILL_MERGE: ReadonlySet<Verdict> = new Set<Verdict>([
  'merged',
  'twin-waiting',
  'zero-candidate',
]);
