/**
 * The engine's scenarios as a source of pages for `estimate`: every guest of
 * every group with its pages as the engine writes them when the guest starts
 * (simulate/engine-run.ts startGuest: ContentSpace values, run by run). A
 * page's key is its 64-bit value (two pages are equal exactly when their
 * values are), and with --compare its compression is that of the synthesised
 * page standing for its kind (simulate/compression.ts): the scenario's
 * `compression:` assumption, not a measurement.
 */
import type { ContentCompression } from '../../simulate/compression.ts';
import { ContentSpace } from '../../simulate/content.ts';
import type { Scenario } from '../../simulate/scenario.ts';
import { TIMING_ENTRIES } from '../compress/native.ts';
import { NO_FRAME } from './content-table.ts';
import { PAGE_BYTES } from './model.ts';
import type { PageCounter } from './page-counter.ts';
import type { Progress } from './progress.ts';

export interface GuestScan {
  readonly scenario: string;
  readonly group: string;
  /** 1-based, as the engine names its guests (`group-N`). */
  readonly index: number;
  readonly examinedPages: number;
}

export interface ScenarioReadContext {
  readonly counter: PageCounter;
  readonly progress: Progress;
  /** With --compare: what each kind of page compresses to. */
  readonly compression?: ContentCompression;
  /** The index the first guest's source gets; each guest is a source of its own. */
  readonly firstSource: number;
  /** The value space to draw from; one shared across calls keeps image and unique pages consistent (a synthetic fleet). */
  readonly content?: ContentSpace;
}

/**
 * The low key word: the content table probes from it, and values of one kind
 * run in sequence (image page 0, 1, 2…; unique 0, 1, 2…), which would pile up
 * in one cluster. For a given hi this is a bijection of lo (murmur3's
 * finaliser), so (spread, hi) stays one key per value.
 */
function spread(lo: number, hi: number): number {
  let h = (lo ^ Math.imul(hi, 0x9e3779b1)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** Pages the scenario's guests hold at their start. */
export function scenarioBytes(scenario: Scenario): number {
  return scenario.groups.reduce((sum, g) => sum + g.count * g.pageCount * PAGE_BYTES, 0);
}

export function scanScenario(scenario: Scenario, ctx: ScenarioReadContext): GuestScan[] {
  const { counter, progress, compression } = ctx;
  const content = ctx.content ?? new ContentSpace();
  const keys = new Uint32Array(2);
  const timing = new Float64Array(TIMING_ENTRIES);
  const scans: GuestScan[] = [];
  for (const group of scenario.groups) {
    for (let g = 0; g < group.count; g++) {
      counter.beginSource(ctx.firstSource + scans.length);
      progress.stage(`${group.name}-${g + 1}`);
      for (const run of group.content) {
        for (let i = 0; i < run.pageCount; i++) {
          content.value(run.source, i);
          keys[0] = spread(content.lo, content.hi);
          keys[1] = content.hi;
          const zero = content.hi === 0 && content.lo === 0;
          const analysis =
            compression === undefined
              ? undefined
              : { pages: compression.analysisFor(content.hi, content.lo), timing };
          counter.count(keys, 0, zero, NO_FRAME, 0, 0, analysis);
        }
        progress.advance(run.pageCount * PAGE_BYTES);
      }
      scans.push({
        scenario: scenario.name,
        group: group.name,
        index: g + 1,
        examinedPages: group.pageCount,
      });
    }
  }
  if (compression !== undefined) counter.compression?.addTiming(compression.timing);
  return scans;
}
