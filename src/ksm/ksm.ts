/**
 * Kernel Samepage Merging over the simulated host: a line-by-line model of
 * Linux 6.18's mm/ksm.c. Function names follow the kernel's
 * (`scanGetNextRmapItem` is `scan_get_next_rmap_item`, ...), and so does
 * every order that decides a result: the mm slot list with insertion before
 * the cursor, VMA and address order, the sorted rmap list of each mm, the
 * red-black tree shapes (lib/rbtree.c port), and lazy cleanup (unstable items
 * counted until revisited, stale stable nodes dropped only when looked up).
 *
 * Not modelled (no effect on counters in the simulated host): page locks and
 * try-lock failures (BUSY), GUP pins and transient references that make
 * write_protect_page() fail, page migration between NUMA nodes (so the
 * migrate_nodes list stays empty), memory hot-remove, rmap item allocation
 * failure, and swap.
 */
import { assert, fail } from '../host/assert.ts';
import { HPAGE_PMD_NR, HZ, msecsToJiffies } from '../host/constants.ts';
import { ErrnoError } from '../host/errno.ts';
import {
  FRAME_ANON,
  FRAME_CSUM_VALID,
  FRAME_DIRTY,
  FRAME_KSM,
  type FramePool,
  ZERO_FRAME,
} from '../host/frames.ts';
import type { Host, KsmHooks } from '../host/host.ts';
import {
  MMF_VM_MERGE_ANY,
  MMF_VM_MERGEABLE,
  type Mm,
  PTE_KSM_ZERO,
  PTE_NONE,
  PTE_ZERO,
  VM_MERGEABLE,
  type Vma,
} from '../host/mm.ts';
import { type PageChecksum, pageChecksumJs, ZERO_PAGE_CHECKSUM } from '../host/xxhash64.ts';
import { TrustDomains } from '../policy/trust-domains.ts';
import { ADVISOR_CTX_ZERO, type AdvisorCtx, scanTimeAdvisor } from './advisor.ts';
import { type CostModel, DEFAULT_COST_MODEL } from './cost-model.ts';
import { DECLINE_REASONS, type DeclineReason, type KsmEvent, type KsmEventListener } from './events.ts';
import { RB_NIL, RB_STRIDE, rbErase, rbInsertColor, rbLinkNode, rbReplaceNode } from './rbtree.ts';
import {
  ITEM_TREE_FRAME,
  ITEM_TREE_PREFIX,
  RmapItemPool,
  SEQNR_MASK,
  STABLE_FLAG,
  UNSTABLE_FLAG,
} from './rmap-item.ts';
import {
  NODE_CHAIN,
  NODE_DUP,
  NODE_KPFN,
  NODE_REGULAR,
  NODE_TREE_PREFIX,
  STABLE_NODE_CHAIN,
  StableNodePool,
} from './stable-node.ts';

export const KSM_RUN_STOP = 0;
export const KSM_RUN_MERGE = 1;
export const KSM_RUN_UNMERGE = 2;

export type AdvisorMode = 'none' | 'scan-time';

/** The tunables of /sys/kernel/mm/ksm with Linux 6.18's defaults. */
export interface KsmSettings {
  run: number;
  pagesToScan: number;
  sleepMillisecs: number;
  mergeAcrossNodes: number;
  maxPageSharing: number;
  stableNodeChainsPruneMillisecs: number;
  useZeroPages: boolean;
  smartScan: boolean;
  advisorMode: AdvisorMode;
  /** unsigned int. */
  advisorMaxCpu: number;
  /** The three unsigned longs, exact up to 2^64 - 1 as sysfs takes them (a JS number would round). */
  advisorMinPagesToScan: bigint;
  advisorMaxPagesToScan: bigint;
  advisorTargetScanTime: bigint;
}

export function defaultKsmSettings(): KsmSettings {
  return {
    run: KSM_RUN_STOP,
    pagesToScan: 100,
    sleepMillisecs: 20,
    mergeAcrossNodes: 1,
    maxPageSharing: 256,
    stableNodeChainsPruneMillisecs: 2000,
    useZeroPages: false,
    smartScan: true,
    advisorMode: 'none',
    advisorMaxCpu: 70,
    advisorMinPagesToScan: 500n,
    advisorMaxPagesToScan: 30000n,
    advisorTargetScanTime: 200n,
  };
}

/** Mirrors `struct ksm_mm_slot`: an mm registered with ksmd, linked in the scan list. */
export class MmSlot {
  prev: MmSlot = this;
  next: MmSlot = this;
  /** First rmap item of the mm's address-sorted list, or -1. */
  rmapList = -1;
  /** Ours (trust-domains policy): the first tree root of the mm's domain; 0 without domains. */
  treeBase = 0;
  constructor(
    readonly index: number,
    /** null only for the list head sentinel (ksm_mm_head). */
    readonly mm: Mm | null,
  ) {}
}

export interface KsmOptions {
  readonly checksum?: PageChecksum;
  readonly costModel?: CostModel;
}

/** The global counters of /sys/kernel/mm/ksm, as a plain record. */
export interface KsmCounters {
  readonly pages_shared: number;
  readonly pages_sharing: number;
  readonly pages_unshared: number;
  readonly pages_volatile: number;
  readonly pages_scanned: number;
  readonly pages_skipped: number;
  readonly full_scans: number;
  readonly stable_node_chains: number;
  readonly stable_node_dups: number;
  readonly ksm_zero_pages: number;
  readonly general_profit: number;
  readonly rmap_items: number;
}

const NO_PAGE = -1;

/**
 * Bytes counted per mm slot: an estimate of the MmSlot object (header, five
 * fields) with its Map and array entries; the kernel's ksm_mm_slot is 48.
 */
const MM_SLOT_BYTES = 96;

/** What the engine's KSM metadata holds, in bytes of capacity (allocated, not only in use). */
export interface KsmMetadataBytes {
  /** The rmap item pool (rb links of the unstable tree included). */
  readonly rmapItems: number;
  /** The stable node pool (rb links of the stable trees included). */
  readonly stableNodes: number;
  /** The tree roots (one stable and one unstable per NUMA node). */
  readonly treeRoots: number;
  readonly mmSlots: number;
  readonly total: number;
  readonly rmapItemCapacity: number;
  readonly stableNodeCapacity: number;
}

export class Ksm implements KsmHooks {
  readonly settings: KsmSettings = defaultKsmSettings();
  readonly items = new RmapItemPool();
  readonly nodes = new StableNodePool();
  readonly costModel: CostModel;

  // Global statistics (mm/ksm.c's ksm_pages_shared, ...).
  pagesShared = 0;
  pagesSharing = 0;
  pagesUnshared = 0;
  rmapItems = 0;
  stableNodeChains = 0;
  stableNodeDups = 0;
  pagesScanned = 0;
  pagesSkipped = 0;
  ksmZeroPages = 0;

  /** ksmd's CPU time so far, from the cost model (what /proc/<ksmd>/stat would show). */
  ksmdCpuNs = 0;

  private readonly frames: FramePool;
  private readonly checksum: PageChecksum;
  private listener: KsmEventListener | null = null;

  /** Roots of the stable and unstable trees, one per NUMA node (index 0 when merging across nodes). */
  private stableRoots: Int32Array;
  private unstableRoots: Int32Array;

  private readonly mmHead = new MmSlot(-1, null);
  private readonly slotsByMm = new Map<Mm, MmSlot>();
  private readonly slotsByIndex: (MmSlot | undefined)[] = [];
  private readonly freeSlotIndices: number[] = [];

  // The scan cursor (struct ksm_scan).
  private scanSlot: MmSlot;
  private scanVpn = 0;
  /** The rmap list link: -1 for the slot's list head, else the item whose `next` is the link. */
  private scanLink = -1;
  /** Completed full scans (full_scans). */
  seqnr = 0;

  // Outputs of scanGetNextRmapItem (the kernel's `struct page **page` parameter).
  private scanFrame = NO_PAGE;
  // Second outputs of the chain walkers (the kernel's `**_stable_node_dup`, `**_stable_node`).
  private outDup = RB_NIL;
  private outNode = RB_NIL;
  // Output of unstableTreeSearchInsert (`**tree_pagep`).
  private treeFrame = NO_PAGE;
  // Set by stableTreeSearch when the content is there but every copy is full.
  private chainFull = false;
  // The last mergeable VMA an unstable tree walk found, and its mm slot (valid during one walk only).
  private walkVma: Vma | null = null;
  private walkSlotIndex = -1;

  // Policies (src/policy): trees per trust domain, zero pages only, vusion's trap.
  private readonly domains: TrustDomains | null;
  private readonly zeroPagesOnly: boolean;
  private readonly trapIdlePages: boolean;
  /** treeBase of the page being merged: its trees are roots [treeBase, treeBase + nodes). */
  private treeBase = 0;

  // ksmd on the virtual clock.
  private ksmdWakeAtNs = 0;
  private batchCostNs = 0;

  // Scan-time advisor context (struct advisor_ctx) and the pass start time.
  private advisorScanStartNs = 0;
  private advisorCtx: AdvisorCtx = ADVISOR_CTX_ZERO;

  constructor(
    readonly host: Host,
    options: KsmOptions = {},
  ) {
    this.frames = host.frames;
    this.checksum = options.checksum ?? pageChecksumJs;
    this.costModel = options.costModel ?? DEFAULT_COST_MODEL;
    this.stableRoots = new Int32Array(host.frames.numaNodes).fill(RB_NIL);
    this.unstableRoots = new Int32Array(host.frames.numaNodes).fill(RB_NIL);
    this.scanSlot = this.mmHead;
    const policy = host.policy;
    this.domains = policy.name === 'trust-domains' ? new TrustDomains(policy) : null;
    this.zeroPagesOnly = policy.name === 'zero-pages-only';
    this.trapIdlePages = policy.name === 'vusion';
    host.attachKsm(this);
  }

  onEvent(listener: KsmEventListener | null): void {
    this.listener = listener;
  }

  private emit(event: KsmEvent): void {
    this.listener?.(event);
  }

  private decline(item: number, reason: DeclineReason): void {
    this.items.lastDecline[item] = DECLINE_CODE.get(reason)!;
    if (this.listener === null) return;
    const mm = this.slotMm(item);
    this.listener({ type: 'ksm_decline', mmId: mm.id, vpn: this.items.vpn[item]!, reason });
  }

  // ================================================================ counters

  counters(): KsmCounters {
    const volatile = this.rmapItems - this.pagesShared - this.pagesSharing - this.pagesUnshared;
    return {
      pages_shared: this.pagesShared,
      pages_sharing: this.pagesSharing,
      pages_unshared: this.pagesUnshared,
      pages_volatile: Math.max(volatile, 0),
      pages_scanned: this.pagesScanned,
      pages_skipped: this.pagesSkipped,
      full_scans: this.seqnr,
      stable_node_chains: this.stableNodeChains,
      stable_node_dups: this.stableNodeDups,
      ksm_zero_pages: this.ksmZeroPages,
      general_profit: this.generalProfit(),
      rmap_items: this.rmapItems,
    };
  }

  /**
   * The memory KSM's metadata takes in this engine: the kernel's equivalent is
   * its slab caches (rmap_item 64 bytes, stable_node 64, mm_slot 48 each).
   */
  metadataBytes(): KsmMetadataBytes {
    const rmapItems = this.items.allocatedBytes;
    const stableNodes = this.nodes.allocatedBytes;
    const treeRoots = this.stableRoots.byteLength + this.unstableRoots.byteLength;
    const mmSlots = this.slotsByMm.size * MM_SLOT_BYTES;
    return {
      rmapItems,
      stableNodes,
      treeRoots,
      mmSlots,
      total: rmapItems + stableNodes + treeRoots + mmSlots,
      rmapItemCapacity: this.items.capacity,
      stableNodeCapacity: this.nodes.capacity,
    };
  }

  /** general_profit_show(): (pages_sharing + ksm_zero_pages) × PAGE_SIZE − rmap_items × sizeof(rmap_item). */
  generalProfit(): number {
    return (this.pagesSharing + this.ksmZeroPages) * 4096 - this.rmapItems * 64;
  }

  /** ksm_process_profit(). */
  processProfit(mm: Mm): number {
    return (mm.ksmMergingPages + mm.ksmZeroPages) * 4096 - mm.ksmRmapItems * 64;
  }

  /** Registered mms in scan-list order. */
  registeredMms(): Mm[] {
    const out: Mm[] = [];
    for (let s = this.mmHead.next; s !== this.mmHead; s = s.next) out.push(s.mm!);
    return out;
  }

  isRegistered(mm: Mm): boolean {
    return this.slotsByMm.has(mm);
  }

  /** The rmap items of a registered mm, in list order (for checks and tools). */
  rmapItemsOf(mm: Mm): number[] {
    const slot = this.slotsByMm.get(mm);
    const out: number[] = [];
    if (slot === undefined) return out;
    for (let item = slot.rmapList; item >= 0; item = this.items.next[item]!) out.push(item);
    return out;
  }

  // ================================================================ hooks from the MM

  /** __ksm_enter(). */
  enter(mm: Mm): void {
    if (this.slotsByMm.has(mm)) fail(`mm ${mm.id} is already registered`);
    const index = this.freeSlotIndices.pop() ?? this.slotsByIndex.length;
    const slot = new MmSlot(index, mm);
    if (this.domains !== null) slot.treeBase = this.domainTreeBase(mm);
    this.slotsByIndex[index] = slot;
    this.slotsByMm.set(mm, slot);
    const needsWakeup = this.mmHead.next === this.mmHead;
    // Behind the cursor, so the new mm settles for a pass; at the tail while unmerging.
    const before = this.settings.run & KSM_RUN_UNMERGE ? this.mmHead : this.scanSlot;
    linkBefore(slot, before);
    mm.flags |= MMF_VM_MERGEABLE;
    if (needsWakeup) this.wakeKsmd();
    this.emit({ type: 'ksm_enter', mmId: mm.id });
  }

  /** __ksm_exit(). */
  exit(mm: Mm): void {
    const slot = this.slotsByMm.get(mm);
    if (slot !== undefined && slot !== this.scanSlot) {
      if (slot.rmapList < 0) {
        this.freeSlot(slot);
        mm.flags &= ~(MMF_VM_MERGE_ANY | MMF_VM_MERGEABLE);
      } else {
        // list_move() to just after the cursor: ksmd frees the items on its next visit.
        unlink(slot);
        linkBefore(slot, this.scanSlot.next);
      }
    }
    this.emit({ type: 'ksm_exit', mmId: mm.id });
  }

  /** ksm_fork() as fixed in 6.18: the child starts with no merging pages or items of its own. */
  fork(parent: Mm, child: Mm): void {
    if (!(parent.flags & MMF_VM_MERGEABLE)) return;
    child.ksmMergingPages = 0;
    child.ksmRmapItems = 0;
    this.ksmZeroPages += child.ksmZeroPages;
    this.enter(child);
  }

  ksmZeroPageRemoved(_mm: Mm): void {
    this.ksmZeroPages--;
  }

  // ================================================================ ksmd

  private shouldRun(): boolean {
    return (this.settings.run & KSM_RUN_MERGE) !== 0 && this.mmHead.next !== this.mmHead;
  }

  private wakeKsmd(): void {
    this.ksmdWakeAtNs = Math.min(this.ksmdWakeAtNs, this.host.clock.nowNs);
  }

  /**
   * ksm_do_scan(): one batch of up to `pageCount` pages. A batch ends early at
   * the end of a full scan. Returns the pages processed (pages_scanned delta).
   * Runs whatever `run` says: it is the scanner itself, not ksmd's decision to run.
   */
  scanPages(pageCount: number): number {
    const before = this.pagesScanned;
    this.batchCostNs = this.costModel.batchNs;
    let budget = pageCount;
    while (budget-- > 0) {
      const item = this.scanGetNextRmapItem();
      if (item < 0) break;
      this.cmpAndMergePage(this.scanFrame, item);
      this.pagesScanned++;
    }
    this.host.clock.advanceNs(this.batchCostNs);
    this.ksmdCpuNs += this.batchCostNs;
    return this.pagesScanned - before;
  }

  /**
   * Lets ksmd complete `passes` full scans back to back, one unbounded batch
   * each (the kernel backend does the same with a huge pages_to_scan). Does
   * nothing when ksmd would not run (run without the MERGE bit, or no mm
   * registered). Returns the number of full scans completed.
   */
  fullScans(passes: number): number {
    const start = this.seqnr;
    while (this.seqnr - start < passes && this.shouldRun()) this.scanPages(Number.POSITIVE_INFINITY);
    return this.seqnr - start;
  }

  /**
   * Lets `ms` of virtual time pass with ksmd running as ksm_scan_thread() does:
   * a batch of pages_to_scan, then sleep_millisecs (in whole jiffies), while
   * should_run; asleep otherwise until a run write or a registration wakes it.
   */
  advance(ms: number): void {
    assert(ms >= 0, 'advance() takes a non-negative duration');
    const clock = this.host.clock;
    const targetNs = clock.nowNs + ms * 1e6;
    for (;;) {
      if (!this.shouldRun()) {
        clock.advanceTo(targetNs);
        this.ksmdWakeAtNs = Number.POSITIVE_INFINITY;
        return;
      }
      if (this.ksmdWakeAtNs > targetNs) {
        clock.advanceTo(targetNs);
        return;
      }
      clock.advanceTo(this.ksmdWakeAtNs);
      this.scanPages(this.settings.pagesToScan);
      this.ksmdWakeAtNs = wakeAfterSleepNs(clock.nowNs, this.settings.sleepMillisecs);
    }
  }

  // ================================================================ the scan

  private slotMm(item: number): Mm {
    return this.slotsByIndex[this.items.slot[item]!]!.mm!;
  }

  private linkNext(slot: MmSlot, link: number): number {
    return link < 0 ? slot.rmapList : this.items.next[link]!;
  }

  private setLinkNext(slot: MmSlot, link: number, item: number): void {
    if (link < 0) slot.rmapList = item;
    else this.items.next[link] = item;
  }

  /** scan_get_next_rmap_item(): the next page to process, or -1 at the end of a pass (or an empty list). */
  private scanGetNextRmapItem(): number {
    if (this.mmHead.next === this.mmHead) return -1;
    let slot = this.scanSlot;
    if (slot === this.mmHead) {
      if (this.settings.advisorMode === 'scan-time') this.advisorScanStartNs = this.host.clock.nowNs;
      // lru_add_drain_all(): pages held by per-CPU batches get their references back before the pass.
      this.host.drainLruBatches();
      this.unstableRoots.fill(RB_NIL);
      if (this.items.wantsCompaction) this.compactRmapItems();
      slot = this.mmHead.next;
      this.scanSlot = slot;
      if (slot === this.mmHead) return -1;
      this.scanVpn = 0;
      this.scanLink = -1;
      this.emit({ type: 'ksm_start_scan', seqnr: this.seqnr, rmapItems: this.rmapItems });
    }
    const frames = this.frames;
    const frameFlags = frames.flags;
    for (;;) {
      const mm = slot.mm!;
      const exiting = mm.users === 0;
      if (!exiting) {
        const vmas = mm.vmas;
        for (let vi = mm.indexAtOrAfter(this.scanVpn); vi < vmas.length; vi++) {
          const vma = vmas[vi]!;
          if (!(vma.flags & VM_MERGEABLE)) continue;
          if (this.scanVpn < vma.startVpn) this.scanVpn = vma.startVpn;
          if (!vma.anonVma) this.scanVpn = vma.endVpn;
          const pte = vma.pte;
          const n = vma.pageCount;
          while (this.scanVpn < vma.endVpn) {
            // The 6.18 range walk: jump over holes and special PTEs (zero page) to the next normal page.
            let i = this.scanVpn - vma.startVpn;
            while (i < n && pte[i]! <= 0) i++;
            if (i >= n) {
              this.scanVpn = vma.endVpn;
              break;
            }
            this.scanVpn = vma.startVpn + i;
            const frame = pte[i]! - 1;
            if (!(frameFlags[frame]! & FRAME_ANON)) {
              this.scanVpn++;
              continue;
            }
            this.batchCostNs += this.costModel.visitPageNs;
            const item = this.getNextRmapItem(slot, this.scanVpn, vma);
            this.scanLink = item;
            if (this.shouldSkipRmapItem(frame, item)) {
              this.scanVpn++;
              continue;
            }
            this.scanVpn++;
            this.scanFrame = frame;
            return item;
          }
        }
      }
      if (exiting) {
        this.scanVpn = 0;
        this.scanLink = -1;
      }
      // Nuke the items above the last page found: no VM_MERGEABLE page is there any more.
      this.removeTrailingRmapItems(slot, this.scanLink);
      const next = slot.next;
      this.scanSlot = next;
      if (this.scanVpn === 0) {
        // No VM_MERGEABLE VMA at all (or exiting): drop the slot. Since 6.18.3
        // MMF_VM_MERGE_ANY is kept, so a prctl'd mm re-registers on its next mapping.
        this.freeSlot(slot);
        mm.flags &= ~MMF_VM_MERGEABLE;
        if (exiting) mm.flags &= ~MMF_VM_MERGE_ANY;
      }
      slot = next;
      if (slot !== this.mmHead) {
        this.scanVpn = 0;
        this.scanLink = -1;
        continue;
      }
      if (this.settings.advisorMode === 'scan-time') this.scanTimeAdvisor();
      this.emit({ type: 'ksm_stop_scan', seqnr: this.seqnr, rmapItems: this.rmapItems });
      this.seqnr++;
      return -1;
    }
  }

  /** get_next_rmap_item(): reuse the item for vpn, freeing every item passed over, or allocate one. */
  private getNextRmapItem(slot: MmSlot, vpn: number, vma: Vma): number {
    const items = this.items;
    const link = this.scanLink;
    for (;;) {
      const item = this.linkNext(slot, link);
      if (item < 0) break;
      const itemVpn = items.vpn[item]!;
      if (itemVpn === vpn) return item;
      if (itemVpn > vpn) break;
      this.setLinkNext(slot, link, items.next[item]!);
      this.removeRmapItemFromTree(item);
      this.freeRmapItem(item);
    }
    if (items.full) items.reserve(items.live + this.pagesWithoutItem(slot, link, vma, vpn));
    const item = items.alloc(slot.index, vpn);
    this.rmapItems++;
    slot.mm!.ksmRmapItems++;
    items.next[item] = this.linkNext(slot, link);
    this.setLinkNext(slot, link, item);
    return item;
  }

  /**
   * Present pages of `vma` from `vpn` on that have no rmap item yet (the
   * items after `link` are sorted by address): about what the rest of the
   * VMA will allocate, so that the item pool grows once per VMA in a first pass.
   */
  private pagesWithoutItem(slot: MmSlot, link: number, vma: Vma, vpn: number): number {
    const items = this.items;
    const pte = vma.pte;
    let item = this.linkNext(slot, link);
    let count = 0;
    for (let i = vpn - vma.startVpn; i < pte.length; i++) {
      if (pte[i]! <= 0) continue;
      const v = vma.startVpn + i;
      while (item >= 0 && items.vpn[item]! < v) item = items.next[item]!;
      if (item < 0 || items.vpn[item] !== v) count++;
    }
    return count;
  }

  private removeTrailingRmapItems(slot: MmSlot, link: number): void {
    for (;;) {
      const item = this.linkNext(slot, link);
      if (item < 0) return;
      this.setLinkNext(slot, link, this.items.next[item]!);
      this.removeRmapItemFromTree(item);
      this.freeRmapItem(item);
    }
  }

  private freeRmapItem(item: number): void {
    this.rmapItems--;
    this.slotMm(item).ksmRmapItems--;
    this.items.free(item);
  }

  private freeSlot(slot: MmSlot): void {
    unlink(slot);
    this.slotsByMm.delete(slot.mm!);
    this.slotsByIndex[slot.index] = undefined;
    this.freeSlotIndices.push(slot.index);
  }

  /**
   * Renumbers the rmap items in scan order into smaller arrays when many
   * were freed, so the memory held stays within 64 bytes per item. Only at
   * the start of a pass: the unstable tree is empty then (its items' links
   * are stale) and the cursor points at no item.
   */
  private compactRmapItems(): void {
    const items = this.items;
    const renumber = new Int32Array(items.capacity).fill(-1);
    let n = 0;
    for (let s = this.mmHead.next; s !== this.mmHead; s = s.next) {
      for (let item = s.rmapList; item >= 0; item = items.next[item]!) renumber[item] = n++;
    }
    if (!(n === items.live)) fail(`${items.live} rmap items live but ${n} on the mm slots' lists`);
    items.compact(renumber);
    for (let s = this.mmHead.next; s !== this.mmHead; s = s.next) {
      if (s.rmapList >= 0) s.rmapList = renumber[s.rmapList]!;
    }
    const nodes = this.nodes;
    for (let node = 0; node < nodes.capacity; node++) {
      const kind = nodes.kind[node]!;
      if ((kind === NODE_REGULAR || kind === NODE_DUP) && nodes.first[node]! >= 0)
        nodes.first[node] = renumber[nodes.first[node]!]!;
    }
  }

  /** should_skip_rmap_item(): smart scan. */
  private shouldSkipRmapItem(frame: number, item: number): boolean {
    if (!this.settings.smartScan) return false;
    if (this.frames.flags[frame]! & FRAME_KSM) return false;
    const items = this.items;
    const age = items.age[item]!;
    if (age !== 255) items.age[item] = age + 1;
    if (age < 3) return false;
    if (items.remainingSkips[item] === 0) {
      items.remainingSkips[item] = skipAge(age);
      return false;
    }
    this.pagesSkipped++;
    items.remainingSkips[item]!--;
    this.removeRmapItemFromTree(item);
    this.decline(item, 'smart_scan_skipped');
    return true;
  }

  /** calc_checksum(), through the frame's cached value when the contents did not change since. */
  private calcChecksum(frame: number): number {
    const flags = this.frames.flags;
    // The kernel hashes the page on every visit: charge it, even when our cache answers.
    this.batchCostNs += this.costModel.checksumNs;
    if (flags[frame]! & FRAME_CSUM_VALID) return this.frames.checksum[frame]!;
    const sum = this.frames.checksumOf(frame, this.checksum);
    this.frames.checksum[frame] = sum;
    flags[frame]! |= FRAME_CSUM_VALID;
    return sum;
  }

  /** memcmp_pages(), charged by the caller (a stable and an unstable tree step cost differently). */
  private memcmpPages(a: number, b: number): number {
    return this.frames.compare(a, b);
  }

  /**
   * memcmp_pages(a, b) given a's first word and a hint of b's (the tree
   * node's copy). The direction of a tree walk then depends on the node alone,
   * and the loads that find b (page table walk, frame flags) run beside the
   * next step instead of before it, the walks' whole cost being cache misses.
   * The hint is used only when b's first word still equals it; the result is
   * memcmp_pages()'s in every case.
   */
  private memcmpPagesHinted(a: number, prefixA: number, b: number, hintB: number, stepNs: number): number {
    this.batchCostNs += stepNs;
    if (prefixA !== hintB && this.frames.prefixOf(b) === hintB) return prefixA < hintB ? -1 : 1;
    return this.memcmpPages(a, b);
  }

  private isKsmFrame(frame: number): boolean {
    return (this.frames.flags[frame]! & FRAME_KSM) !== 0;
  }

  /** get_kpfn_nid(), offset to the trees of the page's trust domain (as merge_across_nodes=0 keeps trees per node). */
  private kpfnNid(frame: number): number {
    return this.treeBase + (this.settings.mergeAcrossNodes ? 0 : this.frames.nidOf(frame));
  }

  /** The first tree root of mm's trust domain, adding a domain's roots on its first mm. */
  private domainTreeBase(mm: Mm): number {
    const domain = this.domains!.indexOf(mm.owner);
    const roots = this.frames.numaNodes;
    const needed = (domain + 1) * roots;
    // Root indices are stored in 16 bits (rmap items' and stable nodes' nid).
    if (!(needed <= 0x10000)) fail(`trust domain ${domain} needs tree root ${needed - 1}, past 65535`);
    if (this.stableRoots.length < needed) {
      this.stableRoots = grownRoots(this.stableRoots, needed);
      this.unstableRoots = grownRoots(this.unstableRoots, needed);
    }
    return domain * roots;
  }

  /**
   * cmp_and_merge_page() as of 6.9+: a page that is not a KSM page must pass
   * the checksum gate (and the zero-page path) before any tree search, so a
   * volatile page costs one checksum and nothing else.
   */
  private cmpAndMergePage(frame: number, item: number): void {
    const items = this.items;
    let stableNode = RB_NIL;
    let bypass = false;
    if (this.domains !== null) this.treeBase = this.slotsByIndex[items.slot[item]!]!.treeBase;
    if (this.isKsmFrame(frame)) {
      stableNode = this.frames.ksmNode[frame]!;
      // The steady state of a merged mapping: nothing to do, not even a checksum.
      if (items.head[item] === stableNode && items.flags[item]! & STABLE_FLAG) return;
      // A fork child's mapping of a KSM page may go over the sharing limit.
      if (!this.isPageSharingCandidate(stableNode)) bypass = true;
    } else {
      this.removeRmapItemFromTree(item);
      const checksum = this.calcChecksum(frame);
      if (items.oldchecksum[item] !== checksum) {
        items.oldchecksum[item] = checksum;
        this.decline(item, 'checksum_changed');
        return;
      }
      if (this.trapIdlePages) this.trapIdlePage(item, frame);
      if (!this.tryToMergeWithZeroPage(item, frame)) return;
      if (this.zeroPagesOnly && (checksum !== ZERO_PAGE_CHECKSUM || !this.frames.isZero(frame))) {
        this.decline(item, 'policy');
        return;
      }
    }
    this.chainFull = false;
    let kframe = this.stableTreeSearch(frame);
    if (kframe === frame && items.head[item] === stableNode && items.flags[item]! & STABLE_FLAG) return;
    this.removeRmapItemFromTree(item);
    if (kframe !== NO_PAGE) {
      const ok = this.tryToMergeWithKsmPage(item, frame, kframe);
      if (ok) this.stableTreeAppend(item, this.frames.ksmNode[kframe]!, bypass);
      else this.decline(item, 'merge_failed');
      return;
    }
    const treeItem = this.unstableTreeSearchInsert(item, frame);
    if (treeItem === RB_NIL) {
      if (this.chainFull) this.decline(item, 'chain_full');
      return;
    }
    const treeFrame = this.treeFrame;
    // Both subpages of one THP: the split inside the merge fails on the extra reference.
    const split =
      this.frames.isLarge(frame) && this.frames.folioHead[frame] === this.frames.folioHead[treeFrame];
    kframe = split ? NO_PAGE : this.tryToMergeTwoPages(item, frame, treeItem, treeFrame);
    if (kframe !== NO_PAGE) {
      const node = this.stableTreeInsert(kframe);
      this.stableTreeAppend(treeItem, node, false);
      this.stableTreeAppend(item, node, false);
    } else if (split) {
      this.host.ksmSplitFolio(frame, items.vpn[item]!);
      this.decline(item, 'thp_not_yet_split');
    } else {
      this.decline(item, 'merge_failed');
    }
  }

  /**
   * try_to_merge_with_zero_page(): with use_zero_pages, an empty page is
   * replaced by the zero page. Returns false when that settled the page (merged,
   * or its VMA went away), true when the normal path must go on.
   */
  private tryToMergeWithZeroPage(item: number, frame: number): boolean {
    if (!this.settings.useZeroPages || this.items.oldchecksum[item] !== ZERO_PAGE_CHECKSUM) return true;
    const mm = this.slotMm(item);
    const vpn = this.items.vpn[item]!;
    const vma = this.findMergeableVma(mm, vpn);
    if (vma === null) return false;
    if (!this.tryToMergeOnePage(mm, vma, vpn, frame, ZERO_FRAME)) return true;
    this.ksmZeroPages++;
    this.emit({ type: 'ksm_merge_zero_page', pfn: frame, mmId: mm.id, vpn });
    return false;
  }

  /** vusion: the page passed the checksum gate, so it is trapped whether it merges or not. */
  private trapIdlePage(item: number, frame: number): void {
    const vpn = this.items.vpn[item]!;
    const vma = this.findMergeableVma(this.slotMm(item), vpn);
    if (vma !== null) this.host.ksmTrapIdlePage(vma, vpn, frame);
  }

  /** find_mergeable_vma(): the VMA at vpn if it is VM_MERGEABLE with an anon_vma. */
  private findMergeableVma(mm: Mm, vpn: number): Vma | null {
    if (mm.users === 0) return null;
    const vma = mm.findVma(vpn);
    if (vma === undefined || !(vma.flags & VM_MERGEABLE) || !vma.anonVma) return null;
    return vma;
  }

  /**
   * get_mergeable_page(): the anonymous page an unstable tree item stands
   * for, or -1. Given the frame the item had when inserted: when the page
   * table still maps that frame, the frame's flags are read from the hint, so
   * that those loads need not wait for the page table's (each a likely cache
   * miss). The same result in every case.
   */
  private getMergeablePage(item: number, hintFrame: number): number {
    const vpn = this.items.vpn[item]!;
    const slotIndex = this.items.slot[item]!;
    let vma = this.walkVma;
    // find_mergeable_vma() of the walk's last VMA when the address falls in it (same mm, so same answer).
    if (vma === null || slotIndex !== this.walkSlotIndex || vpn < vma.startVpn || vpn >= vma.endVpn) {
      vma = this.findMergeableVma(this.slotsByIndex[slotIndex]!.mm!, vpn);
      if (vma === null) return NO_PAGE;
      this.walkVma = vma;
      this.walkSlotIndex = slotIndex;
    }
    const pte = vma.pte[vpn - vma.startVpn]!;
    if (pte === hintFrame + 1 && hintFrame >= 0)
      return this.frames.flags[hintFrame]! & FRAME_ANON ? hintFrame : NO_PAGE;
    if (pte <= 0) return NO_PAGE;
    const frame = pte - 1;
    return this.frames.flags[frame]! & FRAME_ANON ? frame : NO_PAGE;
  }

  // ================================================================ merge primitives

  /**
   * try_to_merge_one_page(): kframe -1 turns `frame` itself into a KSM page;
   * ZERO_FRAME maps the zero page (use_zero_pages); else maps kframe instead.
   */
  private tryToMergeOnePage(mm: Mm, vma: Vma, vpn: number, frame: number, kframe: number): boolean {
    if (frame === kframe) return true;
    const frames = this.frames;
    if (!(frames.flags[frame]! & FRAME_ANON)) return false;
    if (frames.isLarge(frame)) this.host.ksmSplitFolio(frame, vpn);
    if (!this.host.ksmWriteProtectPage(vma, vpn, frame)) return false;
    this.batchCostNs += this.costModel.mergeNs;
    if (kframe === NO_PAGE) {
      frames.flags[frame]! |= FRAME_KSM | FRAME_DIRTY;
      frames.ksmNode[frame] = -1;
      return true;
    }
    if (kframe === ZERO_FRAME) {
      if (!frames.isZero(frame)) return false;
      return this.host.ksmMapZeroPage(mm, vma, vpn, frame);
    }
    if (!frames.equal(frame, kframe)) return false;
    return this.host.ksmReplacePage(vma, vpn, frame, kframe);
  }

  /** try_to_merge_with_ksm_page(). */
  private tryToMergeWithKsmPage(item: number, frame: number, kframe: number): boolean {
    const mm = this.slotMm(item);
    const vpn = this.items.vpn[item]!;
    const vma = this.findMergeableVma(mm, vpn);
    if (vma === null) return false;
    const ok = this.tryToMergeOnePage(mm, vma, vpn, frame, kframe);
    if (this.listener !== null) {
      if (kframe === NO_PAGE) this.emit({ type: 'ksm_merge_one_page', pfn: frame, mmId: mm.id, vpn, ok });
      else this.emit({ type: 'ksm_merge_with_ksm_page', kpfn: kframe, pfn: frame, mmId: mm.id, vpn, ok });
    }
    if (!ok) return false;
    this.removeRmapItemFromTree(item);
    return true;
  }

  /** try_to_merge_two_pages(): the scanned page becomes the KSM page; the tree page's mapping moves to it. */
  private tryToMergeTwoPages(item: number, frame: number, treeItem: number, treeFrame: number): number {
    if (!this.tryToMergeWithKsmPage(item, frame, NO_PAGE)) return NO_PAGE;
    if (!this.tryToMergeWithKsmPage(treeItem, treeFrame, frame)) {
      this.breakCow(item);
      return NO_PAGE;
    }
    return frame;
  }

  /** break_cow(). */
  private breakCow(item: number): void {
    const mm = this.slotMm(item);
    const vpn = this.items.vpn[item]!;
    const vma = this.findMergeableVma(mm, vpn);
    if (vma !== null) this.host.ksmBreakKsm(mm, vma, vpn);
  }

  // ================================================================ stable tree

  /** is_page_sharing_candidate() with the kernel's offset. */
  private isPageSharingCandidate(node: number, offset = 0): boolean {
    const len = this.nodes.rmapHlistLen[node]!;
    return len !== 0 && len + offset < this.settings.maxPageSharing;
  }

  /**
   * ksm_get_folio(): the KSM page of a node, or -1 after removing the node
   * when its page is gone (stale: the frame no longer carries this node's tag).
   */
  private ksmGetFolio(node: number): number {
    const kpfn = this.nodes.tree[node * RB_STRIDE + NODE_KPFN]!;
    if (kpfn >= 0 && this.frames.flags[kpfn]! & FRAME_KSM && this.frames.ksmNode[kpfn] === node) return kpfn;
    this.removeNodeFromStableTree(node);
    return NO_PAGE;
  }

  /** remove_node_from_stable_tree(): detach every item (they become volatile) and free the node. */
  private removeNodeFromStableTree(node: number): void {
    const items = this.items;
    const nodes = this.nodes;
    for (let item = nodes.first[node]!; item >= 0; item = items.hnext[item]!) {
      if (items.hnext[item]! >= 0) {
        this.pagesSharing--;
        if (this.listener !== null) {
          this.emit({
            type: 'ksm_remove_rmap_item',
            pfn: nodes.tree[node * RB_STRIDE + NODE_KPFN]!,
            mmId: this.slotMm(item).id,
            vpn: items.vpn[item]!,
          });
        }
      } else this.pagesShared--;
      this.slotMm(item).ksmMergingPages--;
      nodes.rmapHlistLen[node]!--;
      items.flags[item] = 0;
      items.head[item] = -1;
    }
    this.emit({ type: 'ksm_remove_ksm_page', pfn: nodes.tree[node * RB_STRIDE + NODE_KPFN]! });
    this.stableNodeDupDel(node);
    nodes.free(node);
  }

  /** stable_node_dup_del(): out of its chain (a dup) or out of the tree (a regular node). */
  private stableNodeDupDel(node: number): void {
    const nodes = this.nodes;
    if (nodes.kind[node] === NODE_DUP) {
      const prev = nodes.dupPrev[node]!;
      const next = nodes.dupNext[node]!;
      if (prev >= 0) nodes.dupNext[prev] = next;
      else nodes.first[nodes.chain[node]!] = next;
      if (next >= 0) nodes.dupPrev[next] = prev;
      this.stableNodeDups--;
    } else {
      if (!(nodes.kind[node] === NODE_REGULAR)) fail(`stable node ${node} is not regular`);
      rbErase(nodes, this.stableRoots, nodes.nid[node]!, node);
    }
  }

  /** stable_node_chain_add_dup(): at the head of the chain's list. */
  private stableNodeChainAddDup(dup: number, chain: number): void {
    const nodes = this.nodes;
    nodes.kind[dup] = NODE_DUP;
    nodes.chain[dup] = chain;
    const first = nodes.first[chain]!;
    nodes.dupPrev[dup] = -1;
    nodes.dupNext[dup] = first;
    if (first >= 0) nodes.dupPrev[first] = dup;
    nodes.first[chain] = dup;
    this.stableNodeDups++;
  }

  private moveDupToHead(dup: number, chain: number): void {
    const nodes = this.nodes;
    const prev = nodes.dupPrev[dup]!;
    const next = nodes.dupNext[dup]!;
    if (prev >= 0) nodes.dupNext[prev] = next;
    else nodes.first[chain] = next;
    if (next >= 0) nodes.dupPrev[next] = prev;
    this.stableNodeDups--;
    this.stableNodeChainAddDup(dup, chain);
  }

  /** alloc_stable_node_chain(): a chain takes `dup`'s place in the tree, with `dup` as its first dup. */
  private allocStableNodeChain(dup: number, nid: number): number {
    const nodes = this.nodes;
    const chain = nodes.alloc(NODE_CHAIN);
    nodes.chainPruneTime[chain] = this.host.clock.jiffies;
    nodes.nid[chain] = nid;
    nodes.tree[chain * RB_STRIDE + NODE_TREE_PREFIX] = nodes.tree[dup * RB_STRIDE + NODE_TREE_PREFIX]!;
    this.stableNodeChains++;
    rbReplaceNode(nodes, this.stableRoots, nid, dup, chain);
    this.stableNodeChainAddDup(dup, chain);
    return chain;
  }

  /** free_stable_node_chain(). */
  private freeStableNodeChain(chain: number, nid: number): void {
    rbErase(this.nodes, this.stableRoots, nid, chain);
    this.nodes.free(chain);
    this.stableNodeChains--;
  }

  /**
   * stable_node_dup() (6.9+): walk the chain's dups, dropping stale ones, and
   * keep the best: the first valid dup, replaced by a later sharing candidate
   * when the best so far is not one or has fewer items. Without pruning the
   * walk stops at the first candidate. A chain left with a single dup collapses
   * into a regular node; a chain left with none is freed (then -1 is returned
   * and the caller restarts its walk). Sets outDup and outNode (the chain, or
   * the dup that took its place).
   */
  private stableNodeDup(chain: number, nid: number, prune: boolean): number {
    const nodes = this.nodes;
    const jiffies = this.host.clock.jiffies;
    if (
      !prune ||
      jiffies < nodes.chainPruneTime[chain]! + msecsToJiffies(this.settings.stableNodeChainsPruneMillisecs)
    ) {
      prune = false;
    } else {
      nodes.chainPruneTime[chain] = jiffies;
    }
    let found = RB_NIL;
    let foundLen = 0;
    let treeFrame = NO_PAGE;
    for (let dup = nodes.first[chain]!; dup >= 0; ) {
      const next = nodes.dupNext[dup]!;
      const frame = this.ksmGetFolio(dup);
      if (frame !== NO_PAGE) {
        const better =
          found === RB_NIL ||
          (this.isPageSharingCandidate(dup) &&
            (!this.isPageSharingCandidate(found) || nodes.rmapHlistLen[dup]! > foundLen));
        if (better) {
          found = dup;
          foundLen = nodes.rmapHlistLen[dup]!;
          treeFrame = frame;
          if (!prune && this.isPageSharingCandidate(found)) break;
        }
      }
      dup = next;
    }
    this.outNode = chain;
    this.outDup = found;
    if (found === RB_NIL) {
      this.freeStableNodeChain(chain, nid);
      return NO_PAGE;
    }
    if (nodes.first[chain] === found && nodes.dupNext[found] === -1) {
      // The only dup left: it takes the chain's place as a regular node.
      rbReplaceNode(nodes, this.stableRoots, nid, chain, found);
      nodes.kind[found] = NODE_REGULAR;
      nodes.chain[found] = -1;
      nodes.dupNext[found] = -1;
      nodes.dupPrev[found] = -1;
      nodes.nid[found] = nid;
      nodes.free(chain);
      this.stableNodeChains--;
      this.stableNodeDups--;
      this.outNode = found;
    } else if (nodes.first[chain] !== found && this.isPageSharingCandidate(found, 1)) {
      this.moveDupToHead(found, chain);
    }
    return treeFrame;
  }

  /**
   * __stable_node_chain(): chain_prune() when prune, chain() otherwise. A page
   * to compare against with outDup/outNode set, or -1 when the walk must restart.
   */
  private stableNodeChainLookup(node: number, nid: number, prune: boolean): number {
    if (this.nodes.kind[node] !== NODE_CHAIN) {
      this.outNode = node;
      this.outDup = node;
      return this.ksmGetFolio(node);
    }
    return this.stableNodeDup(node, nid, prune);
  }

  /** stable_tree_search(): a KSM page with the same content to merge with, or -1. */
  private stableTreeSearch(frame: number): number {
    if (this.isKsmFrame(frame) && this.frames.ksmNode[frame]! >= 0) return frame; // KSM page forked
    const nid = this.kpfnNid(frame);
    const nodes = this.nodes;
    const prefix = this.frames.prefixOf(frame);
    again: for (;;) {
      let node = this.stableRoots[nid]!;
      while (node !== RB_NIL) {
        const hint = nodes.tree[node * RB_STRIDE + NODE_TREE_PREFIX]! >>> 0;
        const treeFrame = this.stableNodeChainLookup(node, nid, true);
        if (treeFrame === NO_PAGE) continue again;
        const stableNode = this.outNode;
        const dup = this.outDup;
        const ret = this.memcmpPagesHinted(frame, prefix, treeFrame, hint, this.costModel.stableCompareNs);
        if (ret < 0) node = nodes.tree[stableNode * RB_STRIDE]!;
        else if (ret > 0) node = nodes.tree[stableNode * RB_STRIDE + 1]!;
        else {
          // Every copy is full (or has no mapper left): wait for a twin in the unstable tree.
          if (!this.isPageSharingCandidate(dup)) {
            this.chainFull = true;
            return NO_PAGE;
          }
          const kframe = this.ksmGetFolio(dup);
          if (kframe === NO_PAGE) continue again;
          return kframe;
        }
      }
      return NO_PAGE;
    }
  }

  /** stable_tree_insert(): a node for a new KSM page; a dup in a (new) chain when the content is there already. */
  private stableTreeInsert(kframe: number): number {
    const nid = this.kpfnNid(kframe);
    const nodes = this.nodes;
    const prefix = this.frames.prefixOf(kframe);
    let parent = RB_NIL;
    let goLeft = false;
    let equalNode = RB_NIL;
    again: for (;;) {
      parent = RB_NIL;
      equalNode = RB_NIL;
      let node = this.stableRoots[nid]!;
      while (node !== RB_NIL) {
        const hint = nodes.tree[node * RB_STRIDE + NODE_TREE_PREFIX]! >>> 0;
        const treeFrame = this.stableNodeChainLookup(node, nid, false);
        if (treeFrame === NO_PAGE) continue again;
        // chain() may have collapsed the chain: outNode holds the node now at this position.
        node = this.outNode;
        const ret = this.memcmpPagesHinted(kframe, prefix, treeFrame, hint, this.costModel.stableCompareNs);
        parent = node;
        if (ret < 0) {
          goLeft = true;
          node = nodes.tree[node * RB_STRIDE]!;
        } else if (ret > 0) {
          goLeft = false;
          node = nodes.tree[node * RB_STRIDE + 1]!;
        } else {
          equalNode = node;
          break;
        }
      }
      break;
    }
    const dup = nodes.alloc(NODE_REGULAR);
    nodes.tree[dup * RB_STRIDE + NODE_KPFN] = kframe;
    nodes.nid[dup] = nid;
    nodes.tree[dup * RB_STRIDE + NODE_TREE_PREFIX] = prefix;
    this.frames.ksmNode[kframe] = dup;
    if (equalNode === RB_NIL) {
      rbLinkNode(nodes, dup, parent, goLeft);
      if (parent === RB_NIL) this.stableRoots[nid] = dup;
      rbInsertColor(nodes, this.stableRoots, nid, dup);
    } else {
      const chain =
        nodes.kind[equalNode] === NODE_CHAIN ? equalNode : this.allocStableNodeChain(equalNode, nid);
      this.stableNodeChainAddDup(dup, chain);
    }
    return dup;
  }

  /** stable_tree_append(): link the item at the head of the node's list. */
  private stableTreeAppend(item: number, node: number, _bypass: boolean): void {
    const items = this.items;
    const nodes = this.nodes;
    if (!(nodes.rmapHlistLen[node]! >= 0)) fail(`append to chain ${node}`);
    nodes.rmapHlistLen[node]!++;
    items.head[item] = node;
    items.flags[item] = STABLE_FLAG;
    const first = nodes.first[node]!;
    items.hprev[item] = -1;
    items.hnext[item] = first;
    if (first >= 0) items.hprev[first] = item;
    nodes.first[node] = item;
    if (first >= 0) this.pagesSharing++;
    else this.pagesShared++;
    this.slotMm(item).ksmMergingPages++;
  }

  // ================================================================ unstable tree

  /** unstable_tree_search_insert(): an equal tree item (treeFrame set), or RB_NIL after inserting (or not) the item. */
  private unstableTreeSearchInsert(item: number, frame: number): number {
    const items = this.items;
    // Nothing allocates items during the walk: the record array stays the same.
    const tree = items.tree;
    const nid = this.kpfnNid(frame);
    const prefix = this.frames.prefixOf(frame);
    let node = this.unstableRoots[nid]!;
    let parent = RB_NIL;
    let goLeft = false;
    // Nothing changes the address spaces during the walk: the VMA found for one node serves the next ones.
    this.walkVma = null;
    while (node !== RB_NIL) {
      const at = node * RB_STRIDE;
      const hint = tree[at + ITEM_TREE_PREFIX]! >>> 0;
      const treeFrame = this.getMergeablePage(node, tree[at + ITEM_TREE_FRAME]!);
      if (treeFrame === NO_PAGE) {
        this.decline(item, 'unstable_tree_page_gone');
        return RB_NIL;
      }
      if (treeFrame === frame) {
        this.decline(item, 'same_page_after_fork');
        return RB_NIL;
      }
      const ret = this.memcmpPagesHinted(frame, prefix, treeFrame, hint, this.costModel.compareNs);
      parent = node;
      if (ret < 0) {
        goLeft = true;
        node = tree[at]!;
      } else if (ret > 0) {
        goLeft = false;
        node = tree[at + 1]!;
      } else if (!this.settings.mergeAcrossNodes && this.kpfnNid(treeFrame) !== nid) {
        this.decline(item, 'other_numa_node');
        return RB_NIL;
      } else {
        this.treeFrame = treeFrame;
        return node;
      }
    }
    items.flags[item] = UNSTABLE_FLAG | (this.seqnr & SEQNR_MASK);
    items.nid[item] = nid;
    tree[item * RB_STRIDE + ITEM_TREE_PREFIX] = prefix;
    tree[item * RB_STRIDE + ITEM_TREE_FRAME] = frame;
    rbLinkNode(items, item, parent, goLeft);
    if (parent === RB_NIL) this.unstableRoots[nid] = item;
    rbInsertColor(items, this.unstableRoots, nid, item);
    this.pagesUnshared++;
    this.decline(item, 'no_twin_yet');
    return RB_NIL;
  }

  /** remove_rmap_item_from_tree(). */
  private removeRmapItemFromTree(item: number): void {
    const items = this.items;
    const flags = items.flags[item]!;
    if (flags & STABLE_FLAG) {
      const node = items.head[item]!;
      // A stale node is removed with all its items by the lookup itself.
      if (this.ksmGetFolio(node) === NO_PAGE) return;
      const prev = items.hprev[item]!;
      const next = items.hnext[item]!;
      if (prev >= 0) items.hnext[prev] = next;
      else this.nodes.first[node] = next;
      if (next >= 0) items.hprev[next] = prev;
      if (this.nodes.first[node]! >= 0) this.pagesSharing--;
      else this.pagesShared--;
      this.slotMm(item).ksmMergingPages--;
      if (!(this.nodes.rmapHlistLen[node]! > 0)) fail(`stable node ${node} item count underflow`);
      this.nodes.rmapHlistLen[node]!--;
      items.head[item] = -1;
      items.flags[item] = 0;
    } else if (flags & UNSTABLE_FLAG) {
      // Items inserted in an earlier pass sit in a tree that was reset already.
      const age = (this.seqnr - (flags & SEQNR_MASK)) & 0xff;
      if (!(age <= 1)) fail(`unstable rmap item ${item} is ${age} passes old`);
      if (age === 0) rbErase(items, this.unstableRoots, items.nid[item]!, item);
      this.pagesUnshared--;
      items.flags[item] = 0;
    }
  }

  // ================================================================ unmerge everything (run = 2)

  /** unmerge_and_remove_all_rmap_items(). */
  private unmergeAndRemoveAllRmapItems(): void {
    this.scanSlot = this.mmHead.next;
    while (this.scanSlot !== this.mmHead) {
      const slot = this.scanSlot;
      const mm = slot.mm!;
      if (mm.users !== 0) {
        for (const vma of mm.vmas) {
          if (!(vma.flags & VM_MERGEABLE) || !vma.anonVma) continue;
          this.host.unmergeKsmPages(mm, vma, vma.startVpn, vma.endVpn);
        }
      }
      this.removeTrailingRmapItems(slot, -1);
      this.scanSlot = slot.next;
      if (mm.users === 0) {
        this.freeSlot(slot);
        mm.flags &= ~(MMF_VM_MERGE_ANY | MMF_VM_MERGEABLE);
      }
    }
    this.removeAllStableNodes();
    this.seqnr = 0;
  }

  /** remove_stable_node(): false (EBUSY) while the KSM page is still mapped. */
  private removeStableNode(node: number): boolean {
    const frame = this.ksmGetFolio(node);
    if (frame === NO_PAGE) return true;
    if (this.frames.mapcount[frame]! > 0) return false;
    this.frames.ksmNode[frame] = -1;
    this.removeNodeFromStableTree(node);
    return true;
  }

  /** remove_all_stable_nodes(): false if some KSM page is still mapped (EBUSY for the callers). */
  private removeAllStableNodes(): boolean {
    let ok = true;
    const nodes = this.nodes;
    for (let nid = 0; nid < this.stableRoots.length; nid++) {
      for (;;) {
        const node = this.stableRoots[nid]!;
        if (node === RB_NIL) break;
        if (nodes.kind[node] === NODE_CHAIN) {
          // remove_stable_node_chain(): every dup, then the chain itself.
          let busy = false;
          for (let dup = nodes.first[node]!; dup >= 0; ) {
            const next = nodes.dupNext[dup]!;
            if (!this.removeStableNode(dup)) busy = true;
            dup = next;
          }
          if (busy) {
            ok = false;
            break;
          }
          assert(nodes.first[node] === -1, 'chain still has dups');
          this.freeStableNodeChain(node, nid);
        } else if (!this.removeStableNode(node)) {
          ok = false;
          break;
        }
      }
    }
    return ok;
  }

  // ================================================================ sysfs stores (values already parsed)

  /** run_store(). */
  setRun(value: number): void {
    if (!Number.isInteger(value) || value < 0 || value > KSM_RUN_UNMERGE)
      throw new ErrnoError('EINVAL', 'write');
    if (this.settings.run !== value) {
      this.settings.run = value;
      if (value & KSM_RUN_UNMERGE) this.unmergeAndRemoveAllRmapItems();
    }
    if (value & KSM_RUN_MERGE) this.wakeKsmd();
  }

  setPagesToScan(value: number): void {
    if (this.settings.advisorMode === 'scan-time') throw new ErrnoError('EINVAL', 'write');
    this.settings.pagesToScan = value;
  }

  setSleepMillisecs(value: number): void {
    if (value !== this.settings.sleepMillisecs) this.wakeKsmd();
    this.settings.sleepMillisecs = value;
  }

  /** merge_across_nodes_store(). */
  setMergeAcrossNodes(value: number): void {
    if (value > 1) throw new ErrnoError('EINVAL', 'write');
    if (this.settings.mergeAcrossNodes === value) return;
    if (this.pagesShared !== 0 || !this.removeAllStableNodes()) throw new ErrnoError('EBUSY', 'write');
    this.settings.mergeAcrossNodes = value;
  }

  /** max_page_sharing_store(). */
  setMaxPageSharing(value: number): void {
    if (value < 2) throw new ErrnoError('EINVAL', 'write');
    if (this.settings.maxPageSharing === value) return;
    if (this.pagesShared !== 0 || !this.removeAllStableNodes()) throw new ErrnoError('EBUSY', 'write');
    this.settings.maxPageSharing = value;
  }

  /** advisor_mode_store() → set_advisor_defaults() on a change. */
  setAdvisorMode(mode: AdvisorMode): void {
    if (this.settings.advisorMode === mode) return;
    this.settings.advisorMode = mode;
    if (mode === 'none') {
      this.settings.pagesToScan = 100;
    } else {
      this.advisorCtx = ADVISOR_CTX_ZERO;
      this.advisorScanStartNs = 0;
      // An unsigned long stored into the unsigned int ksm_thread_pages_to_scan.
      this.settings.pagesToScan = Number(BigInt.asUintN(32, this.settings.advisorMinPagesToScan));
    }
  }

  // ================================================================ scan-time advisor

  /** scan_time_advisor() at a pass end, on the virtual clock and the cost model's ksmd CPU time. */
  private scanTimeAdvisor(): void {
    const s = this.settings;
    const r = scanTimeAdvisor(
      this.advisorCtx,
      {
        maxCpu: s.advisorMaxCpu,
        maxPagesToScan: s.advisorMaxPagesToScan,
        targetScanTimeS: s.advisorTargetScanTime,
      },
      {
        // ktime_ms_delta(): the pass's length in ns, truncated to ms.
        passMs: Math.floor((this.host.clock.nowNs - this.advisorScanStartNs) / 1e6),
        cpuTimeNs: BigInt(Math.round(this.ksmdCpuNs)),
        pagesToScan: s.pagesToScan,
      },
    );
    this.advisorCtx = r.ctx;
    s.pagesToScan = r.pagesToScan;
    this.emit({
      type: 'ksm_advisor',
      scanTimeS: r.scanTimeS,
      pagesToScan: s.pagesToScan,
      cpuPercent: r.cpuPercent,
    });
  }

  // ================================================================ introspection

  /** "Why is this page not merged?": the page's state as ksmd last left it. */
  explainPage(mm: Mm, vpn: number): PageState {
    const vma = mm.findVma(vpn);
    if (vma === undefined) return { state: 'not_mapped' };
    return this.explainPages(mm, vma, vpn, vpn + 1)[0]!;
  }

  /**
   * `explainPage` for the pages [fromVpn, toVpn) of one VMA of `mm`, walking
   * the mm's rmap list once (a page at a time would walk it once per page).
   */
  explainPages(mm: Mm, vma: Vma, fromVpn: number, toVpn: number): PageState[] {
    assert(
      fromVpn >= vma.startVpn && toVpn <= vma.endVpn && fromVpn <= toVpn,
      'explainPages: range outside the VMA',
    );
    const out: PageState[] = [];
    const slot = this.slotsByMm.get(mm);
    let item = slot === undefined ? -1 : slot.rmapList;
    for (let vpn = fromVpn; vpn < toVpn; vpn++) {
      const pte = vma.pte[vpn - vma.startVpn]!;
      if (pte === PTE_KSM_ZERO) out.push({ state: 'ksm_zero_page' });
      else if (!(vma.flags & VM_MERGEABLE)) out.push({ state: 'not_mergeable', why: 'vma_not_mergeable' });
      else if (pte === PTE_NONE) out.push({ state: 'not_mergeable', why: 'no_anonymous_page' });
      else if (pte === PTE_ZERO) out.push({ state: 'not_mergeable', why: 'zero_page' });
      else if (slot === undefined) out.push({ state: 'not_mergeable', why: 'not_registered' });
      else {
        while (item >= 0 && this.items.vpn[item]! < vpn) item = this.items.next[item]!;
        out.push(
          item < 0 || this.items.vpn[item] !== vpn ? { state: 'not_yet_scanned' } : this.itemState(item),
        );
      }
    }
    return out;
  }

  private itemState(item: number): PageState {
    const flags = this.items.flags[item]!;
    const code = this.items.lastDecline[item]!;
    const reason = code === 0 ? null : DECLINE_REASONS[code - 1]!;
    if (flags & STABLE_FLAG) {
      const node = this.items.head[item]!;
      return {
        state: 'merged',
        kpfn: this.nodes.tree[node * RB_STRIDE + NODE_KPFN]!,
        mappings: this.nodes.rmapHlistLen[node]!,
      };
    }
    if (flags & UNSTABLE_FLAG) return { state: 'unshared', reason };
    return { state: 'volatile', reason };
  }

  /**
   * Whether smart scan's skipping has reached its fixed cycle: every rmap item
   * that can be skipped (its page not a KSM page) is old enough for the longest
   * skip, so from now on each is visited once every SMART_SCAN_CYCLE_PASSES
   * passes and the work per pass, averaged over that many, stops changing.
   * True when smart_scan is off. O(rmap items): for once-per-pass callers.
   */
  smartScanSettled(): boolean {
    if (!this.settings.smartScan) return true;
    const items = this.items;
    for (let s = this.mmHead.next; s !== this.mmHead; s = s.next) {
      for (let item = s.rmapList; item >= 0; item = items.next[item]!) {
        if (items.flags[item]! & STABLE_FLAG) continue;
        if (skipAge(items.age[item]!) < MAX_SMART_SCAN_SKIPS) return false;
      }
    }
    return true;
  }

  /** What the scan cursor points at (for tests that pin the kernel's slot order). */
  cursor(): { readonly mm: Mm | null; readonly vpn: number } {
    return { mm: this.scanSlot.mm, vpn: this.scanVpn };
  }

  /** Stable tree roots (for whole-host checks). */
  stableTreeRoots(): Int32Array {
    return this.stableRoots;
  }

  /** Every live stable node that is a regular node or a dup (not a chain), in tree order. */
  ksmPageNodes(): number[] {
    const out: number[] = [];
    const nodes = this.nodes;
    const walk = (node: number): void => {
      if (node === RB_NIL) return;
      walk(nodes.tree[node * RB_STRIDE]!);
      if (nodes.kind[node] === NODE_CHAIN) {
        for (let dup = nodes.first[node]!; dup >= 0; dup = nodes.dupNext[dup]!) out.push(dup);
      } else out.push(node);
      walk(nodes.tree[node * RB_STRIDE + 1]!);
    };
    for (const root of this.stableRoots) walk(root);
    return out;
  }

  /** The HPAGE_PMD_NR constant re-exported for tools that reason about THP splits. */
  static readonly HPAGE_PMD_NR = HPAGE_PMD_NR;
  static readonly STABLE_NODE_CHAIN = STABLE_NODE_CHAIN;
}

const DECLINE_CODE = new Map<DeclineReason, number>(DECLINE_REASONS.map((r, i) => [r, i + 1]));

/** Why a page is, or is not, merged: what `explainPage` answers. */
export type PageState =
  | { readonly state: 'not_mapped' }
  | {
      readonly state: 'not_mergeable';
      readonly why: 'vma_not_mergeable' | 'no_anonymous_page' | 'zero_page' | 'not_registered';
    }
  | { readonly state: 'ksm_zero_page' }
  | { readonly state: 'merged'; readonly kpfn: number; readonly mappings: number }
  | { readonly state: 'not_yet_scanned' }
  | { readonly state: 'unshared'; readonly reason: DeclineReason | null }
  | { readonly state: 'volatile'; readonly reason: DeclineReason | null };

/**
 * When ksmd wakes from wait_event_interruptible_timeout(msecs_to_jiffies(ms)):
 * the timer fires on the tick after the timeout expires, so a 20 ms sleep at
 * HZ 250 is a 24 ms period (measured on 6.18.44: a 1 ms sleep gives 8 ms batches).
 */
export function wakeAfterSleepNs(nowNs: number, sleepMs: number): number {
  const jiffies = msecsToJiffies(sleepMs);
  if (jiffies === 0) return nowNs;
  const tickNs = 1e9 / HZ;
  return (Math.floor(nowNs / tickNs) + jiffies + 1) * tickNs;
}

/** skip_age(). */
function skipAge(age: number): number {
  if (age <= 3) return 1;
  if (age <= 5) return 2;
  if (age <= 8) return 4;
  return MAX_SMART_SCAN_SKIPS;
}

const MAX_SMART_SCAN_SKIPS = 8;
/** One visit and the longest run of skips: the period of a settled smart scan, in passes. */
export const SMART_SCAN_CYCLE_PASSES = MAX_SMART_SCAN_SKIPS + 1;

/** A longer copy of a roots array, the new roots empty. */
function grownRoots(roots: Int32Array, length: number): Int32Array {
  const grown = new Int32Array(length).fill(RB_NIL);
  grown.set(roots);
  return grown;
}

function unlink(slot: MmSlot): void {
  slot.prev.next = slot.next;
  slot.next.prev = slot.prev;
  slot.prev = slot;
  slot.next = slot;
}

/** list_add_tail(slot, before): insert just before `before`. */
function linkBefore(slot: MmSlot, before: MmSlot): void {
  slot.prev = before.prev;
  slot.next = before;
  before.prev.next = slot;
  before.prev = slot;
}
