/**
 * Mirrors `struct ksm_rmap_item` (mm/ksm.c): one per (mm, virtual page) that
 * ksmd has looked at, as struct-of-arrays indexed by item number.
 *
 * Layout, per item (the kernel's is 64 bytes on x86_64; ours must not exceed it):
 *
 * | field          | type         | bytes | kernel field / meaning                                          |
 * |----------------|--------------|-------|-----------------------------------------------------------------|
 * | next           | Int32Array   | 4     | rmap_list: next item of the same mm, sorted by address          |
 * | slot           | Int32Array   | 4     | mm: the owning mm slot's index                                  |
 * | vpn            | Float64Array | 8     | address >> PAGE_SHIFT (the low-bit flags live in `flags`)       |
 * | flags          | Uint16Array  | 2     | address low bits: SEQNR_MASK, UNSTABLE_FLAG, STABLE_FLAG         |
 * | oldchecksum    | Uint32Array  | 4     | oldchecksum                                                     |
 * | age            | Uint8Array   | 1     | age (smart scan)                                                |
 * | remainingSkips | Uint8Array   | 1     | remaining_skips (smart scan)                                    |
 * | nid            | Uint16Array  | 2     | nid: unstable tree the item is linked in                        |
 * | tree           | Int32Array ×4| 16    | RB_STRIDE words, read together by a tree walk (one cache line):  |
 * |  [0] [1]       |              |       | node.rb_left, node.rb_right: rb links while in an unstable tree  |
 * |  [2] prefix    |              |       | (ours) the page's first 4 bytes when it went into the tree (as int32) |
 * |  [3] frame     |              |       | (ours) the page's frame when it went into the unstable tree     |
 * | parent         | Int32Array   | 4     | node: rb parent while in an unstable tree                       |
 * | color          | Uint8Array   | 1     | node: rb colour                                                 |
 * | head           | Int32Array   | 4     | head: the stable node while STABLE_FLAG is set                  |
 * | hnext/hprev    | Int32Array ×2| 8     | hlist: links in the stable node's item list                     |
 * | lastDecline    | Uint8Array   | 1     | (ours) why the last visit did not merge: 1 + DECLINE_REASONS index |
 *
 * Total: 60 bytes per item. The kernel overlays the rb_node with head+hlist in
 * a union; we keep them apart (still under 64 bytes) so that a stale field can
 * never be misread as the other role.
 *
 * Free items are chained through `next` (LIFO), so the pool holds nothing
 * beside the fields. The arrays grow to what a first pass over a VMA will
 * need (`reserve`), else by a sixteenth at a time (`grownCapacity`), never by
 * doubling: the capacity stays within 6.25% (or one step of 256) of the
 * items ever live at once, so the memory really used per item stays within
 * the kernel's 64 bytes (`allocatedBytes`). When many items were freed (pages
 * gone, or merged into the zero page), ksmd renumbers the live ones at the
 * start of a pass into smaller arrays (`compact`): item numbers mean nothing
 * to the kernel's logic, only the lists and trees that link them do.
 */
import { fail } from '../host/assert.ts';
import { RB_STRIDE, type RbLinks } from './rbtree.ts';

export const SEQNR_MASK = 0x0ff;
export const UNSTABLE_FLAG = 0x100;
export const STABLE_FLAG = 0x200;
/** Word of an item's `tree` record holding its tree hint: the page's first 4 bytes (`>>> 0` for the unsigned value). */
export const ITEM_TREE_PREFIX = 2;
/** Word of an item's `tree` record holding the frame behind the hint. */
export const ITEM_TREE_FRAME = 3;

/** Declared bytes per rmap item (sum of the layout above); a test holds it to the kernel's 64. */
export const RMAP_ITEM_BYTES = 4 + 4 + 8 + 2 + 4 + 1 + 1 + 2 + 4 * RB_STRIDE + 4 + 1 + 4 + 8 + 1;

/** Smallest growth step of the item and stable node pools, in entries. */
const MIN_GROWTH = 256;

/**
 * The next capacity of a pool of `capacity` entries: `1 / stepDivisor` more
 * (at least MIN_GROWTH). Each growth copies the arrays, so the step is as
 * large as the 64-byte budget allows: a sixteenth for the 60-byte rmap items,
 * an eighth for the 56-byte stable nodes.
 */
export function grownCapacity(capacity: number, stepDivisor = 16): number {
  return capacity + Math.max(MIN_GROWTH, Math.ceil(capacity / stepDivisor));
}

export class RmapItemPool implements RbLinks {
  next: Int32Array;
  slot: Int32Array;
  vpn: Float64Array;
  flags: Uint16Array;
  oldchecksum: Uint32Array;
  age: Uint8Array;
  remainingSkips: Uint8Array;
  nid: Uint16Array;
  /**
   * Per item, RB_STRIDE words: rb left, rb right, then the hints a walk of
   * the unstable tree steers by, beside the links so that one level of the
   * walk reads one line: ITEM_TREE_PREFIX, a copy of the tree page's first
   * word, and ITEM_TREE_FRAME, its frame then. The walk picks its direction
   * from the prefix instead of waiting for the page table walk that finds the
   * page: that walk is then checked off the critical path (see
   * unstableTreeSearchInsert). Only hints: checked against the page every time.
   */
  tree: Int32Array;
  parent: Int32Array;
  color: Uint8Array;
  head: Int32Array;
  hnext: Int32Array;
  hprev: Int32Array;
  lastDecline: Uint8Array;
  /** First free item (its `next` links the next one), or -1. */
  private freeHead = -1;
  private highWater = 0;
  private liveCount = 0;

  constructor(capacity = 1024) {
    this.next = new Int32Array(capacity);
    this.slot = new Int32Array(capacity);
    this.vpn = new Float64Array(capacity);
    this.flags = new Uint16Array(capacity);
    this.oldchecksum = new Uint32Array(capacity);
    this.age = new Uint8Array(capacity);
    this.remainingSkips = new Uint8Array(capacity);
    this.nid = new Uint16Array(capacity);
    this.tree = new Int32Array(capacity * RB_STRIDE);
    this.parent = new Int32Array(capacity);
    this.color = new Uint8Array(capacity);
    this.head = new Int32Array(capacity);
    this.hnext = new Int32Array(capacity);
    this.hprev = new Int32Array(capacity);
    this.lastDecline = new Uint8Array(capacity);
  }

  get capacity(): number {
    return this.next.length;
  }

  get live(): number {
    return this.liveCount;
  }

  /** Bytes held by the pool's arrays (capacity, not items in use). */
  get allocatedBytes(): number {
    return this.capacity * RMAP_ITEM_BYTES;
  }

  /** Whether so many items are free that the arrays should shrink (see compact). */
  get wantsCompaction(): boolean {
    return this.capacity > this.liveCount + Math.max(MIN_GROWTH, Math.ceil(this.liveCount / 16));
  }

  /**
   * Renumbers the live items: item `old` becomes `renumber[old]` (every live
   * item has a new number, 0 .. live - 1; -1 for a free one), in arrays of
   * live plus a thirty-second. Links between items (`next`, hlist, rb links)
   * are renumbered too; a link to a free item (a stale rb link) becomes -1.
   * The caller renumbers the references from outside (list heads, stable nodes).
   */
  compact(renumber: Int32Array): void {
    const live = this.liveCount;
    const n = live + Math.max(MIN_GROWTH, Math.ceil(live / 32));
    const high = this.highWater;
    // order[to] = old: one pass over the live items per field, each copy a
    // monomorphic loop (a generic one over every typed-array kind ran
    // megamorphic and made compaction cost as much as half a pass).
    const order = new Int32Array(live);
    for (let old = 0; old < high; old++) {
      const to = renumber[old]!;
      if (to >= 0) order[to] = old;
    }
    const links = (a: Int32Array): Int32Array => {
      const b = new Int32Array(n);
      for (let to = 0; to < live; to++) {
        const v = a[order[to]!]!;
        b[to] = v < 0 ? v : renumber[v]!;
      }
      return b;
    };
    this.next = links(this.next);
    const tree = new Int32Array(n * RB_STRIDE);
    const oldTree = this.tree;
    for (let to = 0; to < live; to++) {
      const from = order[to]! * RB_STRIDE;
      const at = to * RB_STRIDE;
      const l = oldTree[from]!;
      const r = oldTree[from + 1]!;
      tree[at] = l < 0 ? l : renumber[l]!;
      tree[at + 1] = r < 0 ? r : renumber[r]!;
      tree[at + ITEM_TREE_PREFIX] = oldTree[from + ITEM_TREE_PREFIX]!;
      tree[at + ITEM_TREE_FRAME] = oldTree[from + ITEM_TREE_FRAME]!;
    }
    this.tree = tree;
    this.parent = links(this.parent);
    this.hnext = links(this.hnext);
    this.hprev = links(this.hprev);
    this.slot = gatherI32(this.slot, order, n);
    this.vpn = gatherF64(this.vpn, order, n);
    this.flags = gatherU16(this.flags, order, n);
    this.oldchecksum = gatherU32(this.oldchecksum, order, n);
    this.age = gatherU8(this.age, order, n);
    this.remainingSkips = gatherU8(this.remainingSkips, order, n);
    this.nid = gatherU16(this.nid, order, n);
    this.color = gatherU8(this.color, order, n);
    this.head = gatherI32(this.head, order, n);
    this.lastDecline = gatherU8(this.lastDecline, order, n);
    this.highWater = live;
    this.freeHead = -1;
  }

  /** Whether the next alloc() must grow the arrays. */
  get full(): boolean {
    return this.freeHead < 0 && this.highWater === this.capacity;
  }

  /**
   * Room for `count` items in all: the arrays grow once to that size (or by
   * the usual step if that is more), instead of step after step while a pass
   * meets pages it has no item for yet.
   */
  reserve(count: number): void {
    if (count <= this.capacity) return;
    this.grow(Math.max(count, grownCapacity(this.capacity)));
  }

  /** alloc_rmap_item(): a zeroed item (kmem_cache_zalloc). */
  alloc(slot: number, vpn: number): number {
    let item: number;
    if (this.freeHead >= 0) {
      item = this.freeHead;
      this.freeHead = this.next[item]!;
    } else {
      if (this.highWater === this.capacity) this.grow(grownCapacity(this.capacity));
      item = this.highWater++;
    }
    this.next[item] = -1;
    this.slot[item] = slot;
    this.vpn[item] = vpn;
    this.flags[item] = 0;
    this.oldchecksum[item] = 0;
    this.age[item] = 0;
    this.remainingSkips[item] = 0;
    this.nid[item] = 0;
    const at = item * RB_STRIDE;
    const tree = this.tree;
    tree[at] = -1;
    tree[at + 1] = -1;
    tree[at + ITEM_TREE_PREFIX] = 0;
    tree[at + ITEM_TREE_FRAME] = -1;
    this.parent[item] = -1;
    this.color[item] = 0;
    this.head[item] = -1;
    this.hnext[item] = -1;
    this.hprev[item] = -1;
    this.lastDecline[item] = 0;
    this.liveCount++;
    return item;
  }

  free(item: number): void {
    if (!(this.slot[item]! >= 0)) fail(`double free of rmap item ${item}`);
    this.slot[item] = -1;
    this.next[item] = this.freeHead;
    this.freeHead = item;
    this.liveCount--;
  }

  private grow(n: number): void {
    this.next = growInt32(this.next, n);
    this.slot = growInt32(this.slot, n);
    const vpn = new Float64Array(n);
    vpn.set(this.vpn);
    this.vpn = vpn;
    const flags = new Uint16Array(n);
    flags.set(this.flags);
    this.flags = flags;
    this.oldchecksum = growUint32(this.oldchecksum, n);
    this.age = growUint8(this.age, n);
    this.remainingSkips = growUint8(this.remainingSkips, n);
    const nid = new Uint16Array(n);
    nid.set(this.nid);
    this.nid = nid;
    this.tree = growInt32(this.tree, n * RB_STRIDE);
    this.parent = growInt32(this.parent, n);
    this.color = growUint8(this.color, n);
    this.head = growInt32(this.head, n);
    this.hnext = growInt32(this.hnext, n);
    this.hprev = growInt32(this.hprev, n);
    this.lastDecline = growUint8(this.lastDecline, n);
  }
}

export function growInt32(a: Int32Array, n: number): Int32Array {
  const b = new Int32Array(n);
  b.set(a);
  return b;
}

export function growUint32(a: Uint32Array, n: number): Uint32Array {
  const b = new Uint32Array(n);
  b.set(a);
  return b;
}

export function growUint8(a: Uint8Array, n: number): Uint8Array {
  const b = new Uint8Array(n);
  b.set(a);
  return b;
}

// b[i] = a[order[i]] into a new array of `length`: one function per element
// kind, so that each loop stays monomorphic.
function gatherI32(a: Int32Array, order: Int32Array, length: number): Int32Array {
  const b = new Int32Array(length);
  for (let i = 0; i < order.length; i++) b[i] = a[order[i]!]!;
  return b;
}

function gatherU32(a: Uint32Array, order: Int32Array, length: number): Uint32Array {
  const b = new Uint32Array(length);
  for (let i = 0; i < order.length; i++) b[i] = a[order[i]!]!;
  return b;
}

function gatherU16(a: Uint16Array, order: Int32Array, length: number): Uint16Array {
  const b = new Uint16Array(length);
  for (let i = 0; i < order.length; i++) b[i] = a[order[i]!]!;
  return b;
}

function gatherU8(a: Uint8Array, order: Int32Array, length: number): Uint8Array {
  const b = new Uint8Array(length);
  for (let i = 0; i < order.length; i++) b[i] = a[order[i]!]!;
  return b;
}

function gatherF64(a: Float64Array, order: Int32Array, length: number): Float64Array {
  const b = new Float64Array(length);
  for (let i = 0; i < order.length; i++) b[i] = a[order[i]!]!;
  return b;
}
