/**
 * The lib/rbtree.c port: random insert/erase/replace sequences against a
 * sorted-btree oracle (order, invariants, several roots in one array), and
 * exact shapes worked out by hand from the kernel's code, case by case.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import BTreeModule from 'sorted-btree';
import {
  RB_BLACK,
  RB_NIL,
  RB_RED,
  RB_STRIDE,
  RbPool,
  type RbRoots,
  rbCheck,
  rbClearNode,
  rbErase,
  rbFirst,
  rbInsertColor,
  rbIsEmptyNode,
  rbLast,
  rbLinkNode,
  rbNext,
  rbPrev,
  rbReplaceNode,
} from './rbtree.ts';

const BTree = BTreeModule.default;

/** Integer-keyed trees over one RbPool, inserted with the kernel's walk-then-link pattern. */
class Forest {
  readonly pool = new RbPool(4);
  readonly roots: RbRoots;
  readonly keys: number[] = [];
  private readonly freeNodes: number[] = [];
  private nextNode = 0;

  constructor(trees: number) {
    this.roots = new Int32Array(trees).fill(RB_NIL);
  }

  alloc(key: number): number {
    const n = this.freeNodes.pop() ?? this.nextNode++;
    this.pool.grow(n + 1);
    this.keys[n] = key;
    return n;
  }

  find(tree: number, key: number): number {
    const links = this.pool.tree;
    let n = this.roots[tree]!;
    while (n !== RB_NIL && this.keys[n] !== key) n = links[n * RB_STRIDE + (key < this.keys[n]! ? 0 : 1)]!;
    return n;
  }

  /** Insert unless present (KSM's search-or-insert); returns the new node or RB_NIL. */
  insert(tree: number, key: number): number {
    let parent = RB_NIL;
    let goLeft = false;
    for (let n = this.roots[tree]!; n !== RB_NIL; ) {
      const k = this.keys[n]!;
      if (k === key) return RB_NIL;
      parent = n;
      goLeft = key < k;
      n = this.pool.tree[n * RB_STRIDE + (goLeft ? 0 : 1)]!;
    }
    const node = this.alloc(key);
    rbLinkNode(this.pool, node, parent, goLeft);
    if (parent === RB_NIL) this.roots[tree] = node;
    rbInsertColor(this.pool, this.roots, tree, node);
    return node;
  }

  erase(tree: number, key: number): boolean {
    const n = this.find(tree, key);
    if (n === RB_NIL) return false;
    rbErase(this.pool, this.roots, tree, n);
    this.freeNodes.push(n);
    return true;
  }

  /** Swap the node holding `key` for a fresh node with the same key. */
  replace(tree: number, key: number): boolean {
    const victim = this.find(tree, key);
    if (victim === RB_NIL) return false;
    const replacement = this.alloc(key);
    rbReplaceNode(this.pool, this.roots, tree, victim, replacement);
    this.freeNodes.push(victim);
    return true;
  }

  inOrder(tree: number): number[] {
    const out: number[] = [];
    for (let n = rbFirst(this.pool, this.roots[tree]!); n !== RB_NIL; n = rbNext(this.pool, n))
      out.push(this.keys[n]!);
    return out;
  }

  reverseOrder(tree: number): number[] {
    const out: number[] = [];
    for (let n = rbLast(this.pool, this.roots[tree]!); n !== RB_NIL; n = rbPrev(this.pool, n))
      out.push(this.keys[n]!);
    return out;
  }

  /** "key colour(left,right)", B black, r red, - for no child; leaves print without parentheses. */
  shape(tree: number): string {
    const { tree: links, color } = this.pool;
    const show = (n: number): string => {
      if (n === RB_NIL) return '-';
      const self = `${this.keys[n]}${color[n] === RB_BLACK ? 'B' : 'r'}`;
      const l = links[n * RB_STRIDE]!;
      const r = links[n * RB_STRIDE + 1]!;
      return l === RB_NIL && r === RB_NIL ? self : `${self}(${show(l)},${show(r)})`;
    };
    return show(this.roots[tree]!);
  }
}

type Op = { op: 'ins' | 'del' | 'rep'; tree: number; key: number };

function opArb(trees: number, maxKey: number): fc.Arbitrary<Op> {
  return fc.record({
    op: fc.constantFrom<Op['op']>('ins', 'ins', 'ins', 'del', 'del', 'rep'),
    tree: fc.integer({ min: 0, max: trees - 1 }),
    key: fc.integer({ min: 0, max: maxKey }),
  });
}

/** Run `ops` on a Forest and on one BTree per tree, checking every tree after every op. */
function replay(trees: number, ops: readonly Op[]): void {
  const forest = new Forest(trees);
  const oracles = Array.from({ length: trees }, () => new BTree<number, true>());
  for (const { op, tree, key } of ops) {
    const oracle = oracles[tree]!;
    if (op === 'ins') {
      assert.equal(forest.insert(tree, key) !== RB_NIL, oracle.set(key, true, false));
    } else if (op === 'del') {
      assert.equal(forest.erase(tree, key), oracle.delete(key));
    } else {
      const before = forest.shape(tree);
      assert.equal(forest.replace(tree, key), oracle.has(key));
      assert.equal(forest.shape(tree), before, 'rbReplaceNode must not change the shape');
    }
    let total = 0;
    for (let t = 0; t < trees; t++) {
      rbCheck(forest.pool, forest.roots[t]!);
      const keys = oracles[t]!.keysArray();
      assert.deepEqual(forest.inOrder(t), keys);
      assert.deepEqual(forest.reverseOrder(t), keys.reverse());
      total += keys.length;
    }
    // Every live node is in exactly one tree: the trees' sizes add up to the
    // nodes handed out and not freed.
    let live = 0;
    for (let t = 0; t < trees; t++) {
      for (let n = rbFirst(forest.pool, forest.roots[t]!); n !== RB_NIL; n = rbNext(forest.pool, n)) live++;
    }
    assert.equal(live, total);
  }
}

describe('rbtree against a sorted-btree oracle', () => {
  test('random insert/erase/replace on one tree keeps order and every invariant', () => {
    fc.assert(
      fc.property(fc.array(opArb(1, 40), { maxLength: 400, size: 'max' }), (ops) => replay(1, ops)),
      { numRuns: 200 },
    );
  });

  test('wide key range, long sequences', () => {
    fc.assert(
      fc.property(fc.array(opArb(1, 100_000), { minLength: 200, maxLength: 1500, size: 'max' }), (ops) =>
        replay(1, ops),
      ),
      { numRuns: 30 },
    );
  });

  test('several roots in one roots array stay independent', () => {
    fc.assert(
      fc.property(fc.array(opArb(3, 30), { maxLength: 500, size: 'max' }), (ops) => replay(3, ops)),
      { numRuns: 100 },
    );
  });

  test('a grow-then-drain run of 20k keys (xorshift order) stays valid at checkpoints', () => {
    const forest = new Forest(1);
    const oracle = new BTree<number, true>();
    let x = 0x9e3779b9;
    const rand = (): number => {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      return (x >>> 0) % 50_000;
    };
    for (let i = 0; i < 40_000; i++) {
      const key = rand();
      // Mostly inserts in the first half, mostly erases in the second.
      const insert = i < 20_000 ? i % 4 !== 0 : i % 4 === 0;
      if (insert) assert.equal(forest.insert(0, key) !== RB_NIL, oracle.set(key, true, false));
      else assert.equal(forest.erase(0, key), oracle.delete(key));
      if (i % 2000 === 1999) {
        rbCheck(forest.pool, forest.roots[0]!);
        assert.deepEqual(forest.inOrder(0), oracle.keysArray());
      }
    }
  });
});

describe('kernel shapes, derived by hand from lib/rbtree.c', () => {
  const build = (keys: readonly number[]): Forest => {
    const f = new Forest(1);
    for (const k of keys) f.insert(0, k);
    rbCheck(f.pool, f.roots[0]!);
    return f;
  };

  test('ascending inserts 1..7: case 3 at 3, case 1 flip to the root at 4, case 3 at 5, flip at 6, case 3 at 7', () => {
    const f = new Forest(1);
    const expected = [
      '1B', // first node: blackened as the root
      '1B(-,2r)', // black parent: nothing to do
      '2B(1r,3r)', // red parent, no uncle, outer child: rotate left at 1
      '2B(1B,3B(-,4r))', // red uncle 1: flip, 2 goes red, then black as the root
      '2B(1B,4B(3r,5r))', // no uncle: rotate left at 3
      '2B(1B,4r(3B,5B(-,6r)))', // red uncle 3: flip, 4 red under black 2
      '2B(1B,4r(3B,6B(5r,7r)))', // no uncle: rotate left at 5
    ];
    for (let k = 1; k <= 7; k++) {
      f.insert(0, k);
      rbCheck(f.pool, f.roots[0]!);
      assert.equal(f.shape(0), expected[k - 1], `after inserting ${k}`);
    }
  });

  test('descending inserts 7..1 give the mirror image', () => {
    assert.equal(build([7, 6, 5, 4, 3, 2, 1]).shape(0), '6B(4r(2B(1r,3r),5B),7B)');
  });

  test('inner-child insert: case 2 rotates at the parent, then case 3 at the grandparent', () => {
    // 3 then 1 then 2: 2 is the right child of red 1 under 3, with no uncle.
    assert.equal(build([3, 1, 2]).shape(0), '2B(1r,3r)');
    assert.equal(build([1, 3, 2]).shape(0), '2B(1r,3r)');
  });

  test('erasing a node with two children: a deeper successor takes its place, links and colour', () => {
    const f = build([1, 2, 3, 4, 5, 6, 7]);
    // 4 (red) has children 3 and 6; its successor 5 is the leftmost under 6.
    // 5 moves into 4's place and turns red; 5 was a red leaf, so no rebalance.
    f.erase(0, 4);
    rbCheck(f.pool, f.roots[0]!);
    assert.equal(f.shape(0), '2B(1B,5r(3B,6B(-,7r)))');
  });

  test('erasing a node whose successor is its right child', () => {
    const f = build([1, 2, 3, 4, 5, 6, 7]);
    // 6 (black) has children 5 and 7; 7 has no left child, so it is the
    // successor: it adopts 5 and takes 6's black. 7 was red: no rebalance.
    f.erase(0, 6);
    rbCheck(f.pool, f.roots[0]!);
    assert.equal(f.shape(0), '2B(1B,4r(3B,7B(5r,-)))');
  });

  test('erasing the root: a black successor leaves a deficit fixed by erase-colour case 4', () => {
    const f = build([1, 2, 3, 4, 5, 6, 7]);
    // Successor of 2 is 3 (black leaf under red 4): 3 becomes the black root,
    // 4 is left one black short on its left; its sibling 6 has red outer
    // child 7, so case 4 rotates left at 4: 6 takes 4's red, 4 and 7 turn black.
    f.erase(0, 2);
    rbCheck(f.pool, f.roots[0]!);
    assert.equal(f.shape(0), '3B(1B,6r(4B(-,5r),7B))');
    assert.equal(f.roots[0], f.find(0, 3));
  });

  test('erasing a black leaf with a red sibling: case 1 rotation, then case 2 recolour', () => {
    const f = build([1, 2, 3, 4, 5, 6, 7]);
    // 1 is a black leaf; its sibling 4 is red: rotate left at 2 (4 becomes the
    // black root, 2 red), the new sibling 3 has no children so it turns red
    // and red 2 turns black.
    f.erase(0, 1);
    rbCheck(f.pool, f.roots[0]!);
    assert.equal(f.shape(0), '4B(2B(-,3r),6B(5r,7r))');
  });

  test('erasing a black leaf whose sibling has only an inner red child: case 3 then case 4', () => {
    const f = build([2, 1, 4, 3]);
    assert.equal(f.shape(0), '2B(1B,4B(3r,-))');
    f.erase(0, 1);
    rbCheck(f.pool, f.roots[0]!);
    assert.equal(f.shape(0), '3B(2B,4B)');
  });

  test('erasing a node with one child: the red child takes its place and colour', () => {
    const f = build([2, 1, 4, 3]);
    f.erase(0, 4);
    rbCheck(f.pool, f.roots[0]!);
    assert.equal(f.shape(0), '2B(1B,3B)');
  });

  test('erase-colour case 2 recurses to the root when everything is black', () => {
    // 2B(1B,4r(3B,6B(5r,7r))) minus 5 and 7 leaves 2B(1B,4r(3B,6B)).
    const f = build([1, 2, 3, 4, 5, 6, 7]);
    f.erase(0, 5);
    f.erase(0, 7);
    assert.equal(f.shape(0), '2B(1B,4r(3B,6B))');
    // Erasing 3: sibling 6 is black with no children: 6 turns red, red 4 turns black.
    f.erase(0, 3);
    rbCheck(f.pool, f.roots[0]!);
    assert.equal(f.shape(0), '2B(1B,4B(-,6r))');
    // Now 2B(1B,4B(-,6r)): erase 6 (red leaf, no rebalance), then 1: sibling 4
    // is black with no children: it turns red and the deficit reaches the root.
    f.erase(0, 6);
    f.erase(0, 1);
    rbCheck(f.pool, f.roots[0]!);
    assert.equal(f.shape(0), '2B(-,4r)');
  });

  test('erasing down to empty clears the root', () => {
    const f = build([1, 2, 3]);
    for (const k of [2, 1, 3]) f.erase(0, k);
    assert.equal(f.roots[0], RB_NIL);
    assert.equal(rbFirst(f.pool, RB_NIL), RB_NIL);
    assert.equal(rbLast(f.pool, RB_NIL), RB_NIL);
  });

  test('two trees in one roots array keep their own shapes', () => {
    const f = new Forest(2);
    for (let k = 1; k <= 7; k++) {
      f.insert(0, k);
      f.insert(1, 8 - k);
    }
    assert.equal(f.shape(0), '2B(1B,4r(3B,6B(5r,7r)))');
    assert.equal(f.shape(1), '6B(4r(2B(1r,3r),5B),7B)');
    f.erase(1, 6);
    assert.equal(f.shape(0), '2B(1B,4r(3B,6B(5r,7r)))');
    rbCheck(f.pool, f.roots[1]!);
  });
});

describe('rbReplaceNode', () => {
  test('an inner node and the root can be replaced without changing the shape', () => {
    const f = new Forest(1);
    for (let k = 1; k <= 7; k++) f.insert(0, k);
    const oldFour = f.find(0, 4);
    assert.ok(f.replace(0, 4));
    assert.notEqual(f.find(0, 4), oldFour);
    const oldRoot = f.roots[0]!;
    assert.ok(f.replace(0, 2));
    assert.notEqual(f.roots[0], oldRoot);
    assert.equal(f.roots[0], f.find(0, 2));
    rbCheck(f.pool, f.roots[0]!);
    assert.equal(f.shape(0), '2B(1B,4r(3B,6B(5r,7r)))');
    assert.deepEqual(f.inOrder(0), [1, 2, 3, 4, 5, 6, 7]);
  });

  test('the replacement takes the victim colour', () => {
    const f = new Forest(1);
    for (let k = 1; k <= 7; k++) f.insert(0, k);
    const n = f.alloc(5);
    f.pool.color[n] = RB_BLACK; // whatever it held before
    rbReplaceNode(f.pool, f.roots, 0, f.find(0, 5), n);
    assert.equal(f.pool.color[n], RB_RED);
    rbCheck(f.pool, f.roots[0]!);
  });
});

describe('helpers', () => {
  test('rbLinkNode resets a reused node and hangs it on the chosen side', () => {
    const pool = new RbPool(4);
    pool.tree[1 * RB_STRIDE] = 3;
    pool.tree[1 * RB_STRIDE + 1] = 2;
    pool.color[1] = RB_BLACK;
    rbLinkNode(pool, 1, 0, true);
    assert.equal(pool.tree[0 * RB_STRIDE], 1);
    assert.equal(pool.parent[1], 0);
    assert.equal(pool.tree[1 * RB_STRIDE], RB_NIL);
    assert.equal(pool.tree[1 * RB_STRIDE + 1], RB_NIL);
    assert.equal(pool.color[1], RB_RED);
    rbLinkNode(pool, 2, 0, false);
    assert.equal(pool.tree[0 * RB_STRIDE + 1], 2);
    // No parent: nothing but the node itself is written.
    const before = Array.from(pool.tree);
    rbLinkNode(pool, 3, RB_NIL, true);
    assert.equal(pool.parent[3], RB_NIL);
    assert.deepEqual(Array.from(pool.tree), before);
  });

  test('a cleared node has no neighbours', () => {
    const f = new Forest(1);
    for (let k = 1; k <= 3; k++) f.insert(0, k);
    const two = f.find(0, 2);
    rbErase(f.pool, f.roots, 0, two);
    assert.equal(rbIsEmptyNode(f.pool, two), false);
    rbClearNode(f.pool, two);
    assert.ok(rbIsEmptyNode(f.pool, two));
    assert.equal(rbNext(f.pool, two), RB_NIL);
    assert.equal(rbPrev(f.pool, two), RB_NIL);
  });

  test('RbPool.grow keeps links and replaces the arrays', () => {
    const f = new Forest(1);
    for (let k = 0; k < 3; k++) f.insert(0, k);
    const oldTree = f.pool.tree;
    for (let k = 3; k < 100; k++) f.insert(0, k);
    assert.notEqual(f.pool.tree, oldTree);
    assert.ok(f.pool.capacity >= 100);
    rbCheck(f.pool, f.roots[0]!);
    assert.deepEqual(
      f.inOrder(0),
      Array.from({ length: 100 }, (_, i) => i),
    );
    const cap = f.pool.capacity;
    f.pool.grow(cap);
    assert.equal(f.pool.capacity, cap);
  });

  test('rbCheck rejects broken trees', () => {
    const f = new Forest(1);
    for (let k = 1; k <= 7; k++) f.insert(0, k);
    const { pool } = f;
    const root = f.roots[0]!;
    const four = f.find(0, 4);
    const six = f.find(0, 6);
    const five = f.find(0, 5);
    const mutate = (fn: () => void, message: RegExp): void => {
      const saved = [pool.tree.slice(), pool.parent.slice(), pool.color.slice()] as const;
      fn();
      assert.throws(() => rbCheck(pool, root), message);
      pool.tree.set(saved[0]);
      pool.parent.set(saved[1]);
      pool.color.set(saved[2]);
      rbCheck(pool, root);
    };
    mutate(() => {
      pool.color[root] = RB_RED;
    }, /not black/);
    mutate(() => {
      pool.color[six] = RB_RED;
    }, /red node .* red child/);
    mutate(() => {
      pool.color[five] = RB_BLACK;
    }, /black height/);
    mutate(() => {
      pool.parent[six] = root;
    }, /parent link/);
    mutate(() => {
      pool.parent[root] = four;
    }, /has parent/);
    mutate(() => {
      pool.tree[six * RB_STRIDE] = pool.tree[six * RB_STRIDE + 1]!;
    }, /both children/);
    mutate(() => {
      pool.tree[six * RB_STRIDE + 1] = 1000;
    }, /not a node number/);
  });
});
