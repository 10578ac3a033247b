/** The tuning policies by name, built from one options object (the CLI's and the replay's). */
import { AdvisorTuner } from './advisor.ts';
import type { GateConfig } from './gate.ts';
import type { Tuner } from './inputs.ts';
import { KSMTUNED_DEFAULTS, type KsmtunedConfig, KsmtunedTuner } from './ksmtuned.ts';
import { KUBEVIRT_DEFAULTS, KubevirtTuner } from './kubevirt.ts';
import { ObjectiveTuner } from './objective.ts';

export const TUNER_POLICIES = ['objective', 'ksmtuned', 'kubevirt', 'kubevirt-legacy', 'advisor'] as const;
export type TunerPolicyName = (typeof TUNER_POLICIES)[number];

export interface TunerOptions {
  readonly targetScanS: number;
  readonly maxCpuPercent: number;
  /** The objective and advisor policies' look interval. */
  readonly intervalMs: number;
  readonly sleepMs: number;
  readonly gate: GateConfig;
  readonly ksmtuned: KsmtunedConfig;
}

export const DEFAULT_TUNER_OPTIONS: TunerOptions = {
  targetScanS: 120,
  maxCpuPercent: 10,
  intervalMs: 10_000,
  sleepMs: 20,
  gate: { startBelowKb: undefined, stopAboveKb: undefined, holdMs: 600_000 },
  ksmtuned: KSMTUNED_DEFAULTS,
};

export function isTunerPolicy(name: string): name is TunerPolicyName {
  return (TUNER_POLICIES as readonly string[]).includes(name);
}

export function makeTuner(name: TunerPolicyName, options: TunerOptions): Tuner {
  switch (name) {
    case 'objective':
      return new ObjectiveTuner({
        targetScanS: options.targetScanS,
        maxCpuPercent: options.maxCpuPercent,
        intervalMs: options.intervalMs,
        sleepMs: options.sleepMs,
        gate: options.gate,
      });
    case 'ksmtuned':
      return new KsmtunedTuner(options.ksmtuned);
    case 'kubevirt':
      return new KubevirtTuner(KUBEVIRT_DEFAULTS);
    case 'kubevirt-legacy':
      return new KubevirtTuner({ ...KUBEVIRT_DEFAULTS, pollMs: undefined });
    case 'advisor':
      return new AdvisorTuner({
        targetScanS: options.targetScanS,
        maxCpuPercent: options.maxCpuPercent,
        intervalMs: options.intervalMs,
        gate: options.gate,
      });
  }
}
