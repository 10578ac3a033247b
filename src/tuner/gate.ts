/**
 * The objective policy's memory-pressure gate: KSM starts when MemAvailable
 * falls below `startBelowKb`, and stops once it has stayed above
 * `stopAboveKb` for `holdMs` (so a guest that frees memory for a minute does
 * not stop and restart ksmd). Without thresholds the gate is always open.
 */
import type { TunerInputs } from './inputs.ts';

export interface GateConfig {
  readonly startBelowKb: number | undefined;
  readonly stopAboveKb: number | undefined;
  readonly holdMs: number;
}

export type GateVerdict = { readonly open: boolean; readonly why: string };

export class PressureGate {
  private open: boolean;
  private aboveSinceMs: number | undefined;

  constructor(readonly config: GateConfig) {
    if (
      config.startBelowKb !== undefined &&
      config.stopAboveKb !== undefined &&
      config.stopAboveKb < config.startBelowKb
    )
      throw new Error(
        'the gate stops above a level lower than it starts below: give --stop-above >= --start-below',
      );
    this.open = config.startBelowKb === undefined;
  }

  judge(inputs: TunerInputs): GateVerdict {
    const { startBelowKb, stopAboveKb, holdMs } = this.config;
    const available = inputs.meminfo.MemAvailable;
    if (startBelowKb === undefined) return { open: true, why: 'no memory gate' };
    if (!this.open) {
      if (available < startBelowKb) {
        this.open = true;
        this.aboveSinceMs = undefined;
        return { open: true, why: `MemAvailable ${available} kB < ${startBelowKb} kB: gate opens` };
      }
      return { open: false, why: `MemAvailable ${available} kB >= ${startBelowKb} kB: gate closed` };
    }
    const stopAt = stopAboveKb ?? startBelowKb;
    if (available <= stopAt) {
      this.aboveSinceMs = undefined;
      return { open: true, why: `MemAvailable ${available} kB <= ${stopAt} kB: gate open` };
    }
    this.aboveSinceMs ??= inputs.nowMs;
    const heldMs = inputs.nowMs - this.aboveSinceMs;
    if (heldMs >= holdMs) {
      this.open = false;
      this.aboveSinceMs = undefined;
      return {
        open: false,
        why: `MemAvailable above ${stopAt} kB for ${Math.round(heldMs / 1000)} s: gate closes`,
      };
    }
    return {
      open: true,
      why: `MemAvailable ${available} kB > ${stopAt} kB for ${Math.round(heldMs / 1000)} s of ${Math.round(holdMs / 1000)} s: gate still open`,
    };
  }
}
