/**
 * Red-black tree over struct-of-arrays node storage: a port of the Linux
 * kernel's lib/rbtree.c (non-augmented paths), step for step, so that every
 * insert and erase leaves exactly the tree shape the kernel would. KSM's
 * stable and unstable trees are kernel rbtrees, and which page a search meets
 * first depends on that shape; an "equivalent" textbook red-black tree would
 * rotate differently and drift from the kernel's counters.
 *
 * Layout, per node (arrays owned by the caller's pool, indexed by node number):
 *
 * | field  | type                        | bytes | kernel `struct rb_node` field / meaning                   |
 * |--------|-----------------------------|-------|-----------------------------------------------------------|
 * | left   | tree[node * RB_STRIDE]      | 4     | rb_left: left child, or RB_NIL                            |
 * | right  | tree[node * RB_STRIDE + 1]  | 4     | rb_right: right child, or RB_NIL                          |
 * | parent | Int32Array                  | 4     | __rb_parent_color, pointer bits: parent, or RB_NIL (root) |
 * | color  | Uint8Array                  | 1     | __rb_parent_color, bit 0: RB_RED (0) or RB_BLACK (1)      |
 *
 * `tree` is one Int32Array of RB_STRIDE words per node: the child links,
 * then RB_STRIDE - 2 words of the pool's own (what its key walks read beside
 * the links, e.g. KSM's hints). A walk down is a chain of cache misses, one
 * per level; with the links and the key hints in one record each level costs
 * one line instead of one per array.
 *
 * Total: 13 bytes per node (the kernel's rb_node is 24 on x86_64). The kernel
 * packs the colour into the low bit of the parent pointer; we keep a separate
 * byte, so its `rb_set_parent` (keep colour) and `rb_set_parent_color` (set
 * both) become one or two stores below.
 *
 * Roots live apart from the nodes, in an Int32Array holding several trees
 * (KSM keeps one stable and one unstable tree per NUMA node): `roots[i]` plays
 * the kernel's `struct rb_root` and is a node number or RB_NIL.
 *
 * The kernel has no tree object and no insert-by-key: the caller walks down
 * comparing keys, then links the new node as a red leaf and lets
 * rbInsertColor rebalance. The same pattern here:
 *
 * ```ts
 * const pool = new RbPool(1024);
 * const roots: RbRoots = new Int32Array(1).fill(RB_NIL);
 * function insert(n: number, key: number): void {
 *   let parent = RB_NIL;
 *   let goLeft = false;
 *   for (let at = roots[0]!; at !== RB_NIL; ) {
 *     parent = at;
 *     goLeft = key < keys[at]!;
 *     at = pool.tree[at * RB_STRIDE + (goLeft ? 0 : 1)]!;
 *   }
 *   rbLinkNode(pool, n, parent, goLeft);
 *   if (parent === RB_NIL) roots[0] = n;
 *   rbInsertColor(pool, roots, 0, n);
 * }
 * for (let n = rbFirst(pool, roots[0]!); n !== RB_NIL; n = rbNext(pool, n)) visit(n);
 * ```
 *
 * Like the kernel, rbErase and rbReplaceNode leave the removed node's own
 * links as they were (stale); call rbClearNode if later code must be able to
 * tell it is out of any tree. No operation allocates.
 */

/** No node: the kernel's NULL rb_node pointer. */
export const RB_NIL = -1;
export const RB_RED = 0;
export const RB_BLACK = 1;
/** Words per node in RbLinks.tree; left is word 0, right word 1. */
export const RB_STRIDE = 4;

/** Node links of one pool; the arrays may be replaced by larger ones when the pool grows, so always read them through this object. */
export interface RbLinks {
  /** RB_STRIDE words per node: left child, right child, then the pool's own. */
  tree: Int32Array;
  parent: Int32Array;
  color: Uint8Array;
}

/** Roots of several trees (e.g. one per NUMA node); roots[i] is a node index or RB_NIL. */
export type RbRoots = Int32Array;

/**
 * rb_link_node(): make `node` a red leaf under `parent`, on its left or right
 * side. With parent RB_NIL the node is to become the root: the caller then
 * sets roots[i] = node itself (the kernel's `*rb_link = node`), since this
 * function is not told which root.
 */
export function rbLinkNode(links: RbLinks, node: number, parent: number, linkLeft: boolean): void {
  links.parent[node] = parent;
  links.color[node] = RB_RED;
  links.tree[node * RB_STRIDE] = RB_NIL;
  links.tree[node * RB_STRIDE + 1] = RB_NIL;
  if (parent !== RB_NIL) {
    links.tree[parent * RB_STRIDE + (linkLeft ? 0 : 1)] = node;
  }
}

/**
 * __rb_change_child(): point whatever held `old` (its parent's left or right
 * link, or the root slot when it has no parent) at `replacement` instead.
 */
function changeChild(
  tree: Int32Array,
  old: number,
  replacement: number,
  parent: number,
  roots: RbRoots,
  rootIndex: number,
): void {
  if (parent !== RB_NIL) {
    if (tree[parent * RB_STRIDE] === old) tree[parent * RB_STRIDE] = replacement;
    else tree[parent * RB_STRIDE + 1] = replacement;
  } else {
    roots[rootIndex] = replacement;
  }
}

/**
 * __rb_rotate_set_parents(): the last step of every rotation. `replacement`
 * moves up into `old`'s slot, inheriting its parent and colour; `old` goes
 * under `replacement` with the given colour.
 */
function rotateSetParents(
  links: RbLinks,
  old: number,
  replacement: number,
  roots: RbRoots,
  rootIndex: number,
  color: number,
): void {
  const parentArr = links.parent;
  const colorArr = links.color;
  const oldParent = parentArr[old]!;
  parentArr[replacement] = oldParent;
  colorArr[replacement] = colorArr[old]!;
  parentArr[old] = replacement;
  colorArr[old] = color;
  changeChild(links.tree, old, replacement, oldParent, roots, rootIndex);
}

/**
 * rb_insert_color() (__rb_insert with no augment callback): restore the
 * red-black rules after rbLinkNode put `node` in as a red leaf. The cases and
 * their order follow the kernel exactly, since they decide the final shape.
 */
export function rbInsertColor(links: RbLinks, roots: RbRoots, rootIndex: number, node: number): void {
  const tree = links.tree;
  const parentArr = links.parent;
  const color = links.color;
  let parent = parentArr[node]!;
  for (;;) {
    // Loop invariant: node is red.
    if (parent === RB_NIL) {
      // node is the root (a first node, or case 1 recursed up to it): blacken it.
      color[node] = RB_BLACK;
      break;
    }
    // A black parent accepts a red child: nothing to fix.
    if (color[parent] === RB_BLACK) break;

    // parent is red, so it is not the root and has a (black) grandparent.
    const gparent = parentArr[parent]!;
    let tmp = tree[gparent * RB_STRIDE + 1]!;
    if (parent !== tmp) {
      // parent is gparent's left child; tmp is the uncle.
      if (tmp !== RB_NIL && color[tmp] === RB_RED) {
        // Case 1, red uncle: push gparent's blackness down to parent and
        // uncle and make gparent red; that may clash with gparent's own
        // parent, so carry on from gparent.
        color[tmp] = RB_BLACK;
        color[parent] = RB_BLACK;
        node = gparent;
        parent = parentArr[node]!;
        color[node] = RB_RED;
        continue;
      }
      tmp = tree[parent * RB_STRIDE + 1]!;
      if (node === tmp) {
        // Case 2, black uncle and node is an inner (right) child: rotate left
        // at parent so the red pair lines up on the outside for case 3.
        tmp = tree[node * RB_STRIDE]!;
        tree[parent * RB_STRIDE + 1] = tmp;
        tree[node * RB_STRIDE] = parent;
        if (tmp !== RB_NIL) {
          parentArr[tmp] = parent;
          color[tmp] = RB_BLACK;
        }
        parentArr[parent] = node;
        color[parent] = RB_RED;
        parent = node;
        tmp = tree[node * RB_STRIDE + 1]!;
      }
      // Case 3, black uncle and node is an outer (left) child: rotate right
      // at gparent; parent takes gparent's place and colour (black), gparent
      // goes under it red. Nothing above changed colour: done.
      tree[gparent * RB_STRIDE] = tmp;
      tree[parent * RB_STRIDE + 1] = gparent;
      if (tmp !== RB_NIL) {
        parentArr[tmp] = gparent;
        color[tmp] = RB_BLACK;
      }
      rotateSetParents(links, gparent, parent, roots, rootIndex, RB_RED);
      break;
    }
    // Mirror image: parent is gparent's right child.
    tmp = tree[gparent * RB_STRIDE]!;
    if (tmp !== RB_NIL && color[tmp] === RB_RED) {
      // Case 1, red uncle: colour flip, carry on from gparent.
      color[tmp] = RB_BLACK;
      color[parent] = RB_BLACK;
      node = gparent;
      parent = parentArr[node]!;
      color[node] = RB_RED;
      continue;
    }
    tmp = tree[parent * RB_STRIDE]!;
    if (node === tmp) {
      // Case 2: rotate right at parent.
      tmp = tree[node * RB_STRIDE + 1]!;
      tree[parent * RB_STRIDE] = tmp;
      tree[node * RB_STRIDE + 1] = parent;
      if (tmp !== RB_NIL) {
        parentArr[tmp] = parent;
        color[tmp] = RB_BLACK;
      }
      parentArr[parent] = node;
      color[parent] = RB_RED;
      parent = node;
      tmp = tree[node * RB_STRIDE]!;
    }
    // Case 3: rotate left at gparent.
    tree[gparent * RB_STRIDE + 1] = tmp;
    tree[parent * RB_STRIDE] = gparent;
    if (tmp !== RB_NIL) {
      parentArr[tmp] = gparent;
      color[tmp] = RB_BLACK;
    }
    rotateSetParents(links, gparent, parent, roots, rootIndex, RB_RED);
    break;
  }
}

/**
 * ____rb_erase_color(): after an erase removed a black node below `parent`,
 * every path through parent's now-short side has one black too few. Fix it
 * by recolouring and rotating, moving up while the deficit remains.
 */
function eraseColor(links: RbLinks, roots: RbRoots, rootIndex: number, parent: number): void {
  const tree = links.tree;
  const parentArr = links.parent;
  const color = links.color;
  // The short side's top node: RB_NIL at first (the removed leaf), later black.
  let node = RB_NIL;
  for (;;) {
    // Invariants: node is black or RB_NIL, parent is not RB_NIL, and paths
    // through node are one black short.
    let sibling = tree[parent * RB_STRIDE + 1]!;
    if (node !== sibling) {
      // node is parent's left child (comparing with the right child is the
      // kernel's test, and the only one that works while node is RB_NIL).
      let tmp1: number;
      let tmp2: number;
      if (color[sibling] === RB_RED) {
        // Case 1, red sibling: rotate left at parent so node gets a black
        // sibling (sibling's old left child) and parent turns red.
        tmp1 = tree[sibling * RB_STRIDE]!;
        tree[parent * RB_STRIDE + 1] = tmp1;
        tree[sibling * RB_STRIDE] = parent;
        parentArr[tmp1] = parent;
        color[tmp1] = RB_BLACK;
        rotateSetParents(links, parent, sibling, roots, rootIndex, RB_RED);
        sibling = tmp1;
      }
      tmp1 = tree[sibling * RB_STRIDE + 1]!;
      if (tmp1 === RB_NIL || color[tmp1] === RB_BLACK) {
        tmp2 = tree[sibling * RB_STRIDE]!;
        if (tmp2 === RB_NIL || color[tmp2] === RB_BLACK) {
          // Case 2, black sibling with black children: redden the sibling so
          // both sides of parent are short. A red parent turning black pays
          // the debt; a black parent passes it up one level.
          parentArr[sibling] = parent;
          color[sibling] = RB_RED;
          if (color[parent] === RB_RED) {
            color[parent] = RB_BLACK;
          } else {
            node = parent;
            parent = parentArr[node]!;
            if (parent !== RB_NIL) continue;
          }
          break;
        }
        // Case 3, sibling's inner (left) child is red and outer one black:
        // rotate right at sibling so the red child becomes the new sibling
        // with a red outer child, ready for case 4.
        tmp1 = tree[tmp2 * RB_STRIDE + 1]!;
        tree[sibling * RB_STRIDE] = tmp1;
        tree[tmp2 * RB_STRIDE + 1] = sibling;
        tree[parent * RB_STRIDE + 1] = tmp2;
        if (tmp1 !== RB_NIL) {
          parentArr[tmp1] = sibling;
          color[tmp1] = RB_BLACK;
        }
        tmp1 = sibling;
        sibling = tmp2;
      }
      // Case 4, sibling's outer (right) child tmp1 is red: rotate left at
      // parent; sibling takes parent's place and colour, parent and tmp1
      // turn black, which gives node's side its missing black. Done.
      tmp2 = tree[sibling * RB_STRIDE]!;
      tree[parent * RB_STRIDE + 1] = tmp2;
      tree[sibling * RB_STRIDE] = parent;
      parentArr[tmp1] = sibling;
      color[tmp1] = RB_BLACK;
      if (tmp2 !== RB_NIL) parentArr[tmp2] = parent;
      rotateSetParents(links, parent, sibling, roots, rootIndex, RB_BLACK);
      break;
    }
    // Mirror image: node is parent's right child.
    sibling = tree[parent * RB_STRIDE]!;
    let tmp1: number;
    let tmp2: number;
    if (color[sibling] === RB_RED) {
      // Case 1: rotate right at parent.
      tmp1 = tree[sibling * RB_STRIDE + 1]!;
      tree[parent * RB_STRIDE] = tmp1;
      tree[sibling * RB_STRIDE + 1] = parent;
      parentArr[tmp1] = parent;
      color[tmp1] = RB_BLACK;
      rotateSetParents(links, parent, sibling, roots, rootIndex, RB_RED);
      sibling = tmp1;
    }
    tmp1 = tree[sibling * RB_STRIDE]!;
    if (tmp1 === RB_NIL || color[tmp1] === RB_BLACK) {
      tmp2 = tree[sibling * RB_STRIDE + 1]!;
      if (tmp2 === RB_NIL || color[tmp2] === RB_BLACK) {
        // Case 2: sibling colour flip.
        parentArr[sibling] = parent;
        color[sibling] = RB_RED;
        if (color[parent] === RB_RED) {
          color[parent] = RB_BLACK;
        } else {
          node = parent;
          parent = parentArr[node]!;
          if (parent !== RB_NIL) continue;
        }
        break;
      }
      // Case 3: rotate left at sibling.
      tmp1 = tree[tmp2 * RB_STRIDE]!;
      tree[sibling * RB_STRIDE + 1] = tmp1;
      tree[tmp2 * RB_STRIDE] = sibling;
      tree[parent * RB_STRIDE] = tmp2;
      if (tmp1 !== RB_NIL) {
        parentArr[tmp1] = sibling;
        color[tmp1] = RB_BLACK;
      }
      tmp1 = sibling;
      sibling = tmp2;
    }
    // Case 4: rotate right at parent + colour flips.
    tmp2 = tree[sibling * RB_STRIDE + 1]!;
    tree[parent * RB_STRIDE] = tmp2;
    tree[sibling * RB_STRIDE + 1] = parent;
    parentArr[tmp1] = sibling;
    color[tmp1] = RB_BLACK;
    if (tmp2 !== RB_NIL) parentArr[tmp2] = parent;
    rotateSetParents(links, parent, sibling, roots, rootIndex, RB_BLACK);
    break;
  }
}

/**
 * rb_erase() (__rb_erase_augmented with no callbacks, then
 * ____rb_erase_color): unlink `node` from tree roots[rootIndex]. A node with
 * two children is replaced by its in-order successor, which takes over its
 * position, links and colour; the rebalance then starts where the successor
 * (or the node itself, with fewer children) left a hole.
 */
export function rbErase(links: RbLinks, roots: RbRoots, rootIndex: number, node: number): void {
  const tree = links.tree;
  const parentArr = links.parent;
  const color = links.color;
  const child = tree[node * RB_STRIDE + 1]!;
  let tmp = tree[node * RB_STRIDE]!;
  let rebalance: number;

  if (tmp === RB_NIL) {
    // Case 1: at most a right child. A lone child must be red (rule 5) under
    // a black node (rule 4): it takes the node's place and colour and the
    // tree stays balanced. With no child, removing a black leaf leaves a
    // black deficit under the parent.
    const parent = parentArr[node]!;
    const nodeColor = color[node]!;
    changeChild(tree, node, child, parent, roots, rootIndex);
    if (child !== RB_NIL) {
      parentArr[child] = parent;
      color[child] = nodeColor;
      rebalance = RB_NIL;
    } else {
      rebalance = nodeColor === RB_BLACK ? parent : RB_NIL;
    }
  } else if (child === RB_NIL) {
    // Still case 1, with the lone child on the left.
    const parent = parentArr[node]!;
    parentArr[tmp] = parent;
    color[tmp] = color[node]!;
    changeChild(tree, node, tmp, parent, roots, rootIndex);
    rebalance = RB_NIL;
  } else {
    // Two children: the successor (leftmost of the right subtree) moves into
    // node's place. `parent` becomes the node the successor leaves from, and
    // child2 the successor's right child that fills its old spot.
    let successor = child;
    let parent: number;
    let child2: number;
    tmp = tree[child * RB_STRIDE]!;
    if (tmp === RB_NIL) {
      // Case 2: the successor is node's right child itself; it keeps its
      // right subtree and only gains node's left one.
      parent = successor;
      child2 = tree[successor * RB_STRIDE + 1]!;
    } else {
      // Case 3: the successor is deeper, leftmost under node's right child.
      // Its right child moves up to its old place; it adopts node's right
      // subtree.
      do {
        parent = successor;
        successor = tmp;
        tmp = tree[tmp * RB_STRIDE]!;
      } while (tmp !== RB_NIL);
      child2 = tree[successor * RB_STRIDE + 1]!;
      tree[parent * RB_STRIDE] = child2;
      tree[successor * RB_STRIDE + 1] = child;
      parentArr[child] = successor;
    }

    tmp = tree[node * RB_STRIDE]!;
    tree[successor * RB_STRIDE] = tmp;
    parentArr[tmp] = successor;

    const nodeParent = parentArr[node]!;
    changeChild(tree, node, successor, nodeParent, roots, rootIndex);

    if (child2 !== RB_NIL) {
      // The successor had a (necessarily red) right child: blackening it
      // makes up for the successor moving away.
      parentArr[child2] = parent;
      color[child2] = RB_BLACK;
      rebalance = RB_NIL;
    } else {
      // A black successor leaving its leaf spot leaves a deficit there.
      rebalance = color[successor] === RB_BLACK ? parent : RB_NIL;
    }
    parentArr[successor] = nodeParent;
    color[successor] = color[node]!;
  }

  if (rebalance !== RB_NIL) eraseColor(links, roots, rootIndex, rebalance);
}

/**
 * rb_replace_node(): `replacement` (not in any tree) takes `victim`'s exact
 * place: parent, children and colour, with no rebalancing. The caller must
 * make sure replacement sorts where victim did. victim's links are left as
 * they were.
 */
export function rbReplaceNode(
  links: RbLinks,
  roots: RbRoots,
  rootIndex: number,
  victim: number,
  replacement: number,
): void {
  const tree = links.tree;
  const parentArr = links.parent;
  const parent = parentArr[victim]!;
  const victimLeft = tree[victim * RB_STRIDE]!;
  const victimRight = tree[victim * RB_STRIDE + 1]!;

  // Copy the links and colour (the kernel's `*new = *victim`).
  tree[replacement * RB_STRIDE] = victimLeft;
  tree[replacement * RB_STRIDE + 1] = victimRight;
  parentArr[replacement] = parent;
  links.color[replacement] = links.color[victim]!;

  // Point the surrounding nodes at the replacement.
  if (victimLeft !== RB_NIL) parentArr[victimLeft] = replacement;
  if (victimRight !== RB_NIL) parentArr[victimRight] = replacement;
  changeChild(tree, victim, replacement, parent, roots, rootIndex);
}

/** rb_first(): the leftmost (smallest) node under `root`, or RB_NIL for an empty tree. */
export function rbFirst(links: RbLinks, root: number): number {
  if (root === RB_NIL) return RB_NIL;
  const tree = links.tree;
  let n = root;
  for (let l = tree[n * RB_STRIDE]!; l !== RB_NIL; l = tree[n * RB_STRIDE]!) n = l;
  return n;
}

/** rb_last(): the rightmost (largest) node under `root`, or RB_NIL for an empty tree. */
export function rbLast(links: RbLinks, root: number): number {
  if (root === RB_NIL) return RB_NIL;
  const tree = links.tree;
  let n = root;
  for (let r = tree[n * RB_STRIDE + 1]!; r !== RB_NIL; r = tree[n * RB_STRIDE + 1]!) n = r;
  return n;
}

/** rb_next(): the in-order successor of `node`, or RB_NIL after the last (or for a cleared node). */
export function rbNext(links: RbLinks, node: number): number {
  const parentArr = links.parent;
  if (parentArr[node] === node) return RB_NIL; // RB_EMPTY_NODE
  const tree = links.tree;
  let n = tree[node * RB_STRIDE + 1]!;
  if (n !== RB_NIL) {
    // A right subtree: its leftmost node follows.
    for (let l = tree[n * RB_STRIDE]!; l !== RB_NIL; l = tree[n * RB_STRIDE]!) n = l;
    return n;
  }
  // No right subtree: climb while we are a right child; the first ancestor
  // reached from its left side follows (none: node was the last).
  n = node;
  let parent = parentArr[n]!;
  while (parent !== RB_NIL && n === tree[parent * RB_STRIDE + 1]) {
    n = parent;
    parent = parentArr[n]!;
  }
  return parent;
}

/** rb_prev(): the in-order predecessor of `node`, or RB_NIL before the first (or for a cleared node). */
export function rbPrev(links: RbLinks, node: number): number {
  const parentArr = links.parent;
  if (parentArr[node] === node) return RB_NIL; // RB_EMPTY_NODE
  const tree = links.tree;
  let n = tree[node * RB_STRIDE]!;
  if (n !== RB_NIL) {
    for (let r = tree[n * RB_STRIDE + 1]!; r !== RB_NIL; r = tree[n * RB_STRIDE + 1]!) n = r;
    return n;
  }
  n = node;
  let parent = parentArr[n]!;
  while (parent !== RB_NIL && n === tree[parent * RB_STRIDE]) {
    n = parent;
    parent = parentArr[n]!;
  }
  return parent;
}

/**
 * RB_CLEAR_NODE(): mark `node` as in no tree (its parent link points at
 * itself, as in the kernel). Not in the kernel's rbtree.c proper but in
 * rbtree.h; rbNext/rbPrev return RB_NIL for such a node.
 */
export function rbClearNode(links: RbLinks, node: number): void {
  links.parent[node] = node;
}

/** RB_EMPTY_NODE(): whether `node` was marked by rbClearNode (and not linked since). */
export function rbIsEmptyNode(links: RbLinks, node: number): boolean {
  return links.parent[node] === node;
}

/**
 * Test helper: throw if the tree under `root` breaks any invariant: node
 * numbers in range, the root has no parent and is black, each child's parent
 * link points back, no red node has a red child, and every path from the root
 * down to a missing child passes the same number of black nodes. A cycle
 * through child links shows up as a broken parent link. O(n), recursion
 * depth at most twice the black height.
 */
export function rbCheck(links: RbLinks, root: number): void {
  if (root === RB_NIL) return;
  const size = links.parent.length;
  const valid = (n: number): boolean => Number.isInteger(n) && n >= 0 && n < size;
  if (!valid(root)) throw new Error(`rbtree: root ${root} is not a node number`);
  if (links.parent[root] !== RB_NIL) throw new Error(`rbtree: root ${root} has parent ${links.parent[root]}`);
  if (links.color[root] !== RB_BLACK) throw new Error(`rbtree: root ${root} is not black`);
  // Returns the black height of the subtree (missing children count 1).
  const walk = (node: number): number => {
    const c = links.color[node]!;
    if (c !== RB_RED && c !== RB_BLACK) throw new Error(`rbtree: node ${node} has colour ${c}`);
    const l = links.tree[node * RB_STRIDE]!;
    const r = links.tree[node * RB_STRIDE + 1]!;
    // With each child's parent link checked, a node listed twice under the
    // same parent is the only way a walk could meet a node again.
    if (l !== RB_NIL && l === r) throw new Error(`rbtree: node ${node} has ${l} as both children`);
    let height = -1;
    for (const child of [l, r]) {
      let h = 1;
      if (child !== RB_NIL) {
        if (!valid(child)) throw new Error(`rbtree: node ${node} has child ${child}, not a node number`);
        if (links.parent[child] !== node) {
          throw new Error(
            `rbtree: node ${child} is a child of ${node} but its parent link is ${links.parent[child]}`,
          );
        }
        if (c === RB_RED && links.color[child] === RB_RED) {
          throw new Error(`rbtree: red node ${node} has red child ${child}`);
        }
        h = walk(child);
      }
      if (height === -1) height = h;
      else if (h !== height) {
        throw new Error(`rbtree: node ${node} has black height ${height} on the left and ${h} on the right`);
      }
    }
    return height + (c === RB_BLACK ? 1 : 0);
  };
  walk(root);
}

/**
 * A growable pool of bare tree nodes, for tests and for users with no pool of
 * their own. Node numbers are array indices; the pool does no allocation
 * bookkeeping, it only keeps the link arrays large enough.
 */
export class RbPool implements RbLinks {
  tree: Int32Array;
  parent: Int32Array;
  color: Uint8Array;

  constructor(capacity: number) {
    const n = Math.max(1, Math.floor(capacity));
    this.tree = new Int32Array(n * RB_STRIDE).fill(RB_NIL);
    this.parent = new Int32Array(n).fill(RB_NIL);
    this.color = new Uint8Array(n).fill(RB_BLACK);
  }

  /** Node slots available: indices 0 .. capacity - 1. */
  get capacity(): number {
    return this.parent.length;
  }

  /** Make room for at least `minCapacity` nodes (doubling, so repeated growth is amortised O(1)); existing links are kept. */
  grow(minCapacity: number): void {
    const old = this.parent.length;
    if (minCapacity <= old) return;
    let n = old * 2;
    while (n < minCapacity) n *= 2;
    this.tree = growInt32(this.tree, n * RB_STRIDE);
    this.parent = growInt32(this.parent, n);
    const color = new Uint8Array(n).fill(RB_BLACK);
    color.set(this.color);
    this.color = color;
  }
}

function growInt32(old: Int32Array, n: number): Int32Array {
  const next = new Int32Array(n).fill(RB_NIL);
  next.set(old);
  return next;
}
