/**
 * What the daemon measures between two looks at the host: ksmd's CPU (from
 * its schedstat time), the scan rate (pages_scanned per second) and how many
 * pages one full scan visits (pages_scanned between two full_scans changes).
 * Nobody knowing how long a full scan takes is one of the heuristics' traps:
 * the objective policy steers on exactly that figure.
 */
import type { Measured, TunerInputs } from './inputs.ts';

const KB_PER_PAGE = 4;
/** Each mark is up to one interval late; averaging over four scans keeps that error a quarter as large. */
const MARKS_KEPT = 5;

interface ScanMark {
  readonly fullScans: number;
  readonly pagesScanned: number;
}

export class Meter {
  private last: TunerInputs | undefined;
  /** Where full_scans last changed (the look just after it did). */
  private mark: ScanMark | undefined;
  /** The last few such marks after a scan end, oldest first: pages per scan averaged over them. */
  private readonly marks: ScanMark[] = [];
  private pagesPerFullScan: number | undefined;

  /** The figures since the previous look; undefined at the first look. */
  look(inputs: TunerInputs): Measured | undefined {
    const last = this.last;
    this.last = inputs;
    const ksm = inputs.ksm;
    if (last === undefined || inputs.nowMs <= last.nowMs) {
      this.mark = { fullScans: ksm.full_scans, pagesScanned: ksm.pages_scanned };
      return undefined;
    }
    if (this.mark !== undefined && ksm.full_scans > this.mark.fullScans) {
      // The first change only tells where a scan ended; from the second on, pages per scan are known
      // (to within the pages scanned in one interval).
      this.mark = { fullScans: ksm.full_scans, pagesScanned: ksm.pages_scanned };
      this.marks.push(this.mark);
      if (this.marks.length > MARKS_KEPT) this.marks.shift();
      const first = this.marks[0]!;
      if (this.marks.length > 1)
        this.pagesPerFullScan = (ksm.pages_scanned - first.pagesScanned) / (ksm.full_scans - first.fullScans);
    }
    const intervalS = (inputs.nowMs - last.nowMs) / 1000;
    const scanRatePagesPerS = Math.max(0, ksm.pages_scanned - last.ksm.pages_scanned) / intervalS;
    const ksmdCpuPercent = (Math.max(0, inputs.ksmdCpuNs - last.ksmdCpuNs) / 1e9 / intervalS) * 100;
    const pagesPerFullScan = this.pagesPerFullScan;
    return {
      intervalS,
      ksmdCpuPercent,
      scanRatePagesPerS,
      pagesPerFullScan,
      pagesSinceScanEnd: ksm.pages_scanned - (this.mark?.pagesScanned ?? ksm.pages_scanned),
      fullScanS:
        pagesPerFullScan !== undefined && scanRatePagesPerS > 0
          ? pagesPerFullScan / scanRatePagesPerS
          : undefined,
    };
  }
}

/** kB a COW storm would need: every page mapped through a KSM page beyond its first mapping gets its own frame. */
export function cowStormKb(inputs: TunerInputs): number {
  return inputs.ksm.pages_sharing * KB_PER_PAGE;
}
