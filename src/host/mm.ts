/**
 * Address spaces: `struct mm_struct`, `struct vm_area_struct` and their page
 * tables. A VMA owns the page table entries of its range as typed arrays
 * (one Int32 and one Uint8 per virtual page), so scanning a VMA is a loop over
 * an array, never a lookup per page.
 *
 * PTE encoding (`Vma.pte`, Int32 per virtual page):
 *
 * | value        | meaning                                                           |
 * |--------------|-------------------------------------------------------------------|
 * | 0            | pte_none: never touched, or zapped                                |
 * | frame + 1    | present, maps that frame                                          |
 * | PTE_ZERO     | the shared zero page, mapped by a read fault (pte_special)        |
 * | PTE_KSM_ZERO | the zero page placed by KSM (use_zero_pages): dirty special PTE   |
 *
 * `Vma.pteFlags` (Uint8 per virtual page): PTE_WRITE (writable), PTE_DIRTY.
 * Addresses are kept as virtual page numbers (vpn = address >> 12): user
 * space is 47 bits, so a vpn fits in a double exactly and in 35 bits.
 */
import { assert } from './assert.ts';

export const PTE_NONE = 0;
export const PTE_ZERO = -1;
export const PTE_KSM_ZERO = -2;

export const PTE_WRITE = 1 << 0;
export const PTE_DIRTY = 1 << 1;
/** SHIM (branch `attack`): VUsion's trap: the next access copies the page (copy on access). */
export const PTE_TRAPPED = 1 << 2;

// vm_flags: the kernel's names; the bit values are ours (only the names cross the interface).
export const VM_READ = 1 << 0;
export const VM_WRITE = 1 << 1;
export const VM_EXEC = 1 << 2;
export const VM_SHARED = 1 << 3;
export const VM_MAYSHARE = 1 << 4;
export const VM_LOCKED = 1 << 5;
export const VM_IO = 1 << 6;
export const VM_PFNMAP = 1 << 7;
export const VM_MIXEDMAP = 1 << 8;
export const VM_DONTEXPAND = 1 << 9;
export const VM_HUGETLB = 1 << 10;
export const VM_DROPPABLE = 1 << 11;
export const VM_HUGEPAGE = 1 << 12;
export const VM_NOHUGEPAGE = 1 << 13;
export const VM_MERGEABLE = 1 << 14;
/** DAX file mappings are not a vm_flag in the kernel (vma_is_dax); a flag is the simplest model. */
export const VM_DAX = 1 << 15;
export const VM_SPECIAL = VM_IO | VM_DONTEXPAND | VM_PFNMAP | VM_MIXEDMAP;

/** mm->flags bits that KSM uses. */
export const MMF_VM_MERGEABLE = 1 << 0;
export const MMF_VM_MERGE_ANY = 1 << 1;

/** Shared anonymous memory (shmem behind MAP_SHARED|MAP_ANONYMOUS): the pages belong to the object, not the mapping. */
export class SharedObject {
  /** Frame per page offset, -1 when not yet allocated. */
  readonly frames: Int32Array;
  /** VMAs (in every mm) mapping this object; its frames are freed with the last one. */
  vmaRefs = 0;
  constructor(pageCount: number) {
    this.frames = new Int32Array(pageCount).fill(-1);
  }
}

/** A file's page cache, for private and shared file mappings. */
export class FileObject {
  readonly frames: Int32Array;
  constructor(
    readonly name: string,
    /** The file's bytes; pages past the end read as zeroes. */
    readonly contents: Uint8Array,
  ) {
    this.frames = new Int32Array(Math.max(1, Math.ceil(contents.length / 4096))).fill(-1);
  }
}

export type VmaBacking =
  | { readonly kind: 'anon' }
  | { readonly kind: 'shmem'; readonly object: SharedObject; readonly pgoff: number }
  | { readonly kind: 'file'; readonly file: FileObject; readonly pgoff: number };

/** Mirrors `struct vm_area_struct`. */
export class Vma {
  /** Whether an anonymous page was ever faulted in (vma->anon_vma != NULL). */
  anonVma = false;
  pte: Int32Array;
  pteFlags: Uint8Array;

  constructor(
    public startVpn: number,
    public endVpn: number,
    public flags: number,
    public backing: VmaBacking,
  ) {
    assert(endVpn > startVpn, `empty VMA [${startVpn}, ${endVpn})`);
    this.pte = new Int32Array(endVpn - startVpn);
    this.pteFlags = new Uint8Array(endVpn - startVpn);
  }

  get pageCount(): number {
    return this.endVpn - this.startVpn;
  }

  has(flag: number): boolean {
    return (this.flags & flag) !== 0;
  }

  /** Splits at `vpn` (strictly inside); this VMA keeps the low part and the high part is returned. */
  splitAt(vpn: number): Vma {
    assert(
      vpn > this.startVpn && vpn < this.endVpn,
      `split point ${vpn} outside (${this.startVpn}, ${this.endVpn})`,
    );
    const offset = vpn - this.startVpn;
    const backing: VmaBacking =
      this.backing.kind === 'anon' ? this.backing : { ...this.backing, pgoff: this.backing.pgoff + offset };
    const high = new Vma(vpn, this.endVpn, this.flags, backing);
    high.anonVma = this.anonVma;
    high.pte = this.pte.slice(offset);
    high.pteFlags = this.pteFlags.slice(offset);
    this.pte = this.pte.slice(0, offset);
    this.pteFlags = this.pteFlags.slice(0, offset);
    this.endVpn = vpn;
    if (backing.kind === 'shmem') backing.object.vmaRefs++;
    return high;
  }
}

/** Mirrors `struct mm_struct`: the VMAs sorted by address, KSM's per-mm counters and flags. */
export class Mm {
  readonly vmas: Vma[] = [];
  flags = 0;
  /** mm_users: 0 once the owner exits (ksm_test_exit). */
  users = 1;
  /** ksm_rmap_items, ksm_merging_pages, ksm_zero_pages of /proc/PID/ksm_stat. */
  ksmRmapItems = 0;
  ksmMergingPages = 0;
  ksmZeroPages = 0;
  /** Top-down mmap cursor for mappings without an address. */
  mmapBaseVpn = 0x7f0000000;

  constructor(
    readonly id: number,
    /** NUMA node its pages are allocated on (a process's local node). */
    readonly homeNid: number,
  ) {}

  /** The VMA containing `vpn`, or undefined. */
  findVma(vpn: number): Vma | undefined {
    const i = this.indexAtOrAfter(vpn);
    const vma = this.vmas[i];
    return vma !== undefined && vma.startVpn <= vpn ? vma : undefined;
  }

  /** Index of the first VMA ending after `vpn` (the one containing it, or the next one). */
  indexAtOrAfter(vpn: number): number {
    let lo = 0;
    let hi = this.vmas.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.vmas[mid]!.endVpn <= vpn) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  insertVma(vma: Vma): void {
    const i = this.indexAtOrAfter(vma.startVpn);
    const next = this.vmas[i];
    assert(next === undefined || next.startVpn >= vma.endVpn, 'overlapping VMAs');
    this.vmas.splice(i, 0, vma);
  }

  hasMergeableVma(): boolean {
    return this.vmas.some((v) => v.has(VM_MERGEABLE));
  }
}

export type ProcessState = 'running' | 'exited';

/** SHIM (branch `attack`, policy-contract.md): who a process is, for trust domains and privilege. */
export interface ProcessIdentity {
  readonly uid: number;
  readonly cgroup: string;
  readonly label: string;
  readonly capSysAdmin: boolean;
}

export const ROOT_IDENTITY: ProcessIdentity = { uid: 0, cgroup: '/', label: '', capSysAdmin: true };

export class Process {
  state: ProcessState = 'running';
  constructor(
    readonly pid: number,
    readonly ppid: number,
    public comm: string,
    public mm: Mm,
    readonly identity: ProcessIdentity = ROOT_IDENTITY,
  ) {}

  get uid(): number {
    return this.identity.uid;
  }
  get cgroup(): string {
    return this.identity.cgroup;
  }
  get label(): string {
    return this.identity.label;
  }
  get capSysAdmin(): boolean {
    return this.identity.capSysAdmin;
  }
}
