/**
 * Mirrors `struct ksm_stable_node` (mm/ksm.c) in its three roles: a regular
 * node of a stable tree (one KSM page), a chain (one content with several KSM
 * page copies, `rmap_hlist_len == STABLE_NODE_CHAIN`) and a dup (one copy hung
 * off a chain, not itself in the tree).
 *
 * Layout, per node:
 *
 * | field             | type          | bytes | kernel field / meaning                                   |
 * |-------------------|---------------|-------|----------------------------------------------------------|
 * | tree              | Int32Array ×4 | 16    | RB_STRIDE words, read together by a tree walk (one line):  |
 * |  [0] [1]          |               |       | node.rb_left, node.rb_right (regular node or chain in a tree) |
 * |  [2] prefix       |               |       | (ours) the KSM page's first 4 bytes (as int32), a hint for walks |
 * |  [3] kpfn         |               |       | kpfn: the KSM page's frame                               |
 * | parent            | Int32Array    | 4     | node: rb parent (regular node or chain in a tree)        |
 * | color             | Uint8Array    | 1     | node: rb colour                                          |
 * | kind              | Uint8Array    | 1     | NODE_REGULAR / NODE_CHAIN / NODE_DUP (head == DUP_HEAD)   |
 * | first             | Int32Array    | 4     | hlist.first: first rmap item, or a chain's first dup     |
 * | dupNext/dupPrev   | Int32Array ×2 | 8     | hlist_dup: links in the chain's dup list                 |
 * | chain             | Int32Array    | 4     | (ours) the chain a dup hangs off, for hlist_del at head  |
 * | chainPruneTime    | Float64Array  | 8     | chain_prune_time, in jiffies (chains only)               |
 * | rmapHlistLen      | Int32Array    | 4     | rmap_hlist_len (STABLE_NODE_CHAIN for a chain)           |
 * | nid               | Uint16Array   | 2     | nid: stable tree the node is linked in                   |
 *
 * Total: 52 bytes per node (the kernel's is 64). Free nodes are chained
 * through `dupNext`; the arrays grow by an eighth at a time (at most 59 bytes
 * allocated per node in use), never by doubling.
 */
import { fail } from '../host/assert.ts';
import { RB_STRIDE, type RbLinks } from './rbtree.ts';
import { growInt32, grownCapacity, growUint8 } from './rmap-item.ts';

export const NODE_FREE = 0;
export const NODE_REGULAR = 1;
export const NODE_CHAIN = 2;
export const NODE_DUP = 3;
export const STABLE_NODE_CHAIN = -1024;

/** Word of a node's `tree` record holding its tree hint: the KSM page's first 4 bytes (`>>> 0` for the unsigned value). */
export const NODE_TREE_PREFIX = 2;
/** Word of a node's `tree` record holding kpfn, the KSM page's frame (read by each step of a walk). */
export const NODE_KPFN = 3;

export const STABLE_NODE_BYTES = 4 * RB_STRIDE + 4 + 1 + 1 + 4 + 8 + 4 + 8 + 4 + 2;

export class StableNodePool implements RbLinks {
  /** RB_STRIDE words per node: rb left, rb right, NODE_TREE_PREFIX (as RmapItemPool.tree), NODE_KPFN. */
  tree: Int32Array;
  parent: Int32Array;
  color: Uint8Array;
  kind: Uint8Array;
  first: Int32Array;
  dupNext: Int32Array;
  dupPrev: Int32Array;
  chain: Int32Array;
  chainPruneTime: Float64Array;
  rmapHlistLen: Int32Array;
  nid: Uint16Array;
  /** First free node (its `dupNext` links the next one), or -1. */
  private freeHead = -1;
  private highWater = 0;
  private liveCount = 0;

  constructor(capacity = 256) {
    this.tree = new Int32Array(capacity * RB_STRIDE);
    this.parent = new Int32Array(capacity);
    this.color = new Uint8Array(capacity);
    this.kind = new Uint8Array(capacity);
    this.first = new Int32Array(capacity);
    this.dupNext = new Int32Array(capacity);
    this.dupPrev = new Int32Array(capacity);
    this.chain = new Int32Array(capacity);
    this.chainPruneTime = new Float64Array(capacity);
    this.rmapHlistLen = new Int32Array(capacity);
    this.nid = new Uint16Array(capacity);
  }

  get capacity(): number {
    return this.parent.length;
  }

  get live(): number {
    return this.liveCount;
  }

  /** Bytes held by the pool's arrays (capacity, not nodes in use). */
  get allocatedBytes(): number {
    return this.capacity * STABLE_NODE_BYTES;
  }

  alloc(kind: number): number {
    let node: number;
    if (this.freeHead >= 0) {
      node = this.freeHead;
      this.freeHead = this.dupNext[node]!;
    } else {
      if (this.highWater === this.capacity) this.grow();
      node = this.highWater++;
    }
    const at = node * RB_STRIDE;
    this.tree[at] = -1;
    this.tree[at + 1] = -1;
    this.tree[at + NODE_TREE_PREFIX] = 0;
    this.tree[at + NODE_KPFN] = -1;
    this.parent[node] = -1;
    this.color[node] = 0;
    this.kind[node] = kind;
    this.first[node] = -1;
    this.dupNext[node] = -1;
    this.dupPrev[node] = -1;
    this.chain[node] = -1;
    this.chainPruneTime[node] = 0;
    this.rmapHlistLen[node] = kind === NODE_CHAIN ? STABLE_NODE_CHAIN : 0;
    this.nid[node] = 0;
    this.liveCount++;
    return node;
  }

  free(node: number): void {
    if (!(this.kind[node] !== NODE_FREE)) fail(`double free of stable node ${node}`);
    this.kind[node] = NODE_FREE;
    this.dupNext[node] = this.freeHead;
    this.freeHead = node;
    this.liveCount--;
  }

  private grow(): void {
    const n = grownCapacity(this.capacity, 8);
    const i32 = (a: Int32Array): Int32Array => growInt32(a, n);
    const u8 = (a: Uint8Array): Uint8Array => growUint8(a, n);
    this.tree = growInt32(this.tree, n * RB_STRIDE);
    this.parent = i32(this.parent);
    this.color = u8(this.color);
    this.kind = u8(this.kind);
    this.first = i32(this.first);
    this.dupNext = i32(this.dupNext);
    this.dupPrev = i32(this.dupPrev);
    this.chain = i32(this.chain);
    const t = new Float64Array(n);
    t.set(this.chainPruneTime);
    this.chainPruneTime = t;
    this.rmapHlistLen = i32(this.rmapHlistLen);
    const d = new Uint16Array(n);
    d.set(this.nid);
    this.nid = d;
  }
}
