/**
 * The differential fuzzer: seeded random workloads, run on two backends,
 * compared counter by counter, and a finding shrunk to a small workload file.
 */

export {
  type BackendPair,
  type Check,
  checkWorkload,
  DEFAULT_LABELS,
  describeCheck,
  describeDifference,
  type FuzzEvent,
  type FuzzFinding,
  type FuzzOptions,
  type FuzzSummary,
  fuzz,
  type ReplayError,
  type Side,
  type SideLabels,
  sameFinding,
} from './fuzz.ts';
export {
  ADVICE_WEIGHTS,
  CONTENT_WEIGHTS,
  DEFAULT_MAX_PAGES,
  DEFAULT_MAX_PROCESSES,
  DEFAULT_MAX_STEPS,
  type GenerateOptions,
  generateWorkload,
  SETTING_WEIGHTS,
  STEP_WEIGHTS,
  WEIGHT_FACTORS,
} from './generate.ts';
export { Rng } from './rng.ts';
export {
  DEFAULT_SHRINK_ATTEMPTS,
  DEFAULT_SHRINK_TIME_MS,
  repairWorkload,
  type ShrinkOptions,
  type ShrinkProgress,
  type ShrinkResult,
  shrinkWorkload,
  workloadPages,
} from './shrink.ts';
export { type ToYamlOptions, workloadToYaml } from './to-yaml.ts';
