/**
 * From counted contents to the figures KSM would reach: globally, per source
 * alone, per source within the whole set, and per pair of sources.
 */
import { type ContentTable, EntryList } from './content-table.ts';
import { generalProfit, processProfit, sharingOf } from './model.ts';

export interface SummaryInput {
  readonly table: ContentTable;
  readonly sourceCount: number;
  /** The content id of the all-zero page, or −1 when none was seen. */
  readonly zeroContent: number;
  readonly maxPageSharing: number;
  readonly useZeroPages: boolean;
  /** Whether the page at this frame is already a KSM page (root only: /proc/kpageflags); false when unknown. */
  readonly isKsmFrame: (frame: number) => boolean;
  /**
   * Called once per content with the mappings KSM frees of it: pages_sharing
   * of its KSM pages, or every mapping of the zero page under use_zero_pages
   * (what estimate --compare compresses after KSM is what is left).
   */
  readonly onContent?: (id: number, freedMappings: number) => void;
}

/** What KSM would reach for a set of pages (one source, a pair, or everything). */
export interface KsmOutcome {
  readonly pages_shared: number;
  readonly pages_sharing: number;
  readonly ksm_zero_pages: number;
  /** rmap items left after convergence: every scanned page except KSM zero pages. */
  readonly rmap_items: number;
  readonly general_profit: number;
}

export interface SourceSummary {
  /** Pages ksmd would scan (present, anonymous, normal). */
  readonly examined: number;
  /** Of those, pages full of zeroes. */
  readonly zeroPages: number;
  /** Distinct contents among this source's pages. */
  readonly distinct: number;
  /** If this source ran alone under KSM. */
  readonly alone: KsmOutcome;
  /** Within the whole set: ksm_merging_pages, ksm_zero_pages, ksm_rmap_items, ksm_process_profit. */
  readonly inSet: {
    readonly ksm_merging_pages: number;
    readonly ksm_zero_pages: number;
    readonly ksm_rmap_items: number;
    readonly ksm_process_profit: number;
  };
}

export interface PairSummary {
  readonly a: number;
  readonly b: number;
  /** Pages of a whose content also appears in b, and the converse. */
  readonly aPagesFoundInB: number;
  readonly bPagesFoundInA: number;
  /** If only a and b ran under KSM. */
  readonly together: KsmOutcome;
  /** together.pages_sharing − a alone − b alone: what merging across the two adds. */
  readonly crossSharing: number;
}

export interface Summary {
  readonly examined: number;
  readonly zeroPages: number;
  readonly distinct: number;
  readonly total: KsmOutcome;
  /** Pages whose content appears in only one page. */
  readonly uniquePages: number;
  /** Pages mapped more than once at one frame (shared after fork) with no other copy: ksmd cannot merge them. */
  readonly sameFramePages: number;
  readonly sources: readonly SourceSummary[];
  /** Every pair with something in common (a < b). */
  readonly pairs: readonly PairSummary[];
}

function outcome(sharing: number, shared: number, zero: number, items: number): KsmOutcome {
  return {
    pages_shared: shared,
    pages_sharing: sharing,
    ksm_zero_pages: zero,
    rmap_items: items,
    general_profit: generalProfit(sharing, zero, items),
  };
}

export function summarize(input: SummaryInput): Summary {
  const { table, sourceCount: n, maxPageSharing: m, useZeroPages } = input;
  const ksmCache = new Map<number, boolean>();
  const isKsm = (frame: number): boolean => {
    if (frame < 0) return false;
    let v = ksmCache.get(frame);
    if (v === undefined) {
      v = input.isKsmFrame(frame);
      ksmCache.set(frame, v);
    }
    return v;
  };

  const examined = new Float64Array(n);
  const zeroPages = new Float64Array(n);
  const distinct = new Float64Array(n);
  const aloneShared = new Float64Array(n);
  const aloneSharing = new Float64Array(n);
  const merging = new Float64Array(n);
  // Pair matrices, upper triangle used (a < b).
  const common = new Float64Array(n * n);
  const cross = new Float64Array(n * n);
  const crossShared = new Float64Array(n * n);

  let SH = 0;
  let SG = 0;
  let uniquePages = 0;
  let sameFramePages = 0;
  const list = new EntryList();

  for (let id = 0; id < table.contentCount; id++) {
    const total = table.countOf(id);
    const k = table.entriesOf(id, list);
    const isZero = id === input.zeroContent;
    const zeroMerge = isZero && useZeroPages;
    let anyMulti = false;
    const firstFrame = list.frame[0]!;
    for (let i = 0; i < k; i++) {
      const s = list.source[i]!;
      const c = list.count[i]!;
      examined[s]! += c;
      distinct[s]! += 1;
      if (isZero) zeroPages[s]! += c;
      if (list.multi[i] === 1 || list.frame[i]! < 0 || list.frame[i] !== firstFrame) anyMulti = true;
    }
    if (total === 1) uniquePages++;
    // One frame for every mapping: a fork-shared page, mergeable only if it is already a KSM page.
    if (!zeroMerge && !anyMulti && total >= 2) {
      if (isKsm(firstFrame)) anyMulti = true;
      else sameFramePages += total;
    }
    if (zeroMerge) input.onContent?.(id, total);
    else if (!anyMulti) input.onContent?.(id, 0);
    if (!zeroMerge && anyMulti) {
      const s = sharingOf(total, m);
      input.onContent?.(id, s.sharing);
      SH += s.shared;
      SG += s.sharing;
      let leftover = total - s.shared - s.sharing;
      for (let i = 0; i < k; i++) {
        const c = list.count[i]!;
        const charged = Math.min(leftover, c);
        leftover -= charged;
        merging[list.source[i]!]! += c - charged;
      }
    }
    // Each source alone.
    for (let i = 0; i < k && !zeroMerge; i++) {
      const c = list.count[i]!;
      if (c < 2 || !(list.multi[i] === 1 || isKsm(list.frame[i]!))) continue;
      const s = sharingOf(c, m);
      aloneShared[list.source[i]!]! += s.shared;
      aloneSharing[list.source[i]!]! += s.sharing;
    }
    // Pairs.
    if (k >= 2) {
      for (let i = 0; i < k; i++) {
        const si = list.source[i]!;
        const ci = list.count[i]!;
        const fi = list.frame[i]!;
        const mi = list.multi[i] === 1;
        const aloneI = sharingOf(ci, m);
        const canI = ci >= 2 && (mi || isKsm(fi));
        for (let j = i + 1; j < k; j++) {
          const sj = list.source[j]!;
          const cj = list.count[j]!;
          const fj = list.frame[j]!;
          const [a, b, ca, cb] = si < sj ? [si, sj, ci, cj] : [sj, si, cj, ci];
          common[a * n + b]! += ca;
          common[b * n + a]! += cb;
          if (zeroMerge) continue;
          const can = mi || list.multi[j] === 1 || fi < 0 || fj < 0 || fi !== fj || isKsm(fi);
          if (!can) continue;
          const together = sharingOf(ci + cj, m);
          const aloneJ = sharingOf(cj, m);
          const canJ = cj >= 2 && (list.multi[j] === 1 || isKsm(fj));
          cross[a * n + b]! += together.sharing - (canI ? aloneI.sharing : 0) - (canJ ? aloneJ.sharing : 0);
          crossShared[a * n + b]! +=
            together.shared - (canI ? aloneI.shared : 0) - (canJ ? aloneJ.shared : 0);
        }
      }
    }
  }

  const zeroOf = (s: number): number => (useZeroPages ? zeroPages[s]! : 0);
  const itemsOf = (s: number): number => examined[s]! - zeroOf(s);
  const sources: SourceSummary[] = [];
  let allExamined = 0;
  let allZero = 0;
  let Z = 0;
  for (let s = 0; s < n; s++) {
    allExamined += examined[s]!;
    allZero += zeroPages[s]!;
    Z += zeroOf(s);
    sources.push({
      examined: examined[s]!,
      zeroPages: zeroPages[s]!,
      distinct: distinct[s]!,
      alone: outcome(aloneSharing[s]!, aloneShared[s]!, zeroOf(s), itemsOf(s)),
      inSet: {
        ksm_merging_pages: merging[s]!,
        ksm_zero_pages: zeroOf(s),
        ksm_rmap_items: itemsOf(s),
        ksm_process_profit: processProfit(merging[s]!, zeroOf(s), itemsOf(s)),
      },
    });
  }
  const pairs: PairSummary[] = [];
  for (let a = 0; a < n; a++) {
    for (let b = a + 1; b < n; b++) {
      const ab = common[a * n + b]!;
      const ba = common[b * n + a]!;
      if (ab === 0 && ba === 0) continue;
      const sharing = aloneSharing[a]! + aloneSharing[b]! + cross[a * n + b]!;
      const shared = aloneShared[a]! + aloneShared[b]! + crossShared[a * n + b]!;
      pairs.push({
        a,
        b,
        aPagesFoundInB: ab,
        bPagesFoundInA: ba,
        together: outcome(sharing, shared, zeroOf(a) + zeroOf(b), itemsOf(a) + itemsOf(b)),
        crossSharing: cross[a * n + b]!,
      });
    }
  }
  return {
    examined: allExamined,
    zeroPages: allZero,
    distinct: table.contentCount,
    total: outcome(SG, SH, Z, allExamined - Z),
    uniquePages,
    sameFramePages,
    sources,
    pairs,
  };
}
