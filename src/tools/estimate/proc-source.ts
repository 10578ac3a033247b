/**
 * Reading a live process as ksmd would see it:
 *
 * 1. /proc/PID/smaps: which VMAs KSM could scan (reference §5.1: not shared,
 *    not VM_IO/PFNMAP/DONTEXPAND/MIXEDMAP, not hugetlb, not droppable), and,
 *    for a process that already uses KSM, which ones are VM_MERGEABLE (`mg`);
 *    a VMA without any anonymous page (no anon_vma) has nothing to scan.
 * 2. /proc/PID/pagemap: per page, present or not (swapped and never-touched
 *    pages have no rmap item), and bit 61 "file page or shared anon": in a
 *    private file mapping only the anonymous copy-on-write pages are scanned,
 *    the page-cache pages are not. As root the page frame numbers come too:
 *    pages mapped at one frame (shared after fork) cannot merge with each
 *    other, and the shared zero page (not a "normal" page) is never scanned.
 * 3. /proc/PID/mem: the contents, in large reads of runs of such pages only,
 *    so that nothing is faulted in (reading a non-present page would map the
 *    zero page into the target).
 */
import { closeSync, openSync, readdirSync, readFileSync, readSync } from 'node:fs';
import { NO_FRAME } from './content-table.ts';
import { PAGE_BYTES } from './model.ts';
import { PAGE_UNREADABLE, PAGE_ZERO, type PageSink } from './page-counter.ts';
import type { Progress } from './progress.ts';
import { type Job, MAX_SEGMENTS, type PageReader, pageOf } from './reader.ts';

/** One VMA of /proc/PID/smaps. */
export interface Vma {
  readonly start: number;
  readonly end: number;
  /** rwxp / rw-s */
  readonly perms: string;
  /** The path, [heap]/[stack]/…, or '' for anonymous memory. */
  readonly name: string;
  readonly vmFlags: readonly string[];
  readonly rssKb: number;
  readonly anonymousKb: number;
  readonly swapKb: number;
  /** `AnonHugePages:`: anonymous memory mapped by transparent huge pages. */
  readonly anonHugeKb: number;
  /** `KSM:`: memory mapped to KSM pages here (Linux 6.7 and later; 0 before). */
  readonly ksmKb: number;
  /** `Size:`: the VMA's length, resident or not. */
  readonly sizeKb: number;
}

export function parseSmaps(text: string): Vma[] {
  const vmas: Vma[] = [];
  type Mutable = { -readonly [K in keyof Vma]: Vma[K] };
  let cur: Mutable | undefined;
  for (const line of text.split('\n')) {
    const head = /^([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (head !== null) {
      if (cur !== undefined) vmas.push(cur);
      cur = {
        start: Number.parseInt(head[1]!, 16),
        end: Number.parseInt(head[2]!, 16),
        perms: head[3]!,
        name: head[4] ?? '',
        vmFlags: [],
        rssKb: 0,
        anonymousKb: 0,
        swapKb: 0,
        anonHugeKb: 0,
        ksmKb: 0,
        sizeKb: 0,
      };
      continue;
    }
    if (cur === undefined) continue;
    const field = /^(\w+):\s+(.*)$/.exec(line);
    if (field === null) continue;
    const [, key, value] = field;
    if (key === 'VmFlags') cur.vmFlags = value!.trim().split(/\s+/);
    else if (key === 'Rss') cur.rssKb = Number.parseInt(value!, 10);
    else if (key === 'Anonymous') cur.anonymousKb = Number.parseInt(value!, 10);
    else if (key === 'Swap') cur.swapKb = Number.parseInt(value!, 10);
    else if (key === 'AnonHugePages') cur.anonHugeKb = Number.parseInt(value!, 10);
    else if (key === 'KSM') cur.ksmKb = Number.parseInt(value!, 10);
    else if (key === 'Size') cur.sizeKb = Number.parseInt(value!, 10);
  }
  if (cur !== undefined) vmas.push(cur);
  return vmas;
}

/**
 * Which VMAs to scan:
 * - `mergeable`: only VM_MERGEABLE ones (`mg`), exactly what ksmd scans now;
 * - `compatible`: every VMA KSM could be told to merge (what
 *   PR_SET_MEMORY_MERGE would mark in a running process, the stack included);
 * - `auto`: `mergeable` for a process that already uses KSM (ksm_stat says
 *   merge_any or mergeable), `compatible` otherwise.
 */
export type VmaMode = 'auto' | 'mergeable' | 'compatible';

export type SkipReason =
  | 'shared'
  | 'special'
  | 'hugetlb'
  | 'droppable'
  | 'gate'
  | 'not-mergeable'
  | 'no-anonymous-pages';

export const SKIP_REASON_TEXT: Readonly<Record<SkipReason, string>> = {
  shared: 'shared mapping (VM_SHARED/VM_MAYSHARE): KSM never merges it',
  special: 'special mapping (VM_IO/VM_PFNMAP/VM_DONTEXPAND/VM_MIXEDMAP): not KSM-compatible',
  hugetlb: 'hugetlb mapping: not KSM-compatible',
  droppable: 'droppable mapping (VM_DROPPABLE): not KSM-compatible',
  gate: 'gate area ([vsyscall]): not a VMA of the process',
  'not-mergeable': 'not VM_MERGEABLE (no `mg` in smaps VmFlags): ksmd does not scan it',
  'no-anonymous-pages': 'no anonymous page (smaps Anonymous: 0 kB): nothing for ksmd to scan',
};

/** Why KSM would not scan this VMA, or undefined when it would. */
export function skipReason(vma: Vma, mergeableOnly: boolean): SkipReason | undefined {
  const f = new Set(vma.vmFlags);
  if (vma.name === '[vsyscall]') return 'gate';
  if (vma.perms[3] === 's' || f.has('sh') || f.has('ms')) return 'shared';
  // Before `special`: hugetlbfs_file_mmap() sets VM_DONTEXPAND (`de`) on every hugetlb VMA too.
  if (f.has('ht')) return 'hugetlb';
  if (f.has('io') || f.has('pf') || f.has('de') || f.has('mm')) return 'special';
  if (f.has('dp')) return 'droppable';
  if (mergeableOnly && !f.has('mg')) return 'not-mergeable';
  if (vma.anonymousKb === 0) return 'no-anonymous-pages';
  return undefined;
}

export interface SkippedVma {
  readonly start: number;
  readonly end: number;
  readonly name: string;
  readonly reason: SkipReason;
  readonly rssKb: number;
}

export interface KsmStat {
  readonly rmapItems: number;
  readonly zeroPages: number;
  readonly mergingPages: number;
  readonly mergeAny: boolean;
  readonly mergeable: boolean;
}

export function readKsmStat(pid: number): KsmStat | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/ksm_stat`, 'latin1');
  } catch {
    return undefined;
  }
  const num = (key: string): number => Number(new RegExp(`^${key} (\\d+)$`, 'm').exec(text)?.[1] ?? 0);
  return {
    rmapItems: num('ksm_rmap_items'),
    zeroPages: num('ksm_zero_pages'),
    mergingPages: num('ksm_merging_pages'),
    mergeAny: /^ksm_merge_any: yes$/m.test(text),
    mergeable: /^ksm_mergeable: yes$/m.test(text),
  };
}

export function commandLine(pid: number): string {
  try {
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'latin1').replace(/\0+$/, '').replaceAll('\0', ' ');
    if (cmdline !== '') return cmdline;
    return `[${readFileSync(`/proc/${pid}/comm`, 'latin1').trim()}]`;
  } catch {
    return '?';
  }
}

export function comm(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'latin1').trim();
  } catch {
    return '?';
  }
}

/** Every process id of /proc, sorted. */
export function listPids(): number[] {
  return readdirSync('/proc')
    .filter((e) => /^\d+$/.test(e))
    .map(Number)
    .sort((a, b) => a - b);
}

/** /proc/kpageflags (root only): KPF_KSM (bit 21) and KPF_ZERO_PAGE (bit 24) of a frame. */
export class KPageFlags {
  private readonly fd: number;
  private readonly buf = Buffer.alloc(8);
  private readonly zeroCache = new Map<number, boolean>();

  private constructor(fd: number) {
    this.fd = fd;
  }

  /** Opens /proc/kpageflags, or undefined when it cannot (not root). */
  static open(path = '/proc/kpageflags'): KPageFlags | undefined {
    try {
      const fd = openSync(path, 'r');
      const probe = Buffer.alloc(8);
      readSync(fd, probe, 0, 8, 0);
      return new KPageFlags(fd);
    } catch {
      return undefined;
    }
  }

  /** The high and low 32 bits of the frame's flags, or undefined when unreadable. */
  private flags(frame: number): { hi: number; lo: number } | undefined {
    try {
      if (readSync(this.fd, this.buf, 0, 8, frame * 8) !== 8) return undefined;
    } catch {
      return undefined;
    }
    return { lo: this.buf.readUInt32LE(0), hi: this.buf.readUInt32LE(4) };
  }

  /**
   * The low 32 bits of the frame's 64-bit word, or undefined when unreadable:
   * KPF_* bits 0-31 for /proc/kpageflags, the map count for /proc/kpagecount
   * (same layout, opened with `open('/proc/kpagecount')`).
   */
  lowWord(frame: number): number | undefined {
    return this.flags(frame)?.lo;
  }

  isKsm(frame: number): boolean {
    const f = this.flags(frame);
    return f !== undefined && (f.lo & (1 << 21)) !== 0;
  }

  isZeroPage(frame: number): boolean {
    let v = this.zeroCache.get(frame);
    if (v === undefined) {
      const f = this.flags(frame);
      v = f !== undefined && (f.lo & (1 << 24)) !== 0;
      this.zeroCache.set(frame, v);
    }
    return v;
  }

  close(): void {
    closeSync(this.fd);
  }
}

/** What one /proc/PID/pagemap entry says of its page (bit 63 present, 62 swapped, 61 file page or shared anon). */
export type PagemapKind = 'not-present' | 'swapped' | 'file' | 'anon';

/** The kind of page from the entry's high 32 bits. */
export function pagemapKind(hi: number): PagemapKind {
  if (hi >>> 31 === 0) return ((hi >>> 30) & 1) === 1 ? 'swapped' : 'not-present';
  return ((hi >>> 29) & 1) === 1 ? 'file' : 'anon';
}

/** The page frame number of a present entry (bits 0-54; 0 without CAP_SYS_ADMIN). */
export function pagemapFrame(lo: number, hi: number): number {
  return lo + (hi & 0x7fffff) * 0x100000000;
}

export interface ProcessScan {
  readonly pid: number;
  readonly command: string;
  /** The VMA selection used (auto resolved). */
  readonly mode: 'mergeable' | 'compatible';
  readonly ksmStat: KsmStat | undefined;
  readonly vmasScanned: number;
  readonly skipped: readonly SkippedVma[];
  /** Pages of the scanned VMAs that are not present (never touched, or freed). */
  readonly notPresentPages: number;
  readonly swappedPages: number;
  /** Page-cache pages of private file mappings (not anonymous: not scanned). */
  readonly filePages: number;
  /** Mappings of the shared zero page (not a normal page: not scanned). */
  readonly zeroPageMappings: number;
  /** Pages that went away between pagemap and mem (the process changed while read). */
  readonly unreadablePages: number;
  /** Pages hashed and counted. */
  readonly examinedPages: number;
  readonly bytesRead: number;
  /** Set when reading stopped early (the process exited meanwhile): the figures cover what was read. */
  readonly incomplete?: string;
}

/** The VMAs to scan and the ones skipped, with the mode resolved. */
export function selectVmas(
  vmas: readonly Vma[],
  mode: VmaMode,
  stat: KsmStat | undefined,
): { mode: 'mergeable' | 'compatible'; scan: Vma[]; skipped: SkippedVma[] } {
  const resolved =
    mode === 'auto'
      ? stat?.mergeAny === true || stat?.mergeable === true
        ? 'mergeable'
        : 'compatible'
      : mode;
  const scan: Vma[] = [];
  const skipped: SkippedVma[] = [];
  for (const v of vmas) {
    const reason = skipReason(v, resolved === 'mergeable');
    if (reason === undefined) scan.push(v);
    else skipped.push({ start: v.start, end: v.end, name: v.name, reason, rssKb: v.rssKb });
  }
  return { mode: resolved, scan, skipped };
}

/** A process ready to be read: what smaps and ksm_stat said. */
export interface ProcessPlan {
  readonly pid: number;
  readonly command: string;
  readonly mode: 'mergeable' | 'compatible';
  readonly ksmStat: KsmStat | undefined;
  readonly scan: readonly Vma[];
  readonly skipped: readonly SkippedVma[];
  /** Anonymous bytes of the VMAs to scan (smaps), for the progress bar and the thread decision. */
  readonly expectedBytes: number;
}

/** Reads smaps and ksm_stat; throws (ENOENT, EACCES…) when the process cannot be read. */
export function planProcess(pid: number, mode: VmaMode): ProcessPlan {
  const command = commandLine(pid);
  const stat = readKsmStat(pid);
  const vmas = parseSmaps(readFileSync(`/proc/${pid}/smaps`, 'latin1'));
  const selection = selectVmas(vmas, mode, stat);
  return {
    pid,
    command,
    mode: selection.mode,
    ksmStat: stat,
    scan: selection.scan,
    skipped: selection.skipped,
    expectedBytes: selection.scan.reduce((sum, v) => sum + v.anonymousKb * 1024, 0),
  };
}

export interface ProcessReadContext {
  readonly counter: PageSink;
  readonly reader: PageReader;
  readonly kpageflags: KPageFlags | undefined;
  readonly progress: Progress;
  /** Every page counted, with its frame (NO_FRAME when unknown); needs a reader in this thread. */
  readonly onPage?: (page: Uint8Array, frame: number) => void;
}

const PAGEMAP_ENTRIES = 1 << 15;

/** Frames, exclusivity (pagemap bit 56: mapped exactly once) and addresses of the pages of one job. */
interface PageInfo {
  readonly frames: Float64Array;
  readonly exclusive: Uint8Array;
  readonly addresses: Float64Array;
}

interface WalkStats {
  notPresent: number;
  swapped: number;
  file: number;
}

/**
 * Walks pagemap over the VMAs to scan and yields jobs: runs of present,
 * anonymous pages (pagemap bit 63 set, bit 61 clear), packed up to the
 * reader's job size.
 */
function* processJobs(
  plan: ProcessPlan,
  pagemapFd: number,
  maxPages: number,
  stats: WalkStats,
): Generator<Job<PageInfo>> {
  const path = `/proc/${plan.pid}/mem`;
  const pmBuf = Buffer.from(new ArrayBuffer(PAGEMAP_ENTRIES * 8));
  const pm = new Uint32Array(pmBuf.buffer);
  let segments = new Float64Array(2 * MAX_SEGMENTS);
  let segmentCount = 0;
  let frames = new Float64Array(maxPages);
  let exclusive = new Uint8Array(maxPages);
  let addresses = new Float64Array(maxPages);
  let pages = 0;
  // The run being built: it extends the last segment.
  let runEnd = -1;

  const take = (): Job<PageInfo> => {
    const job: Job<PageInfo> = {
      path,
      segments,
      segmentCount,
      pages,
      tag: {
        frames: frames.subarray(0, pages),
        exclusive: exclusive.subarray(0, pages),
        addresses: addresses.subarray(0, pages),
      },
    };
    segments = new Float64Array(2 * MAX_SEGMENTS);
    frames = new Float64Array(maxPages);
    exclusive = new Uint8Array(maxPages);
    addresses = new Float64Array(maxPages);
    segmentCount = 0;
    pages = 0;
    runEnd = -1;
    return job;
  };

  for (const vma of plan.scan) {
    const pageCount = (vma.end - vma.start) / PAGE_BYTES;
    for (let first = 0; first < pageCount; first += PAGEMAP_ENTRIES) {
      const n = Math.min(PAGEMAP_ENTRIES, pageCount - first);
      const address = vma.start + first * PAGE_BYTES;
      const got = Math.floor(readSync(pagemapFd, pmBuf, 0, n * 8, (address / PAGE_BYTES) * 8) / 8);
      stats.notPresent += n - got;
      for (let i = 0; i < got; i++) {
        const hi = pm[2 * i + 1]!;
        const kind = pagemapKind(hi);
        if (kind !== 'anon') {
          if (kind === 'swapped') stats.swapped++;
          else if (kind === 'file') stats.file++;
          else stats.notPresent++;
          continue;
        }
        const pageAddress = address + i * PAGE_BYTES;
        if (pageAddress === runEnd) {
          segments[2 * segmentCount - 1]! += 1;
        } else {
          if (segmentCount === MAX_SEGMENTS) yield take();
          segments[2 * segmentCount] = pageAddress;
          segments[2 * segmentCount + 1] = 1;
          segmentCount++;
        }
        runEnd = pageAddress + PAGE_BYTES;
        frames[pages] = pagemapFrame(pm[2 * i]!, hi);
        exclusive[pages] = (hi >>> 24) & 1;
        addresses[pages] = pageAddress;
        pages++;
        if (pages === maxPages) yield take();
      }
    }
  }
  if (pages > 0) yield take();
}

/**
 * Reads one process into `ctx.counter`, whose current source must already be
 * this process. Throws only before the first page is counted (pagemap or mem
 * cannot be opened); a process that exits or changes while it is read gives
 * partial figures with `incomplete` set.
 */
export function scanProcess(plan: ProcessPlan, ctx: ProcessReadContext): ProcessScan {
  const { counter, kpageflags, progress, reader } = ctx;
  const framesKnown = kpageflags !== undefined;
  const stats: WalkStats = { notPresent: 0, swapped: 0, file: 0 };
  let zeroMappings = 0;
  let unreadable = 0;
  let examined = 0;
  let bytesRead = 0;
  let incomplete: string | undefined;

  const pagemapFd = openSync(`/proc/${plan.pid}/pagemap`, 'r');
  try {
    // Fail here, before anything is counted, when mem cannot be read at all (permissions).
    closeSync(openSync(`/proc/${plan.pid}/mem`, 'r'));
    try {
      reader.run(processJobs(plan, pagemapFd, reader.maxPages, stats), (job, result) => {
        const { frames, exclusive, addresses } = job.tag;
        const { keys, flags, prefixes } = result;
        for (let i = 0; i < result.pages; i++) {
          const flag = flags[i]!;
          if (flag === PAGE_UNREADABLE) {
            unreadable++;
            continue;
          }
          const zero = flag === PAGE_ZERO;
          const frame = framesKnown ? frames[i]! : NO_FRAME;
          // The shared zero page is present, not a file page, and never exclusively mapped.
          if (zero && exclusive[i] === 0 && (framesKnown ? kpageflags.isZeroPage(frame) : true)) {
            zeroMappings++;
            continue;
          }
          counter.count(keys, i, zero, frame, addresses[i]!, prefixes[i]!, result.analysis);
          ctx.onPage?.(pageOf(result, i), frame);
          examined++;
        }
        if (result.analysis !== undefined) counter.compression?.addTiming(result.analysis.timing);
        const readPages = result.pages;
        bytesRead += readPages * PAGE_BYTES;
        progress.advance(readPages * PAGE_BYTES);
      });
    } catch (e) {
      incomplete = (e as Error).message;
    }
  } finally {
    closeSync(pagemapFd);
  }
  return {
    pid: plan.pid,
    command: plan.command,
    mode: plan.mode,
    ksmStat: plan.ksmStat,
    vmasScanned: plan.scan.length,
    skipped: plan.skipped,
    notPresentPages: stats.notPresent,
    swappedPages: stats.swapped,
    filePages: stats.file,
    zeroPageMappings: zeroMappings,
    unreadablePages: unreadable,
    examinedPages: examined,
    bytesRead,
    ...(incomplete !== undefined ? { incomplete } : {}),
  };
}
