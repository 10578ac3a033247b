/**
 * The COW-storm guard. Every page mapped through a KSM page beyond the first
 * mapping (pages_sharing) needs a frame of its own the moment it is written:
 * if all of them were written at once, would the host still have room? The
 * room is MemAvailable + SwapFree; the guard warns when what would be left
 * falls under `reserveKb`, and with `stopMerging` stops ksmd (run=0, which
 * keeps what is merged and merges nothing more) before the headroom is gone.
 */
import type { TunerDecision, TunerInputs } from './inputs.ts';
import { cowStormKb } from './measure.ts';

export interface CowGuardConfig {
  /** kB that must be left after a storm; default 5% of MemTotal. */
  readonly reserveKb: number | undefined;
  readonly stopMerging: boolean;
}

export interface CowHeadroom {
  readonly stormKb: number;
  readonly roomKb: number;
  readonly leftKb: number;
  readonly reserveKb: number;
}

export function cowHeadroom(config: CowGuardConfig, inputs: TunerInputs): CowHeadroom {
  const stormKb = cowStormKb(inputs);
  const roomKb = inputs.meminfo.MemAvailable + inputs.meminfo.SwapFree;
  const reserveKb = config.reserveKb ?? Math.round(inputs.meminfo.MemTotal * 0.05);
  return { stormKb, roomKb, leftKb: roomKb - stormKb, reserveKb };
}

/** The decision as the guard lets it through: a warning added, and with stopMerging a start turned into a stop. */
export function guardCowStorm(
  config: CowGuardConfig,
  inputs: TunerInputs,
  decision: TunerDecision,
): TunerDecision {
  const h = cowHeadroom(config, inputs);
  if (h.leftKb >= h.reserveKb) return decision;
  const warning =
    `COW storm headroom: writing every merged page would need ${h.stormKb} kB, ` +
    `MemAvailable + SwapFree is ${h.roomKb} kB, leaving ${h.leftKb} kB (reserve ${h.reserveKb} kB)`;
  if (!config.stopMerging) return { ...decision, warnings: [...decision.warnings, warning] };
  return {
    action: inputs.ksm.run === 1 ? 'stop' : 'hold',
    settings: { run: 0 },
    reason: `${warning}: stop merging further (what is merged stays merged)`,
    warnings: [...decision.warnings, warning],
    debug: decision.debug,
  };
}
