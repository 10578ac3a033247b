/**
 * Per process and per VMA verdicts from /proc/PID/smaps and ksm_stat: what
 * ksmd never scans (not advised, shared, hugetlb, special), what it cannot
 * scan yet (file pages, swapped), the THPs it will split, and whether the
 * advice pays for its rmap items (ksm.rst's 64:1 rule) — per VMA, and for a
 * process under PR_SET_MEMORY_MERGE the targeted madvise list that replaces
 * the prctl.
 */
import { type KsmStat, parseSmaps, readKsmStat, skipReason, type Vma } from '../estimate/proc-source.ts';
import { type Finding, PAGE_SIZE_BYTES, type Subject } from './verdicts.ts';

/** The kernel documentation's threshold: rmap items per merging page above which the advice costs more than it saves. */
export const RMAP_ITEMS_PER_MERGING_PAGE = 64;
/** A process (or, in a registered one, a VMA) below this much anonymous memory is not worth a finding. */
export const MIN_UNREGISTERED_BYTES = 1 << 20;

export interface ProcessView {
  readonly pid: number;
  readonly command: string;
  readonly ksmStat: KsmStat | undefined;
  readonly vmas: readonly Vma[];
}

/** Reads smaps and ksm_stat; throws the fs error (ENOENT, EACCES) when the process cannot be read. */
export function readProcessView(pid: number, command: string, smapsText: string): ProcessView {
  return { pid, command, ksmStat: readKsmStat(pid), vmas: parseSmaps(smapsText) };
}

export function registered(p: ProcessView): boolean {
  return p.ksmStat?.mergeAny === true || p.vmas.some((v) => v.vmFlags.includes('mg'));
}

export function isMergeable(v: Vma): boolean {
  return skipReason(v, true) === undefined;
}

function hex(n: number): string {
  return `0x${n.toString(16)}`;
}

export function vmaLabel(v: { start: number; end: number; name: string }): string {
  return `${hex(v.start)}-${hex(v.end)}${v.name === '' ? '' : ` ${v.name}`}`;
}

export function vmaSubject(p: ProcessView, v: Vma): Subject {
  return { pid: p.pid, command: p.command, start: v.start, end: v.end, name: v.name };
}

export function madviseFix(
  v: { start: number; end: number },
  advice: 'MADV_MERGEABLE' | 'MADV_UNMERGEABLE',
): string {
  return `madvise(${hex(v.start)}, ${v.end - v.start}, ${advice})`;
}

const SHARED_FIX =
  'map it private: QEMU memory-backend share=off, cloud-hypervisor --memory shared=off (memfd/shm memory never merges)';
const REGISTER_FIX =
  'start it under `ksmkit exec -- CMD` (PR_SET_MEMORY_MERGE), MemoryKSM=yes in its systemd unit, or madvise(MADV_MERGEABLE) its guest memory';

/**
 * Shared memory someone would expect merged: anonymous shared memory, memfd,
 * shm, or any writable shared mapping. A read-only shared file mapping is page
 * cache, which nobody expects KSM to touch.
 */
function sharedMemory(v: Vma): boolean {
  return v.perms[1] === 'w' || v.name === '' || /^(\/memfd:|\/dev\/shm\/|\/SYSV|\[anon_shmem)/.test(v.name);
}

/** The smaps-level findings of one process (page-level ones come from pages.ts). */
export function processFindings(p: ProcessView, thpSplitsInWindow: number | null): Finding[] {
  const findings: Finding[] = [];
  const isRegistered = registered(p);
  let unregisteredKb = 0;
  const row = (v: Vma, verdict: Finding['verdict'], kb: number, evidence: string, fix: string): void => {
    findings.push({
      verdict,
      subject: vmaSubject(p, v),
      pages: Math.round((kb * 1024) / PAGE_SIZE_BYTES),
      bytes: kb * 1024,
      evidence,
      fix,
    });
  };
  for (const v of p.vmas) {
    const reason = skipReason(v, true);
    const flags = v.vmFlags.join(' ');
    switch (reason) {
      case 'gate':
      case 'no-anonymous-pages':
        break;
      case 'shared':
        if (v.rssKb > 0 && sharedMemory(v))
          row(v, 'shared-mapping', v.rssKb, `VmFlags: ${flags}; ${v.rssKb} kB resident`, SHARED_FIX);
        break;
      case 'hugetlb':
        row(
          v,
          'hugetlb',
          v.sizeKb,
          `VmFlags: ${flags} (ht)`,
          'back it with transparent huge pages (MADV_HUGEPAGE) instead of hugetlbfs',
        );
        break;
      case 'special':
      case 'droppable':
        // [vdso], [vvar]: the kernel's own, in every process.
        if (v.rssKb > 0 && !v.name.startsWith('['))
          row(v, 'special-mapping', v.rssKb, `VmFlags: ${flags}`, '');
        break;
      case 'not-mergeable':
        if (v.anonymousKb === 0) break;
        if (!isRegistered) unregisteredKb += v.anonymousKb;
        // A small VMA left out of a targeted madvise is the recommended practice, not a fault.
        else if (v.anonymousKb * 1024 >= MIN_UNREGISTERED_BYTES)
          row(
            v,
            'not-advised',
            v.anonymousKb,
            `no mg in VmFlags (${flags}); ${v.anonymousKb} kB anonymous`,
            madviseFix(v, 'MADV_MERGEABLE'),
          );
        break;
      case undefined:
        break;
    }
    if (!v.vmFlags.includes('mg')) continue;
    if (v.swapKb > 0) row(v, 'swapped', v.swapKb, `smaps Swap: ${v.swapKb} kB`, '');
    const fileKb = v.name.startsWith('/') ? v.rssKb - v.anonymousKb : 0;
    if (fileKb > 0 && reason === undefined) {
      row(v, 'file-pages', fileKb, `${fileKb} kB of page cache mapped privately, not copied yet`, '');
    }
    if (v.anonHugeKb > 0) {
      const splits =
        thpSplitsInWindow === null
          ? ''
          : `; thp_split_page +${thpSplitsInWindow} on the host during the window`;
      row(
        v,
        'thp-split',
        v.anonHugeKb,
        `AnonHugePages: ${v.anonHugeKb} kB in a VM_MERGEABLE VMA${splits}`,
        'MADV_NOHUGEPAGE on the region if huge pages matter more than merging there',
      );
    }
  }
  if (!isRegistered && unregisteredKb * 1024 >= MIN_UNREGISTERED_BYTES) {
    findings.push({
      verdict: 'not-registered',
      subject: { pid: p.pid, command: p.command },
      pages: (unregisteredKb * 1024) / PAGE_SIZE_BYTES,
      bytes: unregisteredKb * 1024,
      evidence: `no VMA has mg, ksm_merge_any ${p.ksmStat?.mergeAny === true ? 'yes' : 'no'}; ${unregisteredKb} kB anonymous memory KSM could scan`,
      fix: REGISTER_FIX,
    });
  }
  return findings;
}

/** What a VMA's advice costs and earns: rmap items (one per present page ksmd visits) against merging pages. */
export interface VmaProfit {
  readonly vma: Vma;
  readonly rmapItems: number;
  readonly mergingPages: number;
  /** Whether the figure is the page analysis's prediction (else smaps KSM: now). */
  readonly predicted: boolean;
}

export function earns(p: VmaProfit): boolean {
  return p.mergingPages > 0 && p.rmapItems <= RMAP_ITEMS_PER_MERGING_PAGE * p.mergingPages;
}

/**
 * The 64:1 rule per VMA, and for a PR_SET_MEMORY_MERGE process the targeted
 * madvise list. Without a prediction a VMA is judged only once ksmd has visited
 * the process (ksm_rmap_items > 0), else every new VMA would look unprofitable.
 */
export function profitFindings(p: ProcessView, profits: readonly VmaProfit[]): Finding[] {
  const findings: Finding[] = [];
  const visited = (p.ksmStat?.rmapItems ?? 0) > 0;
  const stat = p.ksmStat;
  const processRatio =
    stat !== undefined && stat.mergingPages > 0 ? ` (process: ${stat.rmapItems}:${stat.mergingPages})` : '';
  for (const q of profits) {
    if (!q.predicted && !visited) continue;
    if (q.rmapItems < RMAP_ITEMS_PER_MERGING_PAGE || earns(q)) continue;
    const ratio = q.mergingPages === 0 ? 'no merging page' : `${Math.round(q.rmapItems / q.mergingPages)}:1`;
    findings.push({
      verdict: 'metadata-over-gain',
      subject: vmaSubject(p, q.vma),
      pages: q.rmapItems,
      bytes: q.rmapItems * PAGE_SIZE_BYTES,
      evidence: `${q.rmapItems} rmap items (64 B each) for ${q.mergingPages} ${q.predicted ? 'merging pages predicted' : 'merging pages now'}: ${ratio}${processRatio}`,
      fix:
        p.ksmStat?.mergeAny === true
          ? 'leave it out of the targeted madvise list (see merge-any-targeted)'
          : madviseFix(q.vma, 'MADV_UNMERGEABLE'),
    });
  }
  if (p.ksmStat?.mergeAny === true && profits.length > 0) {
    const earners = profits.filter(earns);
    if (earners.length < profits.length && (visited || profits.some((q) => q.predicted))) {
      const list = earners.slice(0, 8).map((q) => madviseFix(q.vma, 'MADV_MERGEABLE'));
      if (earners.length > 8) list.push(`and ${earners.length - 8} more (--json)`);
      const earnedBytes = earners.reduce((s, q) => s + (q.vma.end - q.vma.start), 0);
      findings.push({
        verdict: 'merge-any-targeted',
        subject: { pid: p.pid, command: p.command },
        pages: earnedBytes / PAGE_SIZE_BYTES,
        bytes: earnedBytes,
        evidence: `PR_SET_MEMORY_MERGE marks ${profits.length} VMAs; ${earners.length} earn their rmap items`,
        fix:
          earners.length === 0
            ? 'prctl(PR_SET_MEMORY_MERGE, 0): no VMA earns its metadata'
            : `prctl(PR_SET_MEMORY_MERGE, 0), then ${list.join('; ')}`,
      });
    }
  }
  return findings;
}
