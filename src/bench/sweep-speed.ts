/**
 * How fast the main job runs: the default scenario of `ksmkit simulate`
 * (`npm start`), timed in CPU of this process, as seconds per simulated hour
 * of ksmd. Twice: as `npm start` runs it (the steady state fast-forwarded)
 * and with every batch of ksmd simulated (no fast-forward).
 */
import { loadCalibration } from '../simulate/cost.ts';
import { runOnEngine } from '../simulate/engine-run.ts';
import { builtIn, DEFAULT_SCENARIO } from '../simulate/library.ts';
import type { Scenario } from '../simulate/scenario.ts';
import { processCpuNs } from './proc.ts';

export interface SweepSpeed {
  readonly scenario: string;
  readonly fastForward: boolean;
  readonly simulatedMs: number;
  /** Where the fast-forward took over, if it did. */
  readonly steadyAtMs: number | null;
  readonly cpuNs: number;
  readonly wallMs: number;
  readonly cpuSecondsPerSimulatedHour: number;
}

export function measureSweepSpeed(
  fastForward: boolean,
  scenario: Scenario = builtIn(DEFAULT_SCENARIO),
): SweepSpeed {
  const figures = loadCalibration().figures;
  const wall0 = performance.now();
  const cpu0 = processCpuNs();
  const run = runOnEngine(scenario, { figures, fastForward });
  const cpuNs = processCpuNs() - cpu0;
  const wallMs = performance.now() - wall0;
  return {
    scenario: scenario.name,
    fastForward,
    simulatedMs: scenario.durationMs,
    steadyAtMs: run.steadyAtMs ?? null,
    cpuNs,
    wallMs,
    cpuSecondsPerSimulatedHour: cpuNs / 1e9 / (scenario.durationMs / 3_600_000),
  };
}
