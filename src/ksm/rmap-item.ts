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
 * | left/right/parent | Int32Array ×3 | 12 | node: rb_node links while in an unstable tree                 |
 * | color          | Uint8Array   | 1     | node: rb colour                                                 |
 * | head           | Int32Array   | 4     | head: the stable node while STABLE_FLAG is set                  |
 * | hnext/hprev    | Int32Array ×2| 8     | hlist: links in the stable node's item list                     |
 * | lastDecline    | Uint8Array   | 1     | (ours) why the last visit did not merge: 1 + DECLINE_REASONS index |
 *
 * Total: 52 bytes per item. The kernel overlays the rb_node with head+hlist in
 * a union; we keep them apart (still under 64 bytes) so that a stale field can
 * never be misread as the other role.
 */
import { fail } from '../host/assert.ts';
import type { RbLinks } from './rbtree.ts';

export const SEQNR_MASK = 0x0ff;
export const UNSTABLE_FLAG = 0x100;
export const STABLE_FLAG = 0x200;

/** Declared bytes per rmap item (sum of the layout above); a test holds it to the kernel's 64. */
export const RMAP_ITEM_BYTES = 4 + 4 + 8 + 2 + 4 + 1 + 1 + 2 + 12 + 1 + 4 + 8 + 1;

export class RmapItemPool implements RbLinks {
  next: Int32Array;
  slot: Int32Array;
  vpn: Float64Array;
  flags: Uint16Array;
  oldchecksum: Uint32Array;
  age: Uint8Array;
  remainingSkips: Uint8Array;
  nid: Uint16Array;
  left: Int32Array;
  right: Int32Array;
  parent: Int32Array;
  color: Uint8Array;
  head: Int32Array;
  hnext: Int32Array;
  hprev: Int32Array;
  lastDecline: Uint8Array;
  private freeList: Int32Array;
  private freeTop = 0;
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
    this.left = new Int32Array(capacity);
    this.right = new Int32Array(capacity);
    this.parent = new Int32Array(capacity);
    this.color = new Uint8Array(capacity);
    this.head = new Int32Array(capacity);
    this.hnext = new Int32Array(capacity);
    this.hprev = new Int32Array(capacity);
    this.lastDecline = new Uint8Array(capacity);
    this.freeList = new Int32Array(capacity);
  }

  get capacity(): number {
    return this.next.length;
  }

  get live(): number {
    return this.liveCount;
  }

  /** alloc_rmap_item(): a zeroed item (kmem_cache_zalloc). */
  alloc(slot: number, vpn: number): number {
    let item: number;
    if (this.freeTop > 0) item = this.freeList[--this.freeTop]!;
    else {
      if (this.highWater === this.capacity) this.grow();
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
    this.left[item] = -1;
    this.right[item] = -1;
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
    if (this.freeTop === this.freeList.length) {
      const bigger = new Int32Array(this.freeList.length * 2);
      bigger.set(this.freeList);
      this.freeList = bigger;
    }
    this.freeList[this.freeTop++] = item;
    this.liveCount--;
  }

  private grow(): void {
    const n = this.capacity * 2;
    this.next = growInt32(this.next, n);
    this.slot = growInt32(this.slot, n);
    const vpn = new Float64Array(n);
    vpn.set(this.vpn);
    this.vpn = vpn;
    const flags = new Uint16Array(n);
    flags.set(this.flags);
    this.flags = flags;
    const sums = new Uint32Array(n);
    sums.set(this.oldchecksum);
    this.oldchecksum = sums;
    this.age = growUint8(this.age, n);
    this.remainingSkips = growUint8(this.remainingSkips, n);
    const nid = new Uint16Array(n);
    nid.set(this.nid);
    this.nid = nid;
    this.left = growInt32(this.left, n);
    this.right = growInt32(this.right, n);
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

export function growUint8(a: Uint8Array, n: number): Uint8Array {
  const b = new Uint8Array(n);
  b.set(a);
  return b;
}
