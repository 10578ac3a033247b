/**
 * The placement planner: which host each source should run on so that the
 * fleet's total KSM saving is highest, with every host's resident pages
 * within its memory and pinned sources where they are.
 *
 * Method: greedy construction, then local search, then relabelling.
 * - Greedy: pinned sources stay; then host after host (those with pinned
 *   sources first, then the largest), the host is filled with the unplaced
 *   source whose pages it already holds most of (the largest when none
 *   overlaps), while one fits.
 * - Local search: for each source, a move to a host holding most of its
 *   contents, or a swap with that host's least-overlapping source, whenever
 *   it raises the total; rounds until none does (at most `rounds`).
 * - Relabelling: hosts alike (memory, settings, nothing pinned) are
 *   interchangeable, so each planned set of sources is given the host that
 *   already runs most of them: the same saving with fewer moves.
 * The objective is each host's general_profit under its own max_page_sharing
 * and use_zero_pages (one KSM page per up to max_page_sharing sharers).
 */
import { PAGE_BYTES, RMAP_ITEM_BYTES, sharingOf } from '../estimate/model.ts';

export interface PlanHost {
  readonly name: string;
  readonly memoryPages: number;
  readonly maxPageSharing: number;
  readonly useZeroPages: boolean;
}

export interface PlanSource {
  readonly host: number;
  readonly pinned: boolean;
  readonly totalPages: number;
  readonly zeroPages: number;
  /** Content indices (dense, fleet-wide), their page counts, and whether ksmd could merge them alone. */
  readonly contents: Int32Array;
  readonly pages: Float64Array;
  readonly mergeable: Uint8Array;
  /** Pages each kept content stands for (the sample's 1 in N; 1 for the zero page). */
  readonly weight: Float64Array;
  /** The index of the zero page among `contents`, or −1. */
  readonly zeroAt: number;
}

export interface Plan {
  readonly placement: Int32Array;
  readonly profitBytes: number;
  readonly method: string;
}

interface Cell {
  n: number;
  entries: number;
  mergeable: number;
}

/** One host's contents as the planner sees them. */
class HostState {
  readonly cells = new Map<number, Cell>();
  usedPages = 0;
  /** Σ sharing × weight over contents (zero page excluded under use_zero_pages). */
  sharing = 0;
  zeroPages = 0;
  totalPages = 0;
  constructor(readonly host: PlanHost) {}

  private f(c: Cell | undefined): number {
    if (c === undefined || c.n < 2 || (c.mergeable === 0 && c.entries < 2)) return 0;
    return sharingOf(c.n, this.host.maxPageSharing).sharing;
  }

  profit(): number {
    const zero = this.host.useZeroPages ? this.zeroPages : 0;
    return (this.sharing + zero) * PAGE_BYTES - (this.totalPages - zero) * RMAP_ITEM_BYTES;
  }

  /** Adds (sign 1) or removes (sign −1) a source. */
  apply(s: PlanSource, sign: 1 | -1): void {
    this.usedPages += sign * s.totalPages;
    this.totalPages += sign * s.totalPages;
    this.zeroPages += sign * s.zeroPages;
    for (let i = 0; i < s.contents.length; i++) {
      if (i === s.zeroAt && this.host.useZeroPages) continue;
      const key = s.contents[i]!;
      let c = this.cells.get(key);
      const before = this.f(c);
      if (c === undefined) {
        c = { n: 0, entries: 0, mergeable: 0 };
        this.cells.set(key, c);
      }
      c.n += sign * s.pages[i]!;
      c.entries += sign;
      c.mergeable += sign * s.mergeable[i]!;
      const after = this.f(c);
      if (c.entries === 0) this.cells.delete(key);
      this.sharing += (after - before) * s.weight[i]!;
    }
  }

  fits(s: PlanSource, freedPages = 0): boolean {
    return this.usedPages - freedPages + s.totalPages <= this.host.memoryPages;
  }
}

export interface PlanOptions {
  readonly rounds?: number;
}

export function planPlacement(
  hosts: readonly PlanHost[],
  sources: readonly PlanSource[],
  options: PlanOptions = {},
): Plan {
  const states = hosts.map((h) => new HostState(h));
  const placement = new Int32Array(sources.length).fill(-1);
  // content → host → sources holding it there: where a source could share.
  const holders = new Map<number, Map<number, number>>();
  const members = hosts.map(() => new Set<number>());
  const shared = sharedContents(sources);
  const place = (i: number, h: number): void => {
    const s = sources[i]!;
    states[h]!.apply(s, 1);
    placement[i] = h;
    members[h]!.add(i);
    for (let k = 0; k < s.contents.length; k++) {
      if (k === s.zeroAt || !shared.has(s.contents[k]!)) continue;
      let m = holders.get(s.contents[k]!);
      if (m === undefined) {
        m = new Map();
        holders.set(s.contents[k]!, m);
      }
      m.set(h, (m.get(h) ?? 0) + 1);
    }
  };
  const unplace = (i: number): void => {
    const s = sources[i]!;
    const h = placement[i]!;
    states[h]!.apply(s, -1);
    members[h]!.delete(i);
    placement[i] = -1;
    for (let k = 0; k < s.contents.length; k++) {
      const m = holders.get(s.contents[k]!);
      if (m === undefined) continue;
      const n = (m.get(h) ?? 0) - 1;
      if (n > 0) m.set(h, n);
      else m.delete(h);
    }
  };
  /**
   * Pages of source i whose content host h holds (not counting i itself), on
   * at most PROBE of its contents evenly spaced (content indices follow the
   * fingerprint order, so the probe is a fair sample): a cheap guide to where
   * i shares, the exact gain is computed for the few hosts it names.
   */
  const overlap = (i: number, h: number): number => {
    const s = sources[i]!;
    const stride = Math.max(1, Math.ceil(s.contents.length / PROBE));
    let pages = 0;
    for (let k = 0; k < s.contents.length; k += stride) {
      if (k === s.zeroAt) continue;
      const n = holders.get(s.contents[k]!)?.get(h) ?? 0;
      if (n > (placement[i] === h ? 1 : 0)) pages += s.pages[k]! * s.weight[k]!;
    }
    return pages;
  };
  /** The hosts where source i overlaps most (at most `limit`), best first. */
  const candidates = (i: number, limit: number): number[] => {
    const s = sources[i]!;
    const stride = Math.max(1, Math.ceil(s.contents.length / PROBE));
    const seen = new Set<number>();
    for (let k = 0; k < s.contents.length; k += stride) {
      if (k === s.zeroAt) continue;
      for (const h of holders.get(s.contents[k]!)?.keys() ?? []) seen.add(h);
    }
    return [...seen]
      .map((h) => ({ h, o: overlap(i, h) }))
      .sort((a, b) => b.o - a.o || a.h - b.h)
      .slice(0, limit)
      .map((c) => c.h);
  };

  // Greedy: host after host, each filled with the unplaced sources that overlap most with what it holds.
  sources.forEach((s, i) => {
    if (s.pinned) place(i, s.host);
  });
  const order = sources
    .map((_, i) => i)
    .filter((i) => !sources[i]!.pinned)
    .sort((a, b) => sources[b]!.totalPages - sources[a]!.totalPages || a - b);
  fillHosts(states, sources, order, shared, place);
  // Local search: moves and swaps towards the hosts a source overlaps most.
  const rounds = options.rounds ?? 8;
  let roundsRun = 0;
  for (let round = 0; round < rounds; round++) {
    roundsRun++;
    let improved = false;
    for (const i of order) {
      const a = placement[i]!;
      for (const b of candidates(i, CANDIDATES)) {
        if (b === a) continue;
        const before = states[a]!.profit() + states[b]!.profit();
        let partner = -1;
        if (!states[b]!.fits(sources[i]!)) {
          // The source of b that overlaps least with b, if the two fit each other's host.
          let least = Number.POSITIVE_INFINITY;
          for (const j of members[b]!) {
            if (sources[j]!.pinned) continue;
            if (!states[b]!.fits(sources[i]!, sources[j]!.totalPages)) continue;
            if (!states[a]!.fits(sources[j]!, sources[i]!.totalPages)) continue;
            const o = overlap(j, b);
            if (o < least) {
              least = o;
              partner = j;
            }
          }
          if (partner < 0) continue;
          unplace(partner);
        }
        unplace(i);
        place(i, b);
        if (partner >= 0) place(partner, a);
        if (states[a]!.profit() + states[b]!.profit() > before + 1e-6) {
          improved = true;
          break;
        }
        unplace(i);
        if (partner >= 0) unplace(partner);
        place(i, a);
        if (partner >= 0) place(partner, b);
      }
    }
    if (!improved) break;
  }

  const relabelled = relabel(hosts, sources, placement);
  return {
    placement: relabelled,
    profitBytes: states.reduce((sum, st) => sum + st.profit(), 0),
    method:
      'greedy (host after host, filled with the sources overlapping most with what it holds) then local search ' +
      `(moves, or swaps with the destination's least-overlapping source, while the total rises: ${roundsRun} of at ` +
      `most ${rounds} rounds), then interchangeable hosts relabelled to keep sources where they are`,
  };
}

/** Hosts tried per source: those holding most of its contents. */
const CANDIDATES = 4;

/** Contents of a source looked up to rank hosts for it. */
const PROBE = 64;

/** Contents held by two sources or more: only these can make a source prefer one host to another. */
function sharedContents(sources: readonly PlanSource[]): Set<number> {
  const seen = new Set<number>();
  const shared = new Set<number>();
  for (const s of sources)
    for (let k = 0; k < s.contents.length; k++) {
      const c = s.contents[k]!;
      if (seen.has(c)) shared.add(c);
      else seen.add(c);
    }
  return shared;
}

/** Gives each planned set of sources on interchangeable hosts the host that already runs most of them. */
function relabel(
  hosts: readonly PlanHost[],
  sources: readonly PlanSource[],
  placement: Int32Array,
): Int32Array {
  const pinnedOn = new Set(sources.filter((s) => s.pinned).map((s) => s.host));
  const classes = new Map<string, number[]>();
  hosts.forEach((h, i) => {
    if (pinnedOn.has(i)) return;
    const key = `${h.memoryPages}/${h.maxPageSharing}/${h.useZeroPages}`;
    classes.set(key, [...(classes.get(key) ?? []), i]);
  });
  const map = hosts.map((_, i) => i);
  for (const members of classes.values()) {
    if (members.length < 2) continue;
    const inClass = new Set(members);
    // (planned bin, current host) → sources in common, largest first.
    const common = new Map<number, number>();
    sources.forEach((s, i) => {
      const bin = placement[i]!;
      if (inClass.has(bin) && inClass.has(s.host)) {
        const key = bin * hosts.length + s.host;
        common.set(key, (common.get(key) ?? 0) + 1);
      }
    });
    const pairs = [...common].sort((x, y) => y[1] - x[1] || x[0] - y[0]);
    const binTaken = new Set<number>();
    const hostTaken = new Set<number>();
    for (const [key] of pairs) {
      const bin = Math.floor(key / hosts.length);
      const host = key % hosts.length;
      if (binTaken.has(bin) || hostTaken.has(host)) continue;
      map[bin] = host;
      binTaken.add(bin);
      hostTaken.add(host);
    }
    const freeHosts = members.filter((h) => !hostTaken.has(h));
    for (const bin of members) if (!binTaken.has(bin)) map[bin] = freeHosts.shift()!;
  }
  return placement.map((h) => map[h]!);
}

/**
 * The greedy construction. Overlap scores are kept incrementally: when a
 * content first appears on the host being filled, every unplaced source
 * holding it scores its pages of it (an inverted index content → sources).
 */
function fillHosts(
  states: readonly HostState[],
  sources: readonly PlanSource[],
  order: readonly number[],
  shared: ReadonlySet<number>,
  place: (i: number, h: number) => void,
): void {
  const holding = new Map<number, { source: number; pages: number }[]>();
  for (const i of order) {
    const s = sources[i]!;
    for (let k = 0; k < s.contents.length; k++) {
      const c = s.contents[k]!;
      if (k === s.zeroAt || !shared.has(c)) continue;
      let list = holding.get(c);
      if (list === undefined) {
        list = [];
        holding.set(c, list);
      }
      list.push({ source: i, pages: s.pages[k]! * s.weight[k]! });
    }
  }
  const unplaced = new Set(order);
  const hostOrder = states
    .map((st, h) => ({ h, pinned: st.usedPages > 0, memory: st.host.memoryPages }))
    .sort((a, b) => Number(b.pinned) - Number(a.pinned) || b.memory - a.memory || a.h - b.h)
    .map((x) => x.h);
  for (const h of hostOrder) {
    const st = states[h]!;
    const score = new Map<number, number>();
    const present = new Set<number>();
    const admit = (i: number): void => {
      const s = sources[i]!;
      for (let k = 0; k < s.contents.length; k++) {
        const c = s.contents[k]!;
        if (present.has(c)) continue;
        present.add(c);
        for (const e of holding.get(c) ?? [])
          if (unplaced.has(e.source)) score.set(e.source, (score.get(e.source) ?? 0) + e.pages);
      }
    };
    for (const i of sources.keys()) if (sources[i]!.pinned && sources[i]!.host === h) admit(i);
    for (;;) {
      let best = -1;
      let bestScore = -1;
      for (const i of unplaced) {
        if (!st.fits(sources[i]!)) continue;
        const sc = score.get(i) ?? 0;
        // order is largest first: on equal scores the first seen wins.
        if (sc > bestScore) {
          best = i;
          bestScore = sc;
        }
      }
      if (best < 0) break;
      unplaced.delete(best);
      score.delete(best);
      place(best, h);
      admit(best);
    }
  }
  // Sources no host had room for stay where they are (their host was as full before the plan).
  for (const i of unplaced) place(i, sources[i]!.host);
}
