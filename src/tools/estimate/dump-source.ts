/**
 * Memory dump files as sources: raw images (every 4096 bytes from `offset`
 * are one page) and ELF64 core files (gcore / kernel core dumps, QEMU's
 * dump-guest-memory): the PT_LOAD segments' bytes in the file are memory.
 *
 * Every page of a dump counts as a present anonymous page with its own
 * physical page: a dump cannot tell which pages were resident or shared.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { NO_FRAME } from './content-table.ts';
import { PAGE_BYTES } from './model.ts';
import { PAGE_UNREADABLE, PAGE_ZERO, type PageSink } from './page-counter.ts';
import type { Progress } from './progress.ts';
import { type Job, type PageReader, pageOf } from './reader.ts';

export type DumpFormat = 'auto' | 'raw' | 'elf';

/** A stretch of the file that holds memory. */
export interface DumpSegment {
  readonly fileOffset: number;
  readonly bytes: number;
  /** The segment's virtual (or, for a guest, physical) address; the file offset for raw images. */
  readonly address: number;
  /** The file mapped there, from a core file's NT_FILE note. */
  readonly file?: string;
}

export interface DumpLayout {
  readonly path: string;
  readonly kind: 'raw' | 'elf-core' | 'elf';
  readonly fileBytes: number;
  readonly segments: readonly DumpSegment[];
  /** Program headers or bytes not taken, and why. */
  readonly skipped: readonly { readonly what: string; readonly bytes: number; readonly reason: string }[];
  readonly notes: readonly string[];
}

const ELF_MAGIC = 0x464c457f; // "\x7fELF", little-endian u32
const PT_LOAD = 1;
const PT_NOTE = 4;
const PN_XNUM = 0xffff;
const NT_FILE = 0x46494c45;

function readAt(fd: number, position: number, length: number): Buffer {
  const buf = Buffer.alloc(length);
  let got = 0;
  while (got < length) {
    const n = readSync(fd, buf, got, length - got, position + got);
    if (n === 0) break;
    got += n;
  }
  return got === length ? buf : buf.subarray(0, got);
}

function u64(buf: Buffer, offset: number): number {
  const v = buf.readBigUInt64LE(offset);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new Error(`ELF value 0x${v.toString(16)} too large`);
  return Number(v);
}

/** An address: above 2^53 (the vsyscall page, kernel addresses) it is kept approximately, as a label. */
function addr64(buf: Buffer, offset: number): number {
  return Number(buf.readBigUInt64LE(offset));
}

interface FileMapping {
  readonly start: number;
  readonly end: number;
  readonly name: string;
}

/** The NT_FILE note of a core file: which address ranges map which file. */
export function parseNotes(notes: Buffer): FileMapping[] {
  const out: FileMapping[] = [];
  let p = 0;
  while (p + 12 <= notes.length) {
    const namesz = notes.readUInt32LE(p);
    const descsz = notes.readUInt32LE(p + 4);
    const type = notes.readUInt32LE(p + 8);
    const descStart = p + 12 + Math.ceil(namesz / 4) * 4;
    const next = descStart + Math.ceil(descsz / 4) * 4;
    if (next > notes.length || descStart > notes.length) break;
    if (type === NT_FILE && descsz >= 16) {
      const desc = notes.subarray(descStart, descStart + descsz);
      const count = u64(desc, 0);
      let names = 16 + count * 24;
      if (names <= desc.length) {
        for (let i = 0; i < count; i++) {
          const end = desc.indexOf(0, names);
          if (end < 0) break;
          out.push({
            start: addr64(desc, 16 + i * 24),
            end: addr64(desc, 16 + i * 24 + 8),
            name: desc.toString('utf8', names, end),
          });
          names = end + 1;
        }
      }
    }
    p = next;
  }
  return out;
}

/** Reads the layout of a dump file without reading its pages. */
export function layoutDump(path: string, format: DumpFormat = 'auto', offset = 0): DumpLayout {
  const fd = openSync(path, 'r');
  try {
    const fileBytes = fstatSync(fd).size;
    const head = readAt(fd, 0, 64);
    const isElf = head.length >= 4 && head.readUInt32LE(0) === ELF_MAGIC;
    if (format === 'elf' && !isElf) throw new Error(`${path}: not an ELF file (no \\x7fELF magic)`);
    if (format === 'raw' || (format === 'auto' && !isElf)) return rawLayout(path, fileBytes, offset);
    if (offset !== 0) throw new Error(`${path}: --offset applies to raw images, not to ELF files`);
    return elfLayout(path, fd, fileBytes, head);
  } finally {
    closeSync(fd);
  }
}

function rawLayout(path: string, fileBytes: number, offset: number): DumpLayout {
  if (offset < 0 || offset > fileBytes) throw new Error(`${path}: offset ${offset} is outside the file`);
  const pages = Math.floor((fileBytes - offset) / PAGE_BYTES);
  const tail = fileBytes - offset - pages * PAGE_BYTES;
  const skipped = [];
  if (offset > 0)
    skipped.push({ what: 'bytes before --offset', bytes: offset, reason: 'not memory (offset)' });
  if (tail > 0) skipped.push({ what: 'last bytes', bytes: tail, reason: 'less than a whole page' });
  return {
    path,
    kind: 'raw',
    fileBytes,
    segments: pages > 0 ? [{ fileOffset: offset, bytes: pages * PAGE_BYTES, address: offset }] : [],
    skipped,
    notes: [],
  };
}

function elfLayout(path: string, fd: number, fileBytes: number, head: Buffer): DumpLayout {
  if (head.length < 64) throw new Error(`${path}: truncated ELF header`);
  if (head[4] !== 2) throw new Error(`${path}: only ELF64 is supported (EI_CLASS ${head[4]})`);
  if (head[5] !== 1) throw new Error(`${path}: only little-endian ELF is supported (EI_DATA ${head[5]})`);
  const type = head.readUInt16LE(16);
  const phoff = u64(head, 0x20);
  const shoff = u64(head, 0x28);
  const phentsize = head.readUInt16LE(0x36);
  let phnum = head.readUInt16LE(0x38);
  if (phentsize < 56) throw new Error(`${path}: program header entries of ${phentsize} bytes (expected 56)`);
  if (phnum === PN_XNUM) {
    // More than 65534 program headers: the real number is section header 0's sh_info.
    const sh0 = readAt(fd, shoff, 64);
    if (sh0.length < 48) throw new Error(`${path}: PN_XNUM without a readable section header 0`);
    phnum = sh0.readUInt32LE(0x2c);
  }
  const table = readAt(fd, phoff, phnum * phentsize);
  if (table.length < phnum * phentsize) throw new Error(`${path}: program header table runs past the end`);
  const notes: string[] = [];
  const skipped: { what: string; bytes: number; reason: string }[] = [];
  const loads: { offset: number; vaddr: number; filesz: number; memsz: number; index: number }[] = [];
  let files: FileMapping[] = [];
  for (let i = 0; i < phnum; i++) {
    const ph = table.subarray(i * phentsize, i * phentsize + 56);
    const pType = ph.readUInt32LE(0);
    const pOffset = u64(ph, 0x08);
    const pVaddr = addr64(ph, 0x10);
    const pFilesz = u64(ph, 0x20);
    const pMemsz = u64(ph, 0x28);
    if (pType === PT_NOTE && pFilesz > 0 && pFilesz < 64 << 20) {
      files = files.concat(parseNotes(readAt(fd, pOffset, pFilesz)));
    }
    if (pType !== PT_LOAD) continue;
    loads.push({ offset: pOffset, vaddr: pVaddr, filesz: pFilesz, memsz: pMemsz, index: i });
  }
  const segments: DumpSegment[] = [];
  for (const l of loads) {
    const what = `PT_LOAD #${l.index} at 0x${l.vaddr.toString(16)}`;
    if (l.filesz === 0) {
      if (l.memsz > 0) skipped.push({ what, bytes: l.memsz, reason: 'not in the dump (p_filesz 0)' });
      continue;
    }
    let bytes = l.filesz;
    if (l.offset + bytes > fileBytes) {
      const missing = l.offset + bytes - fileBytes;
      skipped.push({ what, bytes: missing, reason: 'past the end of the file (truncated dump)' });
      bytes = Math.max(0, fileBytes - l.offset);
    }
    if (l.memsz > l.filesz)
      skipped.push({ what, bytes: l.memsz - l.filesz, reason: 'beyond p_filesz (not in the dump)' });
    const pages = Math.floor(bytes / PAGE_BYTES);
    if (bytes - pages * PAGE_BYTES > 0)
      skipped.push({ what, bytes: bytes - pages * PAGE_BYTES, reason: 'less than a whole page' });
    if (pages === 0) continue;
    const mapped = files.find((f) => l.vaddr >= f.start && l.vaddr < f.end);
    segments.push({
      fileOffset: l.offset,
      bytes: pages * PAGE_BYTES,
      address: l.vaddr,
      ...(mapped !== undefined ? { file: mapped.name } : {}),
    });
  }
  const fileBacked = segments.filter((s) => s.file !== undefined);
  if (fileBacked.length > 0) {
    const mibs = fileBacked.reduce((a, s) => a + s.bytes, 0) / 1048576;
    notes.push(
      `${fileBacked.length} segment(s), ${mibs.toFixed(1)} MiB, map files (NT_FILE): KSM would scan only ` +
        `their copy-on-write pages, which a core file cannot tell apart; all their pages are counted`,
    );
  }
  if (loads.length === 0) notes.push('no PT_LOAD segment: nothing to read');
  return { path, kind: type === 4 ? 'elf-core' : 'elf', fileBytes, segments, skipped, notes };
}

export interface DumpScan {
  readonly path: string;
  readonly kind: DumpLayout['kind'];
  readonly segments: number;
  readonly skipped: DumpLayout['skipped'];
  readonly notes: readonly string[];
  readonly examinedPages: number;
  /** Zero pages left out with `zeroPages: 'absent'`. */
  readonly zeroPagesLeftOut: number;
  readonly bytesRead: number;
}

export interface DumpReadContext {
  readonly counter: PageSink;
  readonly reader: PageReader;
  readonly progress: Progress;
  /** Every page counted, with its frame (NO_FRAME when unknown); needs a reader in this thread. */
  readonly onPage?: (page: Uint8Array, frame: number) => void;
  /** 'absent': zero pages of the dump are taken as never-touched memory (not present, not scanned). */
  readonly zeroPages: 'present' | 'absent';
}

/** A job's tag: the address of its first page (its pages are consecutive). */
function* dumpJobs(layout: DumpLayout, maxPages: number): Generator<Job<number>> {
  for (const seg of layout.segments) {
    const pages = seg.bytes / PAGE_BYTES;
    for (let first = 0; first < pages; first += maxPages) {
      const n = Math.min(maxPages, pages - first);
      const segments = new Float64Array(2);
      segments[0] = seg.fileOffset + first * PAGE_BYTES;
      segments[1] = n;
      yield {
        path: layout.path,
        segments,
        segmentCount: 1,
        pages: n,
        tag: seg.address + first * PAGE_BYTES,
      };
    }
  }
}

export function scanDump(layout: DumpLayout, ctx: DumpReadContext): DumpScan {
  const { counter, progress, reader } = ctx;
  let examined = 0;
  let leftOut = 0;
  let bytesRead = 0;
  let unreadable = 0;
  reader.run(dumpJobs(layout, reader.maxPages), (job, result) => {
    const { keys, flags } = result;
    for (let i = 0; i < result.pages; i++) {
      const flag = flags[i]!;
      if (flag === PAGE_UNREADABLE) {
        unreadable++;
        continue;
      }
      const zero = flag === PAGE_ZERO;
      if (zero && ctx.zeroPages === 'absent') {
        leftOut++;
        continue;
      }
      counter.count(keys, i, zero, NO_FRAME, job.tag + i * PAGE_BYTES, result.prefixes[i]!, result.analysis);
      ctx.onPage?.(pageOf(result, i), NO_FRAME);
      examined++;
    }
    if (result.analysis !== undefined) counter.compression?.addTiming(result.analysis.timing);
    bytesRead += result.pages * PAGE_BYTES;
    progress.advance(result.pages * PAGE_BYTES);
  });
  if (unreadable > 0)
    throw new Error(`${layout.path}: ${unreadable} pages could not be read (the file shrank?)`);
  return {
    path: layout.path,
    kind: layout.kind,
    segments: layout.segments.length,
    skipped: layout.skipped,
    notes: layout.notes,
    examinedPages: examined,
    zeroPagesLeftOut: leftOut,
    bytesRead,
  };
}
