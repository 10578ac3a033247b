/**
 * Per page verdicts on a real host (root): what ksmd will make of each page
 * of the VM_MERGEABLE VMAs of the processes looked at.
 *
 * Two reads of every present anonymous page, a window apart (pagemap for the
 * frame, /proc/kpageflags for KPF_KSM / KPF_ZERO_PAGE, /proc/PID/mem for the
 * contents, hashed as estimate does: XXH64, whose low half is the kernel's own
 * checksum). Then, per content, the way cmp_and_merge_page() goes:
 * - a KSM page (KPF_KSM) is `merged`;
 * - a page whose content changed between the reads is `volatile` (ksmd keeps a
 *   page out of the unstable tree while its checksum changes);
 * - a content held by one frame only, with no KSM copy, is `unique` (pages that
 *   map one frame after fork are one page to ksmd: same_page_after_fork);
 * - otherwise the pages merge, into the existing KSM copies while they have
 *   room (max_page_sharing mappings each, rmap_hlist_len) and then pairwise
 *   into new copies (stable node chains); a last page left alone when every
 *   copy is full stays unmerged: `chain-full`. Which page that is depends on
 *   ksmd's order: we take the last in (pid, address) order, ksmd's order for
 *   pages of one process scanned from the start.
 * - all-zero pages merge like any twin (or into the zero page with
 *   use_zero_pages): `zero-candidate`, so the host check can weigh use_zero_pages.
 */
import { closeSync, openSync, readSync } from 'node:fs';
import { hashPage, PAGE_ZERO } from '../estimate/page-counter.ts';
import { KPageFlags, pagemapFrame, pagemapKind, type Vma } from '../estimate/proc-source.ts';
import { PAGE_SIZE_BYTES, PAGE_VERDICTS } from './verdicts.ts';

export { PAGE_VERDICTS };

const KPF_KSM = 1 << 21;
const KPF_THP = 1 << 22;
const KPF_ZERO_PAGE = 1 << 24;
const PAGEMAP_CHUNK = 1 << 14;
const READ_PAGES = 256;
// One of each for every read: most VMAs are small, and a fresh 1 MiB buffer per VMA
// and pass cost more than the reads (zeroed memory, 100 processes of 30 VMAs).
const PAGEMAP_BUFFER = Buffer.allocUnsafe(PAGEMAP_CHUNK * 8);
const CONTENT_BUFFER = Buffer.allocUnsafe(READ_PAGES * PAGE_SIZE_BYTES);

/** One 64-bit word per page frame (/proc/kpageflags, /proc/kpagecount): its low 32 bits. */
export interface FrameWords {
  lowWord(frame: number): number | undefined;
  close(): void;
}

/** The root-only sources of the page analysis; undefined when this user cannot open them. */
export interface FrameSources {
  readonly kpageflags: FrameWords;
  readonly kpagecount: FrameWords;
}

export function openFrameSources(): FrameSources | undefined {
  const kpageflags = KPageFlags.open('/proc/kpageflags');
  const kpagecount = KPageFlags.open('/proc/kpagecount');
  if (kpageflags === undefined || kpagecount === undefined) {
    kpageflags?.close();
    kpagecount?.close();
    return undefined;
  }
  return { kpageflags, kpagecount };
}

export function closeFrameSources(f: FrameSources): void {
  f.kpageflags.close();
  f.kpagecount.close();
}

/** The pages of one VMA as read: present anonymous pages, in address order. */
export interface VmaPages {
  readonly pid: number;
  readonly vma: Vma;
  count: number;
  addresses: Float64Array;
  frames: Float64Array;
  /** KPF_* low bits of the frame. */
  kflags: Uint32Array;
  /** Content key of the first read (53 bits of the XXH64), and whether the page is all zeroes. */
  keys: Float64Array;
  zero: Uint8Array;
  /** Set when the second read found other content (or could not read the page). */
  changed: Uint8Array;
  /** The verdict of each page, once classified (index into PAGE_VERDICTS). */
  verdicts: Uint8Array;
  notPresent: number;
  swapped: number;
  /** Page-cache pages of a private file mapping (not copied yet). */
  file: number;
  /** Mappings of the shared zero page: nothing ksmd scans. */
  zeroMapped: number;
  /** Subpages of transparent huge pages among the present pages. */
  thpPages: number;
}

export type PageVerdict = (typeof PAGE_VERDICTS)[number];

const scratchKeys = new Uint32Array(2);

function contentKey(buf: Buffer, offset: number): { key: number; zero: boolean } {
  const zero = hashPage(buf, offset, scratchKeys, 0) === PAGE_ZERO;
  // 53 bits: the kernel's 32-bit checksum and 21 more bits of the hash.
  return { key: (scratchKeys[1]! >>> 11) * 0x100000000 + scratchKeys[0]!, zero };
}

function grow<T extends Float64Array | Uint32Array | Uint8Array>(a: T, n: number): T {
  if (n <= a.length) return a;
  const b = new (a.constructor as new (n: number) => T)(Math.max(n, a.length * 2));
  b.set(a);
  return b;
}

/**
 * Reads the VMA's pagemap and page flags (the first read). Throws ENOENT/EACCES
 * when the process cannot be read at all; pages that go away are counted as not present.
 */
export function readVmaPages(pid: number, vma: Vma, frames: FrameSources, pagemapFd: number): VmaPages {
  const pageCount = (vma.end - vma.start) / PAGE_SIZE_BYTES;
  const out: VmaPages = {
    pid,
    vma,
    count: 0,
    addresses: new Float64Array(64),
    frames: new Float64Array(64),
    kflags: new Uint32Array(64),
    keys: new Float64Array(0),
    zero: new Uint8Array(0),
    changed: new Uint8Array(0),
    verdicts: new Uint8Array(0),
    notPresent: 0,
    swapped: 0,
    file: 0,
    zeroMapped: 0,
    thpPages: 0,
  };
  const buf = PAGEMAP_BUFFER;
  for (let first = 0; first < pageCount; first += PAGEMAP_CHUNK) {
    const n = Math.min(PAGEMAP_CHUNK, pageCount - first);
    const address = vma.start + first * PAGE_SIZE_BYTES;
    const got = Math.floor(readSync(pagemapFd, buf, 0, n * 8, (address / PAGE_SIZE_BYTES) * 8) / 8);
    out.notPresent += n - got;
    for (let i = 0; i < got; i++) {
      const hi = buf.readUInt32LE(8 * i + 4);
      const kind = pagemapKind(hi);
      if (kind !== 'anon') {
        if (kind === 'swapped') out.swapped++;
        else if (kind === 'file') out.file++;
        else out.notPresent++;
        continue;
      }
      const frame = pagemapFrame(buf.readUInt32LE(8 * i), hi);
      const flags = frames.kpageflags.lowWord(frame) ?? 0;
      if ((flags & KPF_ZERO_PAGE) !== 0) {
        out.zeroMapped++;
        continue;
      }
      const k = out.count++;
      out.addresses = grow(out.addresses, out.count);
      out.frames = grow(out.frames, out.count);
      out.kflags = grow(out.kflags, out.count);
      out.addresses[k] = address + i * PAGE_SIZE_BYTES;
      out.frames[k] = frame;
      out.kflags[k] = flags;
      if ((flags & KPF_THP) !== 0) out.thpPages++;
    }
  }
  out.keys = new Float64Array(out.count);
  out.zero = new Uint8Array(out.count);
  out.changed = new Uint8Array(out.count);
  out.verdicts = new Uint8Array(out.count);
  return out;
}

/**
 * Reads the contents of the pages through /proc/PID/mem, in runs of adjacent
 * pages. The first pass stores the keys; the second marks the pages whose key
 * changed (or that could not be read any more) as changed.
 */
export function readContents(v: VmaPages, memFd: number, pass: 'first' | 'second'): void {
  const buf = CONTENT_BUFFER;
  let i = 0;
  while (i < v.count) {
    let run = 1;
    while (
      i + run < v.count &&
      run < READ_PAGES &&
      v.addresses[i + run] === v.addresses[i]! + run * PAGE_SIZE_BYTES
    ) {
      run++;
    }
    let got = 0;
    try {
      got = Math.floor(readSync(memFd, buf, 0, run * PAGE_SIZE_BYTES, v.addresses[i]!) / PAGE_SIZE_BYTES);
    } catch {
      got = 0;
    }
    for (let j = 0; j < run; j++) {
      if (j >= got) {
        v.changed[i + j] = 1;
        continue;
      }
      const { key, zero } = contentKey(buf, j * PAGE_SIZE_BYTES);
      if (pass === 'first') {
        v.keys[i + j] = key;
        v.zero[i + j] = zero ? 1 : 0;
      } else if (v.keys[i + j] !== key) v.changed[i + j] = 1;
    }
    i += run;
  }
}

/** Opens the process's pagemap and mem, runs `fn`, closes them. */
export function withProcessFiles<T>(pid: number, fn: (pagemapFd: number, memFd: number) => T): T {
  const pagemapFd = openSync(`/proc/${pid}/pagemap`, 'r');
  try {
    const memFd = openSync(`/proc/${pid}/mem`, 'r');
    try {
      return fn(pagemapFd, memFd);
    } finally {
      closeSync(memFd);
    }
  } finally {
    closeSync(pagemapFd);
  }
}

export interface ClassifyOptions {
  /** null when this kernel has no such file (no chains: unlimited). */
  readonly maxPageSharing: number | null;
  readonly useZeroPages: boolean;
}

interface Group {
  /** KSM frames of this content and their map counts (rmap_hlist_len). */
  readonly ksmFrames: Map<number, number>;
  /** Candidates in (pid, address) order: [vma record, page]. */
  readonly candidates: Array<readonly [VmaPages, number]>;
  readonly frames: Set<number>;
  zero: boolean;
}

function setVerdict(v: VmaPages, i: number, verdict: PageVerdict): void {
  v.verdicts[i] = PAGE_VERDICTS.indexOf(verdict);
}

/** Classifies every page of `records` (in pid, address order), as the module comment says. */
export function classifyPages(
  records: readonly VmaPages[],
  frames: FrameSources,
  options: ClassifyOptions,
): void {
  const groups = new Map<number, Group>();
  for (const v of records) {
    for (let i = 0; i < v.count; i++) {
      if ((v.kflags[i]! & KPF_KSM) !== 0) {
        setVerdict(v, i, 'merged');
        const g = groupOf(groups, v.keys[i]!, v.zero[i] === 1);
        const frame = v.frames[i]!;
        if (!g.ksmFrames.has(frame)) g.ksmFrames.set(frame, frames.kpagecount.lowWord(frame) ?? 1);
        continue;
      }
      if (v.changed[i] === 1) {
        setVerdict(v, i, 'volatile');
        continue;
      }
      const g = groupOf(groups, v.keys[i]!, v.zero[i] === 1);
      g.candidates.push([v, i]);
      g.frames.add(v.frames[i]!);
    }
  }
  const max = options.maxPageSharing ?? Number.POSITIVE_INFINITY;
  for (const g of groups.values()) {
    const n = g.candidates.length;
    if (n === 0) continue;
    const merging: PageVerdict = g.zero ? 'zero-candidate' : 'twin-waiting';
    if (g.zero && options.useZeroPages) {
      for (const [v, i] of g.candidates) setVerdict(v, i, merging);
      continue;
    }
    if (g.frames.size < 2 && g.ksmFrames.size === 0) {
      for (const [v, i] of g.candidates) setVerdict(v, i, 'unique');
      continue;
    }
    let free = 0;
    for (const mapcount of g.ksmFrames.values()) free += Math.max(0, max - mapcount);
    const rest = n - Math.min(free, n);
    const held = rest > 0 && rest % max === 1 ? 1 : 0;
    for (let k = 0; k < n; k++) {
      const [v, i] = g.candidates[k]!;
      setVerdict(v, i, k >= n - held ? 'chain-full' : merging);
    }
  }
}

function groupOf(groups: Map<number, Group>, key: number, zero: boolean): Group {
  let g = groups.get(key);
  if (g === undefined) {
    g = { ksmFrames: new Map(), candidates: [], frames: new Set(), zero };
    groups.set(key, g);
  }
  return g;
}

/** The pages of a record with one verdict. */
export function countVerdicts(v: VmaPages): Map<PageVerdict, number> {
  const counts = new Map<PageVerdict, number>();
  for (let i = 0; i < v.count; i++) {
    const verdict = PAGE_VERDICTS[v.verdicts[i]!]!;
    counts.set(verdict, (counts.get(verdict) ?? 0) + 1);
  }
  return counts;
}
