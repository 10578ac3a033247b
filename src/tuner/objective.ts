/**
 * The objective policy: a full scan every `targetScanS` seconds, ksmd's CPU
 * under `maxCpuPercent`, KSM on only while the memory gate is open.
 *
 * It steers on what it measures (measure.ts): the scan rate pages_to_scan
 * buys (pages_scanned per second per page of pages_to_scan) and the pages
 * one full scan visits. The rate that meets the target is pages per scan /
 * target; pages_to_scan moves there by at most a factor of 4 per look.
 * ksmd's CPU is close to proportional to the rate, so the CPU the new value
 * would cost is the measured CPU scaled by the change; when that exceeds the
 * budget the budget wins, and the decision says the two cannot both be met
 * (and what scan time the budget allows). A measured CPU over the budget is
 * cut back at once, so it is never exceeded for longer than one look.
 *
 * sleep_millisecs stays as given (default 20, the kernel's): the rate is set
 * by pages_to_scan alone, except when fewer than MIN_PAGES_TO_SCAN would do,
 * where the sleep lengthens instead.
 */
import { type GateConfig, PressureGate } from './gate.ts';
import type { KsmSettingsChange, Measured, Tuner, TunerDecision, TunerInputs } from './inputs.ts';

export interface ObjectiveConfig {
  readonly targetScanS: number;
  readonly maxCpuPercent: number;
  readonly intervalMs: number;
  /** The sleep between batches while the rate allows it. */
  readonly sleepMs: number;
  readonly gate: GateConfig;
}

const MAX_STEP_FACTOR = 4;
const MIN_PAGES_TO_SCAN = 16;
/** The kernel's default. */
const DEFAULT_PAGES_TO_SCAN = 100;
const MAX_PAGES_TO_SCAN = 1_000_000;
const MAX_SLEEP_MS = 10_000;
/** Aim under the budget by this much, so noise in one interval's CPU does not cross it. */
const CPU_MARGIN = 0.85;
/** Before any full scan has been measured, pages_to_scan grows by this much per look (as the CPU allows). */
const PROBE_FACTOR = 2;
/**
 * After a look that found ksmd over the budget, pages_to_scan goes this far
 * under the proportional cut: the CPU a page costs is not constant (a pass
 * that merges costs several times one that only checksums, measured 6x on
 * tuner-day), so a proportional cut can leave ksmd over budget for a second
 * interval. The controller climbs back by at most MAX_STEP_FACTOR per look.
 */
const OVERRUN_BACKOFF = 8;
/** Changes smaller than this share are not written (the measurement's own noise). */
const DEADBAND = 0.05;

function clamp(v: number, lo: number, hi: number): number {
  return Math.min(hi, Math.max(lo, v));
}

export class ObjectiveTuner implements Tuner {
  readonly name = 'objective';
  readonly intervalMs: number;
  readonly firstDecisionAfterInterval = false;
  private readonly gate: PressureGate;

  constructor(readonly config: ObjectiveConfig) {
    if (!(config.targetScanS > 0)) throw new Error('the target full-scan time must be positive');
    if (!(config.maxCpuPercent > 0 && config.maxCpuPercent <= 100))
      throw new Error('the CPU budget must be between 0 and 100% of one CPU');
    this.intervalMs = config.intervalMs;
    this.gate = new PressureGate(config.gate);
  }

  decide(inputs: TunerInputs, measured: Measured | undefined): TunerDecision {
    const gate = this.gate.judge(inputs);
    const ksm = inputs.ksm;
    const running = ksm.run === 1;
    if (!gate.open) {
      return {
        action: running ? 'stop' : 'hold',
        settings: { run: 0 },
        reason: gate.why,
        warnings: [],
        debug: [],
      };
    }
    // The advisor owns pages_to_scan while scan-time is selected (writes are refused): hand it back first.
    const handBack: KsmSettingsChange = ksm.advisor_mode === 'none' ? {} : { advisor_mode: 'none' };
    if (!running || measured === undefined) {
      // From what is set (an operator's value), but not from a brake or a near-idle value.
      const pages = clamp(
        Math.max(ksm.pages_to_scan, DEFAULT_PAGES_TO_SCAN),
        MIN_PAGES_TO_SCAN,
        MAX_PAGES_TO_SCAN,
      );
      return {
        action: running ? 'hold' : 'start',
        settings: { ...handBack, pages_to_scan: pages, sleep_millisecs: this.config.sleepMs, run: 1 },
        reason: `${gate.why}; ${running ? 'first look: measuring' : 'start'} at ${pages} pages every ${this.config.sleepMs} ms`,
        warnings: [],
        debug: [],
      };
    }
    return this.steer(inputs, measured, gate.why, handBack);
  }

  private steer(
    inputs: TunerInputs,
    m: Measured,
    gateWhy: string,
    handBack: KsmSettingsChange,
  ): TunerDecision {
    const { targetScanS, maxCpuPercent } = this.config;
    const pts = inputs.ksm.pages_to_scan;
    const sleepMs = inputs.ksm.sleep_millisecs;
    const budget = maxCpuPercent * CPU_MARGIN;
    const seen = `scan rate ${Math.round(m.scanRatePagesPerS)} pages/s, ksmd ${m.ksmdCpuPercent.toFixed(1)}% CPU`;
    if (m.scanRatePagesPerS === 0) {
      return {
        action: 'hold',
        settings: handBack,
        reason: `${gateWhy}; ksmd scanned nothing (no mergeable memory): nothing to steer`,
        warnings: [],
        debug: [],
      };
    }
    let wanted: number;
    let why: string;
    if (m.pagesPerFullScan === undefined || m.fullScanS === undefined) {
      wanted = pts * PROBE_FACTOR;
      why = `no full scan measured yet (${seen}): probing upwards`;
    } else {
      const ratio = m.fullScanS / targetScanS;
      wanted = pts * ratio;
      why = `full scan ${m.fullScanS.toFixed(1)} s of ${Math.round(m.pagesPerFullScan)} pages (target ${targetScanS} s), ${seen}`;
    }
    wanted = clamp(wanted, pts / MAX_STEP_FACTOR, pts * MAX_STEP_FACTOR);
    const warnings: string[] = [];
    const cpuPerPage = m.ksmdCpuPercent / pts;
    if (cpuPerPage > 0 && wanted * cpuPerPage > budget) {
      const capped = budget / cpuPerPage;
      // Pages a scan visits: measured, or at least what this scan has visited so far.
      const pages = m.pagesPerFullScan ?? m.pagesSinceScanEnd;
      const reachableS = pages / ((m.scanRatePagesPerS / pts) * capped);
      if (reachableS > targetScanS * 1.05) {
        warnings.push(
          `target and budget cannot both be met: a ${targetScanS} s full scan needs about ` +
            `${((pages / targetScanS / (m.scanRatePagesPerS / pts)) * cpuPerPage).toFixed(1)}% CPU, over the ` +
            `${maxCpuPercent}% budget; within it a full scan takes ${m.pagesPerFullScan === undefined ? 'at least ' : 'about '}` +
            `${reachableS.toFixed(0)} s`,
        );
      }
      why += `; capped by the ${maxCpuPercent}% CPU budget`;
      wanted = Math.min(wanted, capped);
    }
    const overrun = m.ksmdCpuPercent > maxCpuPercent;
    if (overrun) {
      wanted = Math.min(wanted, (pts * budget) / m.ksmdCpuPercent / OVERRUN_BACKOFF);
      why += `; ksmd was over the ${maxCpuPercent}% budget: backing off`;
    } else if (Math.abs(wanted - pts) <= pts * DEADBAND) {
      wanted = pts;
    }
    let nextSleep = this.config.sleepMs;
    let next = Math.round(wanted);
    if (next < MIN_PAGES_TO_SCAN) {
      // Fewer pages a batch than that: sleep longer instead, at the same rate.
      nextSleep = clamp(Math.round((sleepMs * MIN_PAGES_TO_SCAN) / Math.max(1, wanted)), 1, MAX_SLEEP_MS);
      next = MIN_PAGES_TO_SCAN;
    }
    next = clamp(next, MIN_PAGES_TO_SCAN, MAX_PAGES_TO_SCAN);
    const settings: KsmSettingsChange = { ...handBack };
    if (next !== pts) settings.pages_to_scan = next;
    if (nextSleep !== sleepMs) settings.sleep_millisecs = nextSleep;
    const changed = settings.pages_to_scan !== undefined || settings.sleep_millisecs !== undefined;
    return {
      action: changed ? 'adjust' : 'hold',
      settings,
      reason: `${why}: pages_to_scan ${pts} -> ${next}, sleep ${nextSleep} ms`,
      warnings,
      debug: [],
    };
  }
}
