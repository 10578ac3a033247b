/**
 * Looking at a real process's address space from outside: which VMAs KSM may
 * scan (/proc/PID/smaps `VmFlags: … mg`) and which physical frames back a range
 * (/proc/PID/pagemap, PFNs visible to CAP_SYS_ADMIN only). For tests and tools
 * that check what the kernel backend's agents really did.
 */
import { closeSync, openSync, readFileSync, readSync } from 'node:fs';
import { PAGE_SIZE_BYTES } from '../backend.ts';

/** One VMA of /proc/PID/smaps. */
export interface SmapsEntry {
  readonly start: number;
  readonly end: number;
  /** The path or [heap]/[stack]/…; '' for an anonymous mapping. */
  readonly name: string;
  readonly vmFlags: readonly string[];
  /** The `KSM:` line in kB (KSM pages mapped here). */
  readonly ksmKb: number;
}

export function readSmaps(pid: number): SmapsEntry[] {
  const entries: SmapsEntry[] = [];
  let current: { start: number; end: number; name: string; vmFlags: string[]; ksmKb: number } | undefined;
  for (const line of readFileSync(`/proc/${pid}/smaps`, 'latin1').split('\n')) {
    const head = /^([0-9a-f]+)-([0-9a-f]+) \S+ \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (head !== null) {
      if (current !== undefined) entries.push(current);
      current = {
        start: Number.parseInt(head[1]!, 16),
        end: Number.parseInt(head[2]!, 16),
        name: head[3] ?? '',
        vmFlags: [],
        ksmKb: 0,
      };
      continue;
    }
    if (current === undefined) continue;
    const flags = /^VmFlags:\s*(.*)$/.exec(line);
    if (flags !== null) current.vmFlags = flags[1]!.trim().split(/\s+/);
    const ksm = /^KSM:\s+(\d+) kB$/.exec(line);
    if (ksm !== null) current.ksmKb = Number(ksm[1]);
  }
  if (current !== undefined) entries.push(current);
  return entries;
}

/**
 * The page frame number behind each page of [address, address + pageCount
 * pages), or undefined for a page that is not present.
 */
export function readPfns(pid: number, address: number, pageCount: number): Array<number | undefined> {
  const buf = Buffer.alloc(pageCount * 8);
  const fd = openSync(`/proc/${pid}/pagemap`, 'r');
  try {
    readSync(fd, buf, 0, buf.length, (address / PAGE_SIZE_BYTES) * 8);
  } finally {
    closeSync(fd);
  }
  const pfns: Array<number | undefined> = [];
  for (let i = 0; i < pageCount; i++) {
    const entry = buf.readBigUInt64LE(i * 8);
    const present = (entry >> 63n) & 1n;
    pfns.push(present === 1n ? Number(entry & ((1n << 55n) - 1n)) : undefined);
  }
  return pfns;
}
