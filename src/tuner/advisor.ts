/**
 * Hands the pacing to the kernel's scan-time advisor (Linux 6.8+, mm/ksm.c
 * `scan_time_advisor`): advisor_mode=scan-time with the target full-scan time
 * and CPU cap, then only watches (and reports what it measures). The advisor
 * itself moves pages_to_scan between advisor_min_pages_to_scan and
 * advisor_max_pages_to_scan after every full scan.
 */
import { type GateConfig, PressureGate } from './gate.ts';
import type { Measured, Tuner, TunerDecision, TunerInputs } from './inputs.ts';

export interface AdvisorConfig {
  readonly targetScanS: number;
  readonly maxCpuPercent: number;
  readonly intervalMs: number;
  readonly gate: GateConfig;
}

export class AdvisorTuner implements Tuner {
  readonly name = 'advisor';
  readonly intervalMs: number;
  readonly firstDecisionAfterInterval = false;
  private readonly gate: PressureGate;
  /** Written once per configuration (a SIGHUP makes a new tuner, which writes its own). */
  private applied = false;

  constructor(readonly config: AdvisorConfig) {
    this.intervalMs = config.intervalMs;
    this.gate = new PressureGate(config.gate);
  }

  decide(inputs: TunerInputs, measured: Measured | undefined): TunerDecision {
    const gate = this.gate.judge(inputs);
    const ksm = inputs.ksm;
    if (!gate.open)
      return {
        action: ksm.run === 1 ? 'stop' : 'hold',
        settings: { run: 0 },
        reason: gate.why,
        warnings: [],
        debug: [],
      };
    const target = Math.max(1, Math.round(this.config.targetScanS));
    const cpu = Math.max(1, Math.min(100, Math.round(this.config.maxCpuPercent)));
    const seen =
      measured === undefined
        ? 'first look'
        : `full scan ${measured.fullScanS === undefined ? 'not measured yet' : `${measured.fullScanS.toFixed(1)} s`}, ` +
          `pages_to_scan ${ksm.pages_to_scan} (the advisor's), ksmd ${measured.ksmdCpuPercent.toFixed(1)}% CPU`;
    if (this.applied && ksm.advisor_mode === 'scan-time' && ksm.run === 1) {
      return {
        action: 'hold',
        settings: {},
        reason: `${gate.why}; the advisor paces: ${seen}`,
        warnings: [],
        debug: [],
      };
    }
    this.applied = true;
    return {
      action: 'start',
      settings: { advisor_target_scan_time: target, advisor_max_cpu: cpu, advisor_mode: 'scan-time', run: 1 },
      reason: `${gate.why}; hand the pacing to the scan-time advisor: target ${target} s, at most ${cpu}% CPU`,
      warnings: [],
      debug: [],
    };
  }
}
