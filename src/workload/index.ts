/**
 * The workload layer: read a workload file (workload-format.md, version 1),
 * build its page bytes and addresses, replay it on a `Backend`, and compare
 * two replays. Tools import from here.
 */

export {
  ContentError,
  type ContentPlacement,
  contentBytes,
  contentPages,
  DEFAULT_TAG_CACHE_PAGES,
  describePageBytes,
  describeRunPage,
  type RunPageSpan,
  sharedTagPageCache,
  TagPageCache,
  tagPage,
} from './content.ts';
export {
  type CounterRef,
  KSM_STAT_FIELDS,
  KSM_SYSFS_FILES,
  type ProcessFieldRow,
  parseCounterRef,
  type SysfsFileRow,
  WRITABLE_SYSFS_NAMES,
} from './counters.ts';
export {
  type BackendsDiff,
  type CounterDifference,
  type CounterValue,
  diffBackends,
  diffOutcomes,
  diffStepResults,
  formatDifference,
  type ReplayDiff,
} from './diff.ts';
export { AddressLayout, LAYOUT_ALIGN_BYTES, LAYOUT_START_ADDRESS, regionStrideBytes } from './layout.ts';
export {
  formatFailureLine,
  formatJsonLine,
  formatStartLine,
  formatStepLine,
  STEP_LINE_COUNTERS,
} from './output.ts';
export {
  formatWorkloadIssue,
  loadWorkload,
  type ParseOptions,
  parseWorkload,
  WorkloadError,
  type WorkloadIssue,
} from './parse.ts';
export {
  EXIT_CHECK_FAILED,
  EXIT_INVALID,
  EXIT_OK,
  type ExpectFailure,
  errnoOf,
  exitStatusOf,
  type ReadFailure,
  type ReplayExitStatus,
  type ReplayOptions,
  type ReplayOutcome,
  type ReplayStart,
  replay,
  runReplay,
  type SetupRefusal,
  type StepFailure,
  type StepResult,
} from './replay.ts';
export type {
  ContentKind,
  ContentRun,
  ContentSpec,
  ExpectedCounter,
  ExpectedValue,
  ProcessSpec,
  RegionSpec,
  Step,
  StepOp,
  SysfsSetting,
  Workload,
} from './workload.ts';
export { STEP_OPS, WORKLOAD_VERSION } from './workload.ts';
