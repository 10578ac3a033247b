/**
 * The simulated host: processes with their address spaces over physical
 * frames, and the page faults, system calls and lifecycle (fork, exec, exit)
 * that decide what KSM finds when it scans. Synchronous and deterministic:
 * every operation runs to completion; errors are errno values.
 *
 * KSM plugs in through `KsmHooks` (registration, exit, fork, KSM zero pages),
 * the calls mm/ksm.c receives from the rest of the kernel. The primitives KSM
 * needs from the MM (follow a page, write-protect it, replace it, split a THP,
 * break COW) are the `ksm*` methods at the end.
 */
import { NO_POLICY, type PolicyConfig } from '../policy/policy.ts';
import { type RandomSource, randomBelow, SplitMix32 } from '../policy/random.ts';
import { type AccessFault, slowerAccessFault } from './access-fault.ts';
import { assert, fail } from './assert.ts';
import { VirtualClock } from './clock.ts';
import { HPAGE_PMD_NR, PAGE_SHIFT, PAGE_SIZE } from './constants.ts';
import { ErrnoError } from './errno.ts';
import {
  type ContentMode,
  FRAME_ANON,
  FRAME_ANON_EXCLUSIVE,
  FRAME_DIRTY,
  FRAME_KSM,
  FRAME_MLOCKED,
  FramePool,
  ZERO_FRAME,
} from './frames.ts';
import {
  type FileObject,
  MMF_VM_MERGE_ANY,
  MMF_VM_MERGEABLE,
  Mm,
  Process,
  type ProcessIdentity,
  PTE_DIRTY,
  PTE_KSM_ZERO,
  PTE_NONE,
  PTE_TRAP,
  PTE_WRITE,
  PTE_ZERO,
  SharedObject,
  VM_DAX,
  VM_DROPPABLE,
  VM_HUGEPAGE,
  VM_HUGETLB,
  VM_LOCKED,
  VM_MAYSHARE,
  VM_MERGEABLE,
  VM_NOHUGEPAGE,
  VM_READ,
  VM_SHARED,
  VM_SPECIAL,
  VM_WRITE,
  Vma,
  type VmaBacking,
} from './mm.ts';
import type { PageCompare } from './page-compare.ts';

/** The calls mm/ksm.c receives from the rest of the MM (include/linux/ksm.h). */
export interface KsmHooks {
  /** __ksm_enter(): registers the mm with ksmd (mm slot). */
  enter(mm: Mm): void;
  /** ksm_exit(): the mm is being torn down (its users are already 0). */
  exit(mm: Mm): void;
  /** ksm_fork(): the child was just created from the parent. */
  fork(parent: Mm, child: Mm): void;
  /** A KSM zero PTE was zapped or replaced (Zm already decremented by the caller). */
  ksmZeroPageRemoved(mm: Mm): void;
}

export type ThpMode = 'always' | 'madvise' | 'never';

export interface HostConfig {
  /** Physical memory of the host. */
  readonly memoryBytes: number;
  /** Page contents as bytes (default) or as 64-bit fingerprints (see frames.ts). */
  readonly contentMode?: ContentMode;
  readonly numaNodes?: number;
  /** /sys/kernel/mm/transparent_hugepage/enabled (this machine: madvise). */
  readonly thp?: ThpMode;
  readonly clock?: VirtualClock;
  /** A hardening policy (src/policy); default none. The host acts on vusion, KSM and sysfs on the others. */
  readonly policy?: PolicyConfig;
  /** Where random frames come from (vusion's copies); default a SplitMix32 seeded with 1. */
  readonly random?: RandomSource;
  /** Whole-page memcmp for byte mode (see FramePoolConfig.pageCompare); default the pure TypeScript one. */
  readonly pageCompare?: PageCompare;
}

export type { AccessFault } from './access-fault.ts';

/** Who a new process runs as (spawn); fork and exec keep the parent's. */
export interface SpawnOptions {
  readonly comm?: string;
  readonly nid?: number;
  /** Default 0 (root). */
  readonly uid?: number;
  /** Default '/'. */
  readonly cgroup?: string;
  /** Default '' (no label). */
  readonly label?: string;
  /** CAP_SYS_ADMIN; default uid === 0. */
  readonly capSysAdmin?: boolean;
}

export type MadviseAdvice = 'mergeable' | 'unmergeable' | 'hugepage' | 'nohugepage' | 'dontneed';

export interface MmapOptions {
  /** Exact start address (MAP_FIXED_NOREPLACE); otherwise the host picks one top-down. */
  readonly address?: number;
  readonly lengthBytes: number;
  /** Default read+write. */
  readonly prot?: { readonly read: boolean; readonly write: boolean };
  /** MAP_SHARED (with anonymous: shmem). */
  readonly shared?: boolean;
  /** A file mapping instead of anonymous memory. */
  readonly file?: FileObject;
  /** MAP_HUGETLB. */
  readonly hugetlb?: boolean;
  /** Special mappings (VM_IO|VM_PFNMAP...), e.g. a device; never mergeable. */
  readonly special?: boolean;
  /** MAP_DROPPABLE (6.11+). */
  readonly droppable?: boolean;
  readonly dax?: boolean;
}

/** PAGEVEC_SIZE: entries of a per-CPU folio batch. */
const MLOCK_BATCH_SIZE = 31;

export const PR_SET_MEMORY_MERGE = 67;
export const PR_GET_MEMORY_MERGE = 68;

type FaultKind = 'read' | 'write' | 'unshare';

/** /proc/vmstat counters the MM keeps for KSM. */
export interface VmStat {
  cow_ksm: number;
  thp_split_page: number;
}

export class Host {
  readonly frames: FramePool;
  readonly clock: VirtualClock;
  readonly thp: ThpMode;
  readonly vmstat: VmStat = { cow_ksm: 0, thp_split_page: 0 };
  private ksm: KsmHooks | null = null;
  private readonly processes = new Map<number, Process>();
  private nextPid = 1000;
  private nextMmId = 1;
  /** ksmd's per-CPU mlock folio batch (frames holding a batched reference). */
  private readonly mlockBatch: number[] = [];
  readonly policy: PolicyConfig;
  /** What the last write, writePageValue or read cost (the slowest kind over its pages). */
  lastAccessFault: AccessFault = 'none';
  private readonly random: RandomSource;
  /** PTE_TRAP under vusion: what KSM's write-protect and replace leave on a PTE besides its protection. */
  private readonly ksmTrapBit: number;

  constructor(config: HostConfig) {
    this.frames = new FramePool({
      memoryBytes: config.memoryBytes,
      numaNodes: config.numaNodes ?? 1,
      contentMode: config.contentMode ?? 'bytes',
      ...(config.pageCompare === undefined ? {} : { pageCompare: config.pageCompare }),
    });
    this.clock = config.clock ?? new VirtualClock();
    this.thp = config.thp ?? 'madvise';
    this.policy = config.policy ?? NO_POLICY;
    this.random = config.random ?? new SplitMix32(1);
    this.ksmTrapBit = this.policy.name === 'vusion' ? PTE_TRAP : 0;
  }

  attachKsm(hooks: KsmHooks): void {
    assert(this.ksm === null, 'KSM is already attached to this host');
    this.ksm = hooks;
  }

  // ---------------------------------------------------------------- processes

  /** A new process with an empty address space, as if exec'd by init. */
  spawn(options: SpawnOptions = {}): Process {
    const nid = options.nid ?? 0;
    if (!Number.isInteger(nid) || nid < 0 || nid >= this.frames.numaNodes)
      throw new ErrnoError('EINVAL', 'spawn');
    const uid = options.uid ?? 0;
    if (!Number.isInteger(uid) || uid < 0 || uid > 0xfffffffe) throw new ErrnoError('EINVAL', 'spawn');
    const identity: ProcessIdentity = {
      uid,
      cgroup: options.cgroup ?? '/',
      label: options.label ?? '',
      capSysAdmin: options.capSysAdmin ?? uid === 0,
    };
    const pid = this.nextPid++;
    const mm = new Mm(this.nextMmId++, nid, identity);
    const process = new Process(pid, 1, options.comm ?? `proc${pid}`, mm, identity);
    this.processes.set(pid, process);
    return process;
  }

  process(pid: number): Process {
    const p = this.processes.get(pid);
    if (p === undefined || p.state !== 'running') throw new ErrnoError('ESRCH', 'kill');
    return p;
  }

  /** Live processes in pid order. */
  liveProcesses(): Process[] {
    return [...this.processes.values()].filter((p) => p.state === 'running');
  }

  fork(pid: number): Process {
    const parent = this.process(pid);
    const oldMm = parent.mm;
    const mm = new Mm(this.nextMmId++, oldMm.homeNid, parent.identity);
    // MMF_INIT_MASK carries MMF_VM_MERGE_ANY (6.7+), not MMF_VM_MERGEABLE.
    mm.flags = oldMm.flags & MMF_VM_MERGE_ANY;
    mm.mmapBaseVpn = oldMm.mmapBaseVpn;
    // dup_mm() copies the whole mm_struct: the child starts with the parent's
    // per-mm KSM counters; ksm_fork() then resets what 6.18 resets.
    mm.ksmZeroPages = oldMm.ksmZeroPages;
    mm.ksmMergingPages = oldMm.ksmMergingPages;
    mm.ksmRmapItems = oldMm.ksmRmapItems;
    this.ksm?.fork(oldMm, mm);
    for (const vma of oldMm.vmas) mm.vmas.push(this.copyVma(vma, mm));
    const child = new Process(this.nextPid++, parent.pid, parent.comm, mm, parent.identity);
    this.processes.set(child.pid, child);
    return child;
  }

  /**
   * exec(): a fresh mm with only the initial stack. MMF_VM_MERGE_ANY survives
   * (MMF_INIT_MASK), and ksm_execve() registers the new mm; the stack VMA is
   * not marked mergeable (create_init_stack_vma does not call ksm_vma_flags).
   * `initialStack: false` leaves the new mm empty: a workload process stands
   * for a program whose own memory KSM never sees (the kernel backend's agent
   * advises its own mappings unmergeable), so it has no stack to mark.
   */
  exec(pid: number, options: { readonly comm?: string; readonly initialStack?: boolean } = {}): void {
    const process = this.process(pid);
    const oldMm = process.mm;
    const mm = new Mm(this.nextMmId++, oldMm.homeNid, process.identity);
    mm.flags = oldMm.flags & MMF_VM_MERGE_ANY;
    if (mm.flags & MMF_VM_MERGE_ANY) this.ksm?.enter(mm);
    process.mm = mm;
    if (options.comm !== undefined) process.comm = options.comm;
    if (options.initialStack === false) {
      this.teardownMm(oldMm);
      return;
    }
    const stackPages = 33;
    const stack = new Vma(mm.mmapBaseVpn + 0x1000, mm.mmapBaseVpn + 0x1000 + stackPages, VM_READ | VM_WRITE, {
      kind: 'anon',
    });
    mm.insertVma(stack);
    // The argument and environment strings land on the top stack page.
    this.faultIn(mm, stack, stack.endVpn - 1, 'write');
    this.teardownMm(oldMm);
  }

  exit(pid: number): void {
    const process = this.process(pid);
    process.state = 'exited';
    this.teardownMm(process.mm);
    this.processes.delete(pid);
  }

  /** mmput() of the last user: ksm_exit() first, then exit_mmap() zaps everything. */
  private teardownMm(mm: Mm): void {
    mm.users = 0;
    if (mm.flags & MMF_VM_MERGEABLE) this.ksm?.exit(mm);
    for (const vma of mm.vmas) {
      this.releaseVma(mm, vma, 0, vma.pageCount);
      this.dropVma(vma);
    }
    mm.vmas.length = 0;
  }

  // ---------------------------------------------------------------- mappings

  mmap(pid: number, options: MmapOptions): number {
    const mm = this.process(pid).mm;
    const pageCount = Math.ceil(options.lengthBytes / PAGE_SIZE);
    if (!Number.isFinite(options.lengthBytes) || pageCount <= 0) throw new ErrnoError('EINVAL', 'mmap');
    let startVpn: number;
    if (options.address !== undefined) {
      if (options.address % PAGE_SIZE !== 0 || options.address <= 0) throw new ErrnoError('EINVAL', 'mmap');
      startVpn = options.address / PAGE_SIZE;
      if (this.rangeOverlaps(mm, startVpn, startVpn + pageCount)) throw new ErrnoError('EEXIST', 'mmap');
    } else {
      startVpn = this.pickTopDown(mm, pageCount);
    }
    const prot = options.prot ?? { read: true, write: true };
    let flags = (prot.read ? VM_READ : 0) | (prot.write ? VM_WRITE : 0);
    if (options.shared) flags |= VM_SHARED | VM_MAYSHARE;
    if (options.hugetlb) flags |= VM_HUGETLB;
    if (options.special) flags |= VM_SPECIAL;
    if (options.droppable) flags |= VM_DROPPABLE;
    if (options.dax) flags |= VM_DAX;
    let backing: VmaBacking = { kind: 'anon' };
    if (options.file !== undefined) backing = { kind: 'file', file: options.file, pgoff: 0 };
    else if (options.shared) {
      const object = new SharedObject(pageCount);
      object.vmaRefs = 1;
      backing = { kind: 'shmem', object, pgoff: 0 };
    }
    // ksm_vma_flags() (6.16+): a MERGE_ANY mm gets VM_MERGEABLE at creation,
    // and (6.18.3+) is registered again if ksmd had dropped its slot.
    if (mm.flags & MMF_VM_MERGE_ANY && vmaFlagsKsmCompatible(flags)) {
      if (!(mm.flags & MMF_VM_MERGEABLE)) this.ksmEnter(mm);
      flags |= VM_MERGEABLE;
    }
    mm.insertVma(new Vma(startVpn, startVpn + pageCount, flags, backing));
    return startVpn * PAGE_SIZE;
  }

  munmap(pid: number, address: number, lengthBytes: number): void {
    const mm = this.process(pid).mm;
    const [start, end] = this.checkRange(address, lengthBytes, 'munmap');
    if (start === end) throw new ErrnoError('EINVAL', 'munmap');
    for (const vma of this.splitRange(mm, start, end)) {
      this.releaseVma(mm, vma, 0, vma.pageCount);
      this.dropVma(vma);
      mm.vmas.splice(mm.vmas.indexOf(vma), 1);
    }
  }

  madvise(pid: number, address: number, lengthBytes: number, advice: MadviseAdvice): void {
    const mm = this.process(pid).mm;
    const [start, end] = this.checkRange(address, lengthBytes, 'madvise');
    if (start === end) return;
    const covered = this.coveredPages(mm, start, end);
    if (advice === 'dontneed') {
      // madvise_dontneed_free_valid_vma(): locked, PFN-mapped and hugetlb VMAs refuse.
      for (const vma of this.vmasInRange(mm, start, end)) {
        if (vma.flags & (VM_LOCKED | VM_HUGETLB | VM_SPECIAL)) throw new ErrnoError('EINVAL', 'madvise');
      }
      for (const vma of this.vmasInRange(mm, start, end)) {
        const from = Math.max(start, vma.startVpn) - vma.startVpn;
        const to = Math.min(end, vma.endVpn) - vma.startVpn;
        this.releaseVma(mm, vma, from, to);
      }
    } else {
      for (const vma of this.splitRange(mm, start, end)) this.applyAdvice(mm, vma, advice);
    }
    // Unmapped gaps: the mapped parts were handled, and the call reports ENOMEM.
    if (covered < end - start) throw new ErrnoError('ENOMEM', 'madvise');
  }

  private applyAdvice(mm: Mm, vma: Vma, advice: Exclude<MadviseAdvice, 'dontneed'>): void {
    switch (advice) {
      case 'mergeable':
        // ksm_madvise(MADV_MERGEABLE): incompatible VMAs silently keep their flags.
        if (vma.has(VM_MERGEABLE) || !vmaFlagsKsmCompatible(vma.flags)) return;
        if (!(mm.flags & MMF_VM_MERGEABLE)) this.ksmEnter(mm);
        vma.flags |= VM_MERGEABLE;
        return;
      case 'unmergeable':
        if (!vma.has(VM_MERGEABLE)) return;
        if (vma.anonVma) this.unmergeKsmPages(mm, vma, vma.startVpn, vma.endVpn);
        vma.flags &= ~VM_MERGEABLE;
        return;
      case 'hugepage':
        vma.flags = (vma.flags | VM_HUGEPAGE) & ~VM_NOHUGEPAGE;
        return;
      case 'nohugepage':
        vma.flags = (vma.flags | VM_NOHUGEPAGE) & ~VM_HUGEPAGE;
        return;
    }
  }

  /**
   * pin_user_pages(FOLL_WRITE | FOLL_LONGTERM), as O_DIRECT or a vfio device
   * does: the pages are faulted in writable and hold a reference beyond their
   * mappings, so write_protect_page() refuses them and KSM cannot merge them.
   */
  pin(pid: number, address: number, lengthBytes: number): void {
    const mm = this.process(pid).mm;
    const [start, end] = this.checkRange(address, lengthBytes, 'pin');
    if (this.coveredPages(mm, start, end) < end - start) throw new ErrnoError('EFAULT', 'pin');
    for (let vpn = start; vpn < end; vpn++) {
      const frame = this.faultIn(mm, mm.findVma(vpn)!, vpn, 'write');
      if (this.frames.pinCount[frame] === 0xffff) throw new ErrnoError('ENOMEM', 'pin');
      this.frames.pinCount[frame]!++;
    }
  }

  /** unpin_user_pages() of pages pinned by `pin` (the mapping may have changed since: the frame the PTE maps is unpinned). */
  unpin(pid: number, address: number, lengthBytes: number): void {
    const mm = this.process(pid).mm;
    const [start, end] = this.checkRange(address, lengthBytes, 'unpin');
    for (let vpn = start; vpn < end; vpn++) {
      const vma = mm.findVma(vpn);
      if (vma === undefined) continue;
      const frame = this.frameAt(vma, vpn);
      if (frame > ZERO_FRAME && this.frames.pinCount[frame]! > 0) this.frames.pinCount[frame]!--;
    }
  }

  /** mlock(): VM_LOCKED, then populate (write faults on private writable mappings, which breaks COW). */
  mlock(pid: number, address: number, lengthBytes: number): void {
    const mm = this.process(pid).mm;
    const [start, end] = this.checkRange(address, lengthBytes, 'mlock');
    if (this.coveredPages(mm, start, end) < end - start) throw new ErrnoError('ENOMEM', 'mlock');
    for (const vma of this.splitRange(mm, start, end)) {
      vma.flags |= VM_LOCKED;
      const kind: FaultKind = (vma.flags & (VM_WRITE | VM_SHARED)) === VM_WRITE ? 'write' : 'read';
      for (let vpn = vma.startVpn; vpn < vma.endVpn; vpn++) {
        const frame = this.faultIn(mm, vma, vpn, kind);
        if (frame > ZERO_FRAME) this.frames.flags[frame]! |= FRAME_MLOCKED;
      }
    }
  }

  /**
   * prctl(PR_SET_MEMORY_MERGE / PR_GET_MEMORY_MERGE), kernel/sys.c + mm/ksm.c
   * ksm_enable_merge_any()/ksm_disable_merge_any(). Returns the syscall's value.
   */
  prctl(pid: number, option: number, arg2: number, arg3 = 0, arg4 = 0, arg5 = 0): number {
    const mm = this.process(pid).mm;
    if (option === PR_SET_MEMORY_MERGE) {
      if (arg3 !== 0 || arg4 !== 0 || arg5 !== 0) throw new ErrnoError('EINVAL', 'prctl');
      if (arg2 !== 0) {
        if (mm.flags & MMF_VM_MERGE_ANY) return 0;
        if (!(mm.flags & MMF_VM_MERGEABLE)) this.ksmEnter(mm);
        mm.flags |= MMF_VM_MERGE_ANY;
        for (const vma of mm.vmas) if (vmaFlagsKsmCompatible(vma.flags)) vma.flags |= VM_MERGEABLE;
        return 0;
      }
      if (!(mm.flags & MMF_VM_MERGE_ANY)) return 0;
      for (const vma of mm.vmas) {
        if (!vma.has(VM_MERGEABLE)) continue;
        if (vma.anonVma) this.unmergeKsmPages(mm, vma, vma.startVpn, vma.endVpn);
        vma.flags &= ~VM_MERGEABLE;
      }
      mm.flags &= ~MMF_VM_MERGE_ANY;
      return 0;
    }
    if (option === PR_GET_MEMORY_MERGE) {
      if (arg2 !== 0 || arg3 !== 0 || arg4 !== 0 || arg5 !== 0) throw new ErrnoError('EINVAL', 'prctl');
      return mm.flags & MMF_VM_MERGE_ANY ? 1 : 0;
    }
    throw new ErrnoError('EINVAL', 'prctl');
  }

  // ---------------------------------------------------------------- data access

  /** Stores `bytes` at `address`, taking write faults (COW) as a user store would. */
  write(pid: number, address: number, bytes: Uint8Array): void {
    this.lastAccessFault = 'none';
    this.store(pid, address, bytes, false);
  }

  /**
   * Stores a whole page given as its 64-bit value repeated 512 times
   * (big-endian), the only form a fingerprint-mode host holds; cheap in both modes.
   */
  writePageValue(pid: number, address: number, hi: number, lo: number): void {
    const mm = this.process(pid).mm;
    if (address % PAGE_SIZE !== 0) throw new ErrnoError('EINVAL', 'write');
    const vpn = address / PAGE_SIZE;
    const vma = mm.findVma(vpn);
    if (vma === undefined || !vma.has(VM_WRITE)) throw new ErrnoError('EFAULT', 'write');
    this.lastAccessFault = 'none';
    const frame = this.accessFault(mm, vma, vpn, 'write');
    this.frames.writeValue(frame, hi, lo);
  }

  /** Loads `lengthBytes` from `address`, taking read faults (untouched anonymous pages read the zero page). */
  read(pid: number, address: number, lengthBytes: number): Uint8Array {
    const mm = this.process(pid).mm;
    const out = new Uint8Array(lengthBytes);
    this.lastAccessFault = 'none';
    let done = 0;
    while (done < lengthBytes) {
      const at = address + done;
      const vpn = Math.floor(at / PAGE_SIZE);
      const vma = mm.findVma(vpn);
      if (vma === undefined || !vma.has(VM_READ)) throw new ErrnoError('EFAULT', 'read');
      const inPage = at - vpn * PAGE_SIZE;
      const n = Math.min(PAGE_SIZE - inPage, lengthBytes - done);
      const frame = this.accessFault(mm, vma, vpn, 'read');
      if (frame !== ZERO_FRAME) this.frames.readBytes(frame, inPage, out, done, n);
      done += n;
    }
    return out;
  }

  /**
   * Reads memory through the page tables without faulting anything in (an
   * untouched or zero-mapped page reads as zeroes). For checks that must not
   * change the state they look at.
   */
  peek(pid: number, address: number, lengthBytes: number): Uint8Array {
    const mm = this.process(pid).mm;
    const out = new Uint8Array(lengthBytes);
    let done = 0;
    while (done < lengthBytes) {
      const at = address + done;
      const vpn = Math.floor(at / PAGE_SIZE);
      const inPage = at - vpn * PAGE_SIZE;
      const n = Math.min(PAGE_SIZE - inPage, lengthBytes - done);
      const vma = mm.findVma(vpn);
      if (vma === undefined) throw new ErrnoError('EFAULT', 'peek');
      const frame = this.frameAt(vma, vpn);
      if (frame > ZERO_FRAME) this.frames.readBytes(frame, inPage, out, done, n);
      done += n;
    }
    return out;
  }

  /** The frame a virtual page maps now (ZERO_FRAME for none/zero page), without faulting. */
  frameAt(vma: Vma, vpn: number): number {
    const i = vpn - vma.startVpn;
    const pte = vma.pte[i]!;
    if (pte > 0) return pte - 1;
    if (vma.backing.kind === 'shmem') {
      const frame = vma.backing.object.frames[vma.backing.pgoff + i]!;
      return frame >= 0 ? frame : ZERO_FRAME;
    }
    if (vma.backing.kind === 'file') {
      const frame = vma.backing.file.frames[vma.backing.pgoff + i] ?? -1;
      return frame >= 0 ? frame : ZERO_FRAME;
    }
    return ZERO_FRAME;
  }

  /** mprotect(): new read/write permissions; PTEs lose their write bit with VM_WRITE. */
  mprotect(pid: number, address: number, lengthBytes: number, prot: { read: boolean; write: boolean }): void {
    const mm = this.process(pid).mm;
    const [start, end] = this.checkRange(address, lengthBytes, 'mprotect');
    if (this.coveredPages(mm, start, end) < end - start) throw new ErrnoError('ENOMEM', 'mprotect');
    for (const vma of this.splitRange(mm, start, end)) {
      const becomesWritable = prot.write && !vma.has(VM_WRITE);
      vma.flags =
        (vma.flags & ~(VM_READ | VM_WRITE)) | (prot.read ? VM_READ : 0) | (prot.write ? VM_WRITE : 0);
      if (!prot.write) for (let i = 0; i < vma.pageCount; i++) vma.pteFlags[i]! &= ~PTE_WRITE;
      // mprotect_fixup(): a locked private mapping that becomes writable is populated for
      // writing at once (populate_vma_page_range), which breaks COW of every shared or KSM
      // page in it, as mlock() does (found by `ksmkit fuzz` against 6.18.44, seed 3100717).
      if (becomesWritable && (vma.flags & (VM_LOCKED | VM_SHARED)) === VM_LOCKED) {
        for (let vpn = vma.startVpn; vpn < vma.endVpn; vpn++) this.faultIn(mm, vma, vpn, 'write');
      }
    }
  }

  /**
   * A FOLL_FORCE write, as through /proc/PID/mem: ignores the VMA's
   * protection, and COWs a shared or KSM page like any write.
   */
  pokeForce(pid: number, address: number, bytes: Uint8Array): void {
    this.lastAccessFault = 'none';
    this.store(pid, address, bytes, true);
  }

  /** A user store, or with `force` a FOLL_FORCE one that ignores VM_WRITE. */
  private store(pid: number, address: number, bytes: Uint8Array, force: boolean): void {
    const mm = this.process(pid).mm;
    let done = 0;
    while (done < bytes.length) {
      const at = address + done;
      const vpn = Math.floor(at / PAGE_SIZE);
      const vma = mm.findVma(vpn);
      if (vma === undefined || (!force && !vma.has(VM_WRITE))) throw new ErrnoError('EFAULT', 'write');
      const inPage = at - vpn * PAGE_SIZE;
      const n = Math.min(PAGE_SIZE - inPage, bytes.length - done);
      // Without VM_WRITE the fault copies a shared or KSM page (no reuse) and the copy stays read-only.
      const frame = this.accessFault(mm, vma, vpn, 'write');
      if (!vma.has(VM_WRITE)) vma.pteFlags[vpn - vma.startVpn]! &= ~PTE_WRITE;
      this.frames.writeBytes(frame, inPage, bytes.subarray(done, done + n));
      done += n;
    }
  }

  // ---------------------------------------------------------------- faults

  /**
   * handle_mm_fault() for one page. Returns the frame now mapped (ZERO_FRAME
   * for the zero page), or -1 when an unshare found nothing to do.
   */
  faultIn(mm: Mm, vma: Vma, vpn: number, kind: FaultKind): number {
    const i = vpn - vma.startVpn;
    if (vma.pteFlags[i]! & PTE_TRAP && kind !== 'unshare') return this.copyOnAccess(mm, vma, i, kind);
    const pte = vma.pte[i]!;
    const backing = vma.backing;
    if (backing.kind === 'shmem') return this.sharedFault(mm, vma, i, backing.object, backing.pgoff + i);
    if (pte === PTE_NONE) {
      if (kind === 'unshare') return -1;
      if (backing.kind === 'file') {
        const cached = this.pageCacheFrame(backing.file, backing.pgoff + i);
        if (kind === 'read' || !(vma.flags & VM_WRITE)) {
          this.mapFrame(vma, i, cached, 0);
          return cached;
        }
        return this.copyOnWrite(mm, vma, i, cached, kind);
      }
      if (kind === 'read') {
        vma.pte[i] = PTE_ZERO;
        vma.pteFlags[i] = 0;
        return ZERO_FRAME;
      }
      return this.anonymousFault(mm, vma, vpn);
    }
    if (pte === PTE_ZERO || pte === PTE_KSM_ZERO) {
      if (kind === 'read' || (kind === 'unshare' && pte === PTE_ZERO)) return ZERO_FRAME;
      // A write (or an unshare of a KSM zero page) installs a fresh zeroed page.
      const frame = this.allocAnon(mm);
      vma.anonVma = true;
      if (pte === PTE_KSM_ZERO) this.removeKsmZeroPte(mm);
      vma.pte[i] = frame + 1;
      vma.pteFlags[i] = kind === 'write' ? PTE_WRITE | PTE_DIRTY : 0;
      this.frames.mapcount[frame]!++;
      return frame;
    }
    const frame = pte - 1;
    if (kind === 'read') return frame;
    const flags = this.frames.flags[frame]!;
    if (kind === 'unshare') {
      if (!(flags & FRAME_KSM)) return frame;
      return this.copyOnWrite(mm, vma, i, frame, kind);
    }
    if (vma.pteFlags[i]! & PTE_WRITE) {
      vma.pteFlags[i]! |= PTE_DIRTY;
      return frame;
    }
    // do_wp_page(): a KSM folio is never reused, even by its last mapper.
    if (flags & FRAME_ANON && !(flags & FRAME_KSM) && vma.has(VM_WRITE)) {
      if (
        flags & FRAME_ANON_EXCLUSIVE ||
        (!this.frames.isLarge(frame) && this.frames.mapcount[frame] === 1)
      ) {
        this.frames.flags[frame]! |= FRAME_ANON_EXCLUSIVE;
        vma.pteFlags[i] = PTE_WRITE | PTE_DIRTY;
        return frame;
      }
      if (this.frames.isLarge(frame) && this.reuseLargeFolio(vma, vpn, frame)) return frame;
    }
    return this.copyOnWrite(mm, vma, i, frame, kind);
  }

  /** faultIn() for a user load or store, noting in lastAccessFault what it cost (see access-fault.ts). */
  private accessFault(mm: Mm, vma: Vma, vpn: number, kind: 'read' | 'write'): number {
    const i = vpn - vma.startVpn;
    const pte = vma.pte[i]!;
    const pteFlags = vma.pteFlags[i]!;
    const wasKsm = pte > 0 && (this.frames.flags[pte - 1]! & FRAME_KSM) !== 0;
    const frame = this.faultIn(mm, vma, vpn, kind);
    let fault: AccessFault = 'none';
    if (pteFlags & PTE_TRAP) fault = 'copy-on-access';
    else if (pte === PTE_NONE) fault = 'anon';
    else if (kind === 'read' || (pte > 0 && pteFlags & PTE_WRITE)) fault = 'none';
    else if (pte === PTE_ZERO) fault = 'cow';
    else if (pte === PTE_KSM_ZERO || wasKsm) fault = 'cow-ksm';
    else fault = vma.pte[i] === pte ? 'wp-reuse' : 'cow';
    this.lastAccessFault = slowerAccessFault(this.lastAccessFault, fault);
    return frame;
  }

  /**
   * The vusion policy's fault on a trapped page, for any access: the page is
   * copied onto a fresh frame taken at a random place and mapped as the
   * process's own, so a merged page and an unmerged one cost the same and
   * where the copy lands cannot be steered (VUsion, SOSP 2017: copy-on-access).
   */
  private copyOnAccess(mm: Mm, vma: Vma, i: number, kind: FaultKind): number {
    const pte = vma.pte[i]!;
    const frame = this.frames.allocRandom(mm.homeNid, (n) => randomBelow(this.random, n));
    if (frame < 0) throw new ErrnoError('ENOMEM', 'fault');
    this.frames.flags[frame]! |= FRAME_ANON | FRAME_ANON_EXCLUSIVE;
    vma.anonVma = true;
    if (pte > 0) {
      this.copyFrame(pte - 1, frame);
      if (this.frames.flags[pte - 1]! & FRAME_KSM) this.vmstat.cow_ksm++;
      this.putMapping(pte - 1);
    } else if (pte === PTE_KSM_ZERO) this.removeKsmZeroPte(mm);
    vma.pte[i] = frame + 1;
    vma.pteFlags[i] = (vma.has(VM_WRITE) ? PTE_WRITE : 0) | (kind === 'write' ? PTE_DIRTY : 0);
    this.frames.mapcount[frame]!++;
    return frame;
  }

  /**
   * A write fault on a THP that is no longer shared with another mm reuses it
   * instead of copying a page: do_huge_pmd_wp_page() makes the whole PMD
   * writable when the folio is PMD-mapped here alone, and (6.15+)
   * wp_can_reuse_anon_folio() reuses a PTE-mapped large folio whose every
   * mapping is in this mm, unless only one page of it is still mapped. A THP
   * is only ever mapped at its own address range here (no mremap).
   */
  private reuseLargeFolio(vma: Vma, vpn: number, frame: number): boolean {
    const frames = this.frames;
    const head = frames.folioHead[frame]!;
    const hugeStart = vpn - (frame - head);
    let mapped = 0;
    let here = 0;
    for (let k = 0; k < HPAGE_PMD_NR; k++) {
      if (frames.folioHead[head + k] !== head) continue;
      mapped += frames.mapcount[head + k]!;
      const v = hugeStart + k;
      if (v >= vma.startVpn && v < vma.endVpn && vma.pte[v - vma.startVpn] === head + k + 1) here++;
    }
    if (mapped <= 1 || mapped !== here) return false;
    if (here === HPAGE_PMD_NR) {
      for (let k = 0; k < HPAGE_PMD_NR; k++) {
        vma.pteFlags[hugeStart + k - vma.startVpn] = PTE_WRITE | PTE_DIRTY;
        frames.flags[head + k]! |= FRAME_ANON_EXCLUSIVE;
      }
    } else {
      vma.pteFlags[vpn - vma.startVpn] = PTE_WRITE | PTE_DIRTY;
      frames.flags[frame]! |= FRAME_ANON_EXCLUSIVE;
    }
    return true;
  }

  private anonymousFault(mm: Mm, vma: Vma, vpn: number): number {
    vma.anonVma = true;
    const hugeStart = vpn - (vpn % HPAGE_PMD_NR);
    if (this.thpEligible(vma, hugeStart)) {
      const head = this.frames.allocHuge(mm.homeNid);
      if (head >= 0) {
        for (let k = 0; k < HPAGE_PMD_NR; k++) {
          const i = hugeStart + k - vma.startVpn;
          this.frames.flags[head + k]! |= FRAME_ANON | FRAME_ANON_EXCLUSIVE;
          this.mapFrame(vma, i, head + k, PTE_WRITE | (hugeStart + k === vpn ? PTE_DIRTY : 0));
        }
        return head + (vpn - hugeStart);
      }
    }
    const frame = this.allocAnon(mm);
    this.frames.flags[frame]! |= FRAME_ANON_EXCLUSIVE;
    this.mapFrame(vma, vpn - vma.startVpn, frame, PTE_WRITE | PTE_DIRTY);
    return frame;
  }

  /** A THP can back [hugeStart, hugeStart+512) only if the range is inside the VMA and has no page table yet. */
  private thpEligible(vma: Vma, hugeStart: number): boolean {
    if (this.thp === 'never' || vma.has(VM_NOHUGEPAGE) || vma.backing.kind !== 'anon') return false;
    if (this.thp === 'madvise' && !vma.has(VM_HUGEPAGE)) return false;
    if (hugeStart < vma.startVpn || hugeStart + HPAGE_PMD_NR > vma.endVpn) return false;
    const from = hugeStart - vma.startVpn;
    for (let k = 0; k < HPAGE_PMD_NR; k++) if (vma.pte[from + k] !== PTE_NONE) return false;
    return true;
  }

  private copyOnWrite(mm: Mm, vma: Vma, i: number, oldFrame: number, kind: FaultKind): number {
    const frame = this.allocAnon(mm);
    this.copyFrame(oldFrame, frame);
    const oldFlags = this.frames.flags[oldFrame]!;
    if (oldFlags & FRAME_KSM) this.vmstat.cow_ksm++;
    vma.anonVma = true;
    this.frames.flags[frame]! |= FRAME_ANON_EXCLUSIVE;
    const oldMapped = vma.pte[i]! > 0;
    // An unshare fault keeps the old PTE's protection: the copy is not made writable.
    vma.pte[i] = frame + 1;
    vma.pteFlags[i] = kind === 'write' ? PTE_WRITE | PTE_DIRTY : 0;
    this.frames.mapcount[frame]!++;
    if (oldMapped) {
      // wp_page_copy() in a locked VMA: mlock_new_folio() of the copy, then munlock_folio() of
      // the old page, each leave a reference in an mlock batch until it drains, so an old page
      // unmapped here is not freed yet (run=2's unmerge keeps a stable node alive that way;
      // found by `ksmkit fuzz` against 6.18.44, seed 2000145).
      if ((vma.flags & (VM_LOCKED | VM_SPECIAL)) === VM_LOCKED) {
        this.mlockBatchAdd(frame);
        this.mlockBatchAdd(oldFrame);
      }
      this.putMapping(oldFrame);
    }
    return frame;
  }

  private sharedFault(mm: Mm, vma: Vma, i: number, object: SharedObject, index: number): number {
    let frame = object.frames[index]!;
    if (frame < 0) {
      frame = this.frames.alloc(mm.homeNid);
      if (frame < 0) throw new ErrnoError('ENOMEM', 'fault');
      object.frames[index] = frame;
    }
    if (vma.pte[i] === PTE_NONE) this.mapFrame(vma, i, frame, vma.has(VM_WRITE) ? PTE_WRITE : 0);
    return frame;
  }

  private pageCacheFrame(file: FileObject, index: number): number {
    let frame = file.frames[index] ?? -1;
    if (frame >= 0) return frame;
    frame = this.frames.alloc(0);
    if (frame < 0) throw new ErrnoError('ENOMEM', 'fault');
    const from = index * PAGE_SIZE;
    const bytes = file.contents.subarray(from, Math.min(from + PAGE_SIZE, file.contents.length));
    this.frames.writeBytes(frame, 0, bytes);
    if (index < file.frames.length) file.frames[index] = frame;
    return frame;
  }

  private allocAnon(mm: Mm): number {
    const frame = this.frames.alloc(mm.homeNid);
    if (frame < 0) throw new ErrnoError('ENOMEM', 'fault');
    this.frames.flags[frame]! |= FRAME_ANON;
    return frame;
  }

  private copyFrame(from: number, to: number): void {
    this.frames.copyContents(from, to);
  }

  private mapFrame(vma: Vma, i: number, frame: number, pteFlags: number): void {
    vma.pte[i] = frame + 1;
    vma.pteFlags[i] = pteFlags;
    this.frames.mapcount[frame]!++;
  }

  /** Drops one mapping of a frame; an anonymous frame with no mapping left is freed. */
  private putMapping(frame: number): void {
    const left = --this.frames.mapcount[frame]!;
    if (!(left >= 0)) fail(`negative mapcount on frame ${frame}`);
    // A page still referenced by a per-CPU batch is freed when the batch drains.
    if (left === 0 && this.frames.flags[frame]! & FRAME_ANON && this.frames.batchRefs[frame] === 0) {
      this.frames.free(frame);
    }
  }

  /**
   * mlock_folio()/munlock_folio() in ksmd's context: the folio goes into the
   * per-CPU mlock batch with a reference, dropped when the batch drains (it
   * holds PAGEVEC_SIZE = 31; a large folio drains it at once; and ksmd drains
   * every CPU's batches at the start of each pass with lru_add_drain_all()).
   * Until then write_protect_page() sees one reference too many, so a fork
   * child's copy of a page just replaced in a locked VMA cannot merge in the
   * same pass (found by `ksmkit fuzz` against 6.18.44, seed 36).
   */
  private mlockBatchAdd(frame: number): void {
    this.frames.batchRefs[frame]!++;
    this.mlockBatch.push(frame);
    if (this.mlockBatch.length >= MLOCK_BATCH_SIZE || this.frames.isLarge(frame)) this.drainLruBatches();
  }

  /** lru_add_drain_all(): every batched reference is dropped; unmapped pages held only by a batch are freed. */
  drainLruBatches(): void {
    const frames = this.frames;
    for (const frame of this.mlockBatch) {
      if (frames.batchRefs[frame] === 0) continue;
      frames.batchRefs[frame]!--;
      if (
        frames.batchRefs[frame] === 0 &&
        frames.mapcount[frame] === 0 &&
        frames.flags[frame]! & FRAME_ANON
      ) {
        frames.free(frame);
      }
    }
    this.mlockBatch.length = 0;
  }

  private removeKsmZeroPte(mm: Mm): void {
    mm.ksmZeroPages--;
    this.ksm?.ksmZeroPageRemoved(mm);
  }

  /** Zaps PTEs [from, to) of a VMA (munmap, MADV_DONTNEED, exit); releases the VMA itself when the whole of it goes. */
  private releaseVma(mm: Mm, vma: Vma, from: number, to: number): void {
    for (let i = from; i < to; i++) {
      const pte = vma.pte[i]!;
      if (pte > 0) this.putMapping(pte - 1);
      else if (pte === PTE_KSM_ZERO) this.removeKsmZeroPte(mm);
      vma.pte[i] = PTE_NONE;
      vma.pteFlags[i] = 0;
    }
  }

  /** The VMA leaves its mm (munmap, exit): a shmem object frees its pages with its last mapper. */
  private dropVma(vma: Vma): void {
    if (vma.backing.kind !== 'shmem') return;
    const object = vma.backing.object;
    if (--object.vmaRefs > 0) return;
    for (let k = 0; k < object.frames.length; k++) {
      const frame = object.frames[k]!;
      if (frame >= 0 && this.frames.mapcount[frame] === 0) this.frames.free(frame);
      object.frames[k] = -1;
    }
  }

  private copyVma(vma: Vma, child: Mm): Vma {
    // Memory locks are not inherited across fork (dup_mmap clears VM_LOCKED_MASK).
    const copy = new Vma(vma.startVpn, vma.endVpn, vma.flags & ~VM_LOCKED, vma.backing);
    copy.anonVma = vma.anonVma;
    copy.pte = vma.pte.slice();
    copy.pteFlags = vma.pteFlags.slice();
    if (vma.backing.kind === 'shmem') vma.backing.object.vmaRefs++;
    const private_ = !vma.has(VM_SHARED);
    for (let i = 0; i < vma.pageCount; i++) {
      const pte = vma.pte[i]!;
      if (pte <= 0) continue;
      const frame = pte - 1;
      this.frames.mapcount[frame]!++;
      if (private_ && this.frames.pinCount[frame]! > 0 && this.frames.flags[frame]! & FRAME_ANON_EXCLUSIVE) {
        // page_needs_cow_for_dma(): a pinned exclusive page is copied for the child at once.
        this.frames.mapcount[frame]!--;
        const copyFrame = this.allocAnon(child);
        this.copyFrame(frame, copyFrame);
        this.frames.flags[copyFrame]! |= FRAME_ANON_EXCLUSIVE;
        copy.pte[i] = copyFrame + 1;
        this.frames.mapcount[copyFrame]!++;
        continue;
      }
      if (private_) {
        // copy_present_pte(): a private page becomes shared copy-on-write in both.
        vma.pteFlags[i]! &= ~PTE_WRITE;
        copy.pteFlags[i]! &= ~PTE_WRITE;
        this.frames.flags[frame]! &= ~FRAME_ANON_EXCLUSIVE;
      }
    }
    return copy;
  }

  // ---------------------------------------------------------------- range helpers

  private checkRange(address: number, lengthBytes: number, syscall: string): [number, number] {
    if (!Number.isInteger(address) || address % PAGE_SIZE !== 0 || address < 0)
      throw new ErrnoError('EINVAL', syscall);
    if (!Number.isInteger(lengthBytes) || lengthBytes < 0) throw new ErrnoError('EINVAL', syscall);
    const start = address / PAGE_SIZE;
    return [start, start + Math.ceil(lengthBytes / PAGE_SIZE)];
  }

  private rangeOverlaps(mm: Mm, start: number, end: number): boolean {
    const vma = mm.vmas[mm.indexAtOrAfter(start)];
    return vma !== undefined && vma.startVpn < end;
  }

  private pickTopDown(mm: Mm, pageCount: number): number {
    let end = mm.mmapBaseVpn;
    for (let i = mm.vmas.length - 1; i >= 0; i--) {
      const vma = mm.vmas[i]!;
      if (vma.startVpn >= end) continue;
      if (vma.endVpn <= end - pageCount) break;
      end = vma.startVpn;
    }
    const start = end - pageCount;
    assert(start > 0, 'address space exhausted');
    return start;
  }

  private vmasInRange(mm: Mm, start: number, end: number): Vma[] {
    const out: Vma[] = [];
    for (let i = mm.indexAtOrAfter(start); i < mm.vmas.length; i++) {
      const vma = mm.vmas[i]!;
      if (vma.startVpn >= end) break;
      out.push(vma);
    }
    return out;
  }

  private coveredPages(mm: Mm, start: number, end: number): number {
    let covered = 0;
    for (const vma of this.vmasInRange(mm, start, end)) {
      covered += Math.min(end, vma.endVpn) - Math.max(start, vma.startVpn);
    }
    return covered;
  }

  /** Splits VMAs so that [start, end) is covered by whole VMAs, and returns them. */
  private splitRange(mm: Mm, start: number, end: number): Vma[] {
    const first = mm.findVma(start);
    if (first !== undefined && first.startVpn < start) mm.insertVma(first.splitAt(start));
    const last = mm.findVma(end - 1);
    if (last !== undefined && last.endVpn > end) mm.insertVma(last.splitAt(end));
    return this.vmasInRange(mm, start, end);
  }

  // ---------------------------------------------------------------- for KSM

  /** __ksm_enter() through the attached KSM, if any (a host without KSM ignores the advice). */
  private ksmEnter(mm: Mm): void {
    if (this.ksm === null) return;
    this.ksm.enter(mm);
  }

  /**
   * unmerge_ksm_pages(): an unshare fault on every address of the range that
   * maps a KSM page or a KSM zero page. Items and counters are left for ksmd.
   */
  unmergeKsmPages(mm: Mm, vma: Vma, startVpn: number, endVpn: number): void {
    for (let vpn = startVpn; vpn < endVpn; vpn++) {
      if (mm.users === 0) return;
      this.ksmBreakKsm(mm, vma, vpn);
    }
  }

  /** break_ksm(): unshare the page at vpn if it is a KSM page or a KSM zero page. */
  ksmBreakKsm(mm: Mm, vma: Vma, vpn: number): void {
    const pte = vma.pte[vpn - vma.startVpn]!;
    if (pte === PTE_KSM_ZERO || (pte > 0 && this.frames.flags[pte - 1]! & FRAME_KSM)) {
      this.faultIn(mm, vma, vpn, 'unshare');
    }
  }

  /**
   * write_protect_page(): make the PTE read-only and clean, moving its dirty
   * bit to the page, and drop the anon-exclusive mark. Fails on a pinned page
   * (the only extra references the simulated host has).
   */
  ksmWriteProtectPage(vma: Vma, vpn: number, frame: number): boolean {
    const i = vpn - vma.startVpn;
    if (vma.pte[i] !== frame + 1) return false;
    const pteFlags = vma.pteFlags[i]!;
    // Only a writable, dirty or exclusive PTE is cleared and checked: then
    // page_count() must equal the mappings (+ the scanner's reference), and a
    // pin or a batched reference is one more.
    const checked = pteFlags & (PTE_WRITE | PTE_DIRTY) || this.frames.flags[frame]! & FRAME_ANON_EXCLUSIVE;
    if (checked && (this.frames.pinCount[frame]! > 0 || this.frames.batchRefs[frame]! > 0)) return false;
    if (pteFlags & PTE_DIRTY) this.frames.flags[frame]! |= FRAME_DIRTY;
    vma.pteFlags[i] = this.ksmTrapBit;
    this.frames.flags[frame]! &= ~FRAME_ANON_EXCLUSIVE;
    return true;
  }

  /** replace_page(): map kframe at vpn instead of frame (read-only), dropping frame's mapping. */
  ksmReplacePage(vma: Vma, vpn: number, frame: number, kframe: number): boolean {
    const i = vpn - vma.startVpn;
    if (vma.pte[i] !== frame + 1) return false;
    this.mapFrame(vma, i, kframe, this.ksmTrapBit);
    // folio_add_anon_rmap_pte() mlocks kpage in a locked VMA; folio_remove_rmap_pte() munlocks the old page.
    const locked = (vma.flags & (VM_LOCKED | VM_SPECIAL)) === VM_LOCKED;
    if (locked) this.mlockBatchAdd(kframe);
    if (locked) this.mlockBatchAdd(frame);
    this.putMapping(frame);
    return true;
  }

  /** replace_page() with the zero page as kpage: the special PTE with its dirty marker (is_ksm_zero_pte). */
  ksmMapZeroPage(mm: Mm, vma: Vma, vpn: number, frame: number): boolean {
    const i = vpn - vma.startVpn;
    if (vma.pte[i] !== frame + 1) return false;
    vma.pte[i] = PTE_KSM_ZERO;
    vma.pteFlags[i] = PTE_DIRTY | this.ksmTrapBit;
    mm.ksmZeroPages++;
    if ((vma.flags & (VM_LOCKED | VM_SPECIAL)) === VM_LOCKED) this.mlockBatchAdd(frame);
    this.putMapping(frame);
    return true;
  }

  /**
   * split_huge_page() of the folio containing `frame`, mapped at `vpn` in the
   * mm KSM is working on. Since 6.12 an anonymous split remaps every subpage
   * that holds only zeroes to the shared zero page (remap_page with
   * RMP_USE_SHARED_ZEROPAGE, try_to_map_unused_to_zeropage), in every mm
   * that maps it, unless the folio is mlocked: those pages leave the scan
   * (found by `ksmkit fuzz` against 6.18.44, seed 42).
   */
  ksmSplitFolio(frame: number, vpn: number): void {
    const frames = this.frames;
    if (!frames.isLarge(frame)) return;
    const head = frames.folioHead[frame]!;
    const hugeStart = vpn - (frame - head);
    frames.splitFolio(frame);
    this.vmstat.thp_split_page++;
    // remove_migration_pte() restores the locked mappings first (the mlocked parent's VMA
    // comes before its fork children's in the anon_vma walk) and folio_add_anon_rmap_pte()
    // mlocks each new small folio there, so try_to_map_unused_to_zeropage() leaves alone
    // exactly the subpages still mapped in a VM_LOCKED VMA: one a locked parent has COWed
    // away goes to the zero page in its children (found by `ksmkit fuzz`, seed 2000342).
    const lockedSubpages = new Uint8Array(HPAGE_PMD_NR);
    let lockedMapping = false;
    const mms = this.liveMms();
    for (const mm of mms) {
      for (let k = 0; k < HPAGE_PMD_NR; k++) {
        const vma = mm.findVma(hugeStart + k);
        if (vma === undefined || !(vma.flags & VM_LOCKED)) continue;
        if (vma.pte[hugeStart + k - vma.startVpn] !== head + k + 1) continue;
        lockedSubpages[k] = 1;
        lockedMapping = true;
      }
    }
    for (const mm of mms) {
      for (let k = 0; k < HPAGE_PMD_NR; k++) {
        if (lockedSubpages[k] === 1) continue;
        const vma = mm.findVma(hugeStart + k);
        if (vma === undefined) continue;
        const i = hugeStart + k - vma.startVpn;
        const f = head + k;
        if (vma.pte[i] !== f + 1) continue;
        if (!frames.isZero(f)) continue;
        vma.pte[i] = PTE_ZERO;
        vma.pteFlags[i] = 0;
        this.putMapping(f);
      }
    }
    // remove_migration_pte() calls mlock_drain_local() after restoring each PTE of a
    // VM_LOCKED VMA: ksmd's mlock batch is empty once such a split is done (found by
    // `ksmkit fuzz` against 6.18.44, seed 2000064).
    if (lockedMapping) this.drainLruBatches();
  }

  /**
   * The vusion policy's trap, set by KSM on a page that passed its checksum
   * gate (unchanged for a pass: idle long enough to merge), merged or not. A
   * pinned page is left alone: KSM could not merge it either.
   */
  ksmTrapIdlePage(vma: Vma, vpn: number, frame: number): void {
    const i = vpn - vma.startVpn;
    if (vma.pte[i] === frame + 1 && this.frames.pinCount[frame] === 0) vma.pteFlags[i]! |= this.ksmTrapBit;
  }

  /** The live processes' mms, for whole-host checks. */
  liveMms(): Mm[] {
    return this.liveProcesses().map((p) => p.mm);
  }

  /** The shared zero page's address helper for tests: vpn of an address. */
  static vpnOf(address: number): number {
    return Math.floor(address / PAGE_SIZE);
  }

  static readonly PAGE_SHIFT = PAGE_SHIFT;
}

/** ksm_compatible(): VMAs that may carry VM_MERGEABLE. */
export function vmaFlagsKsmCompatible(flags: number): boolean {
  return (flags & (VM_SHARED | VM_MAYSHARE | VM_SPECIAL | VM_HUGETLB | VM_DROPPABLE | VM_DAX)) === 0;
}
