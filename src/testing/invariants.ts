/**
 * checkInvariants(): recounts everything from first principles (page tables,
 * frames, rmap lists, stable nodes) and compares with what the engine keeps
 * incrementally. O(size of the host): for tests, never for the scan loop.
 *
 * KSM's counters are lazy by design (a COW'd KSM page still counts in
 * pages_sharing until ksmd revisits it), so the recount of SH/SG/U/Mm is over
 * KSM's own structures, while frame counts and KSM zero pages are recounted
 * from the page tables, where they are exact at every moment.
 */
import { FRAME_ANON, FRAME_KSM, FRAME_USED, ZERO_FRAME } from '../host/frames.ts';
import { PTE_KSM_ZERO } from '../host/mm.ts';
import { RB_NIL, RB_STRIDE, rbCheck } from '../ksm/rbtree.ts';
import { SEQNR_MASK, STABLE_FLAG, UNSTABLE_FLAG } from '../ksm/rmap-item.ts';
import { NODE_CHAIN, NODE_DUP, NODE_KPFN } from '../ksm/stable-node.ts';
import type { SimulatedHost } from '../surface/simulated-host.ts';

export class InvariantViolation extends Error {
  override name = 'InvariantViolation';
}

function check(condition: boolean, message: () => string): void {
  if (!condition) throw new InvariantViolation(message());
}

export function checkInvariants(sim: SimulatedHost): void {
  const { host, ksm } = sim;
  const frames = host.frames;

  // Frames: every mapping counted once, no anonymous frame alive without one.
  const mapcount = new Int32Array(frames.frameCount);
  const zeroPtesByMm = new Map<number, number>();
  let zeroPtes = 0;
  for (const mm of host.liveMms()) {
    let mine = 0;
    for (const vma of mm.vmas) {
      for (let i = 0; i < vma.pageCount; i++) {
        const pte = vma.pte[i]!;
        if (pte > 0) {
          mapcount[pte - 1]!++;
          check((frames.flags[pte - 1]! & FRAME_USED) !== 0, () => `mm ${mm.id} maps free frame ${pte - 1}`);
        } else if (pte === PTE_KSM_ZERO) mine++;
      }
    }
    zeroPtesByMm.set(mm.id, mine);
    zeroPtes += mine;
    check(
      mm.ksmZeroPages === mine,
      () => `mm ${mm.id}: ksm_zero_pages ${mm.ksmZeroPages}, page tables hold ${mine}`,
    );
  }
  check(
    ksm.ksmZeroPages === zeroPtes,
    () => `ksm_zero_pages ${ksm.ksmZeroPages}, page tables hold ${zeroPtes}`,
  );
  for (let f = ZERO_FRAME + 1; f < frames.frameCount; f++) {
    const flags = frames.flags[f]!;
    if (!(flags & FRAME_USED)) continue;
    check(
      frames.mapcount[f] === mapcount[f],
      () => `frame ${f}: mapcount ${frames.mapcount[f]}, page tables ${mapcount[f]}`,
    );
    if (flags & FRAME_ANON) {
      check(
        mapcount[f]! > 0 || frames.batchRefs[f]! > 0,
        () => `anonymous frame ${f} is allocated but unmapped`,
      );
    }
  }

  // Stable nodes: every item list consistent, SH/SG/Mm recounted.
  const nodes = ksm.nodes;
  const items = ksm.items;
  let shared = 0;
  let sharing = 0;
  let chains = 0;
  let dups = 0;
  const merging = new Map<number, number>();
  const stableItems = new Set<number>();
  const countNode = (node: number): void => {
    let len = 0;
    let prev = -1;
    for (let it = nodes.first[node]!; it >= 0; it = items.hnext[it]!) {
      check(items.hprev[it] === prev, () => `item ${it}: broken hlist back link in node ${node}`);
      check(
        items.head[it] === node && (items.flags[it]! & STABLE_FLAG) !== 0,
        () => `item ${it} listed in node ${node} is not stable there`,
      );
      stableItems.add(it);
      const mmId = items.slot[it]!;
      merging.set(mmId, (merging.get(mmId) ?? 0) + 1);
      prev = it;
      len++;
    }
    check(
      nodes.rmapHlistLen[node] === len,
      () => `node ${node}: rmap_hlist_len ${nodes.rmapHlistLen[node]}, list holds ${len}`,
    );
    if (len > 0) {
      shared++;
      sharing += len - 1;
    }
    const kpfn = nodes.tree[node * RB_STRIDE + NODE_KPFN]!;
    // A live KSM page points back at its node; a freed one left the node stale (dropped on lookup).
    if (frames.flags[kpfn]! & FRAME_KSM && frames.ksmNode[kpfn] === node) {
      check(
        frames.mapcount[kpfn]! > 0 || frames.batchRefs[kpfn]! > 0,
        () => `KSM page ${kpfn} of node ${node} is unmapped but not freed`,
      );
    }
  };
  const roots = ksm.stableTreeRoots();
  for (let r = 0; r < roots.length; r++) {
    rbCheck(nodes, roots[r]!);
    const walk = (node: number): void => {
      if (node === RB_NIL) return;
      walk(nodes.tree[node * RB_STRIDE]!);
      if (nodes.kind[node] === NODE_CHAIN) {
        chains++;
        let prev = -1;
        for (let dup = nodes.first[node]!; dup >= 0; dup = nodes.dupNext[dup]!) {
          check(
            nodes.kind[dup] === NODE_DUP && nodes.chain[dup] === node,
            () => `dup ${dup} not linked to chain ${node}`,
          );
          check(nodes.dupPrev[dup] === prev, () => `dup ${dup}: broken back link`);
          prev = dup;
          dups++;
          countNode(dup);
        }
      } else countNode(node);
      walk(nodes.tree[node * RB_STRIDE + 1]!);
    };
    walk(roots[r]!);
  }
  check(ksm.pagesShared === shared, () => `pages_shared ${ksm.pagesShared}, recount ${shared}`);
  check(ksm.pagesSharing === sharing, () => `pages_sharing ${ksm.pagesSharing}, recount ${sharing}`);
  check(
    ksm.stableNodeChains === chains,
    () => `stable_node_chains ${ksm.stableNodeChains}, recount ${chains}`,
  );
  check(ksm.stableNodeDups === dups, () => `stable_node_dups ${ksm.stableNodeDups}, recount ${dups}`);
  // Every live KSM page with mappings has its node in the tree.
  for (let f = ZERO_FRAME + 1; f < frames.frameCount; f++) {
    if (frames.flags[f]! & FRAME_KSM && frames.mapcount[f]! > 0) {
      const node = frames.ksmNode[f]!;
      check(
        node >= 0 && nodes.tree[node * RB_STRIDE + NODE_KPFN] === f,
        () => `KSM page ${f} has no stable node pointing back`,
      );
    }
  }

  // rmap items: sorted lists, per-mm counts, unstable counts.
  let totalItems = 0;
  let unshared = 0;
  const mms = [...ksm.registeredMms()];
  for (const mm of mms) {
    const list = ksm.rmapItemsOf(mm);
    let last = -1;
    let mine = 0;
    let slotIndex = -1;
    for (const it of list) {
      check(items.vpn[it]! > last, () => `mm ${mm.id}: rmap list not sorted at item ${it}`);
      last = items.vpn[it]!;
      const flags = items.flags[it]!;
      check(!(flags & STABLE_FLAG && flags & UNSTABLE_FLAG), () => `item ${it} is both stable and unstable`);
      if (flags & STABLE_FLAG) check(stableItems.has(it), () => `stable item ${it} is in no node's list`);
      if (flags & UNSTABLE_FLAG) {
        unshared++;
        const age = (ksm.seqnr - (flags & SEQNR_MASK)) & 0xff;
        check(age <= 1, () => `unstable item ${it} is ${age} passes old`);
      } else check((flags & SEQNR_MASK) === 0, () => `item ${it} keeps seqnr bits outside the unstable tree`);
      slotIndex = items.slot[it]!;
      mine++;
    }
    totalItems += mine;
    check(
      mm.ksmRmapItems === mine,
      () => `mm ${mm.id}: ksm_rmap_items ${mm.ksmRmapItems}, list holds ${mine}`,
    );
    const mergingHere = slotIndex >= 0 ? (merging.get(slotIndex) ?? 0) : 0;
    check(
      mm.ksmMergingPages === mergingHere,
      () => `mm ${mm.id}: ksm_merging_pages ${mm.ksmMergingPages}, stable items ${mergingHere}`,
    );
  }
  for (const mm of host.liveMms()) {
    if (ksm.isRegistered(mm)) continue;
    check(
      mm.ksmRmapItems === 0 && mm.ksmMergingPages === 0,
      () => `unregistered mm ${mm.id} still counts items`,
    );
  }
  check(ksm.rmapItems === totalItems, () => `rmap items ${ksm.rmapItems}, lists hold ${totalItems}`);
  check(
    items.live === totalItems,
    () => `rmap item pool holds ${items.live} live items, lists ${totalItems}`,
  );
  check(ksm.pagesUnshared === unshared, () => `pages_unshared ${ksm.pagesUnshared}, recount ${unshared}`);
  check(
    sim.counter('pages_volatile') === Math.max(0, totalItems - shared - sharing - unshared),
    () => 'pages_volatile formula',
  );
}
