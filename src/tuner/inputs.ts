/**
 * What a tuner looks at and what it decides. The policies (ksmtuned.ts,
 * kubevirt.ts, objective.ts, advisor.ts) are functions of these values only:
 * the kernel host (tools/tune/kernel-host.ts) reads them from /proc and
 * /sys/kernel/mm/ksm, the simulator (simulate/engine-run.ts) from its model,
 * in virtual time, so the same decision code runs in both.
 */

/** The /proc/meminfo lines the tuners read, in kB as the file has them. */
export interface MemInfoKb {
  readonly MemTotal: number;
  readonly MemFree: number;
  readonly MemAvailable: number;
  readonly Buffers: number;
  readonly Cached: number;
  readonly SwapFree: number;
}

/** The /sys/kernel/mm/ksm values a tuner reads (advisor_mode as its selected word). */
export interface KsmState {
  readonly run: number;
  readonly pages_to_scan: number;
  readonly sleep_millisecs: number;
  readonly advisor_mode: string;
  readonly full_scans: number;
  readonly pages_scanned: number;
  readonly pages_shared: number;
  readonly pages_sharing: number;
}

/** One look at the host, taken at `nowMs` (a monotonic clock: real or virtual). */
export interface TunerInputs {
  readonly nowMs: number;
  readonly meminfo: MemInfoKb;
  /**
   * Memory committed to guests, in kB: the summed RSS (`ps -o rsz`) of the
   * processes whose command line matches `^qemu-system.*-enable-kvm`, as
   * ksmtuned counts it.
   */
  readonly committedKb: number;
  readonly ksm: KsmState;
  /** ksmd's CPU time since boot (/proc/PID/schedstat, first field). */
  readonly ksmdCpuNs: number;
}

/** The settings a tuner writes; a field left out is left as it is. */
export interface KsmSettingsChange {
  run?: 0 | 1;
  pages_to_scan?: number;
  sleep_millisecs?: number;
  advisor_mode?: 'none' | 'scan-time';
  advisor_target_scan_time?: number;
  advisor_max_cpu?: number;
}

/** The order in which a change goes in: advisor_mode before pages_to_scan can be refused, run last. */
export const SETTING_ORDER: ReadonlyArray<keyof KsmSettingsChange> = [
  'advisor_target_scan_time',
  'advisor_max_cpu',
  'advisor_mode',
  'pages_to_scan',
  'sleep_millisecs',
  'run',
];

export type TunerAction = 'start' | 'stop' | 'adjust' | 'hold';

export interface TunerDecision {
  readonly action: TunerAction;
  readonly settings: KsmSettingsChange;
  /** One sentence: why, with the figures it rests on. */
  readonly reason: string;
  /** Things the operator should know (an objective that cannot be met, a COW storm's headroom). */
  readonly warnings: readonly string[];
  /** ksmtuned's own DEBUG lines for this step (under --policy ksmtuned), without the date. */
  readonly debug: readonly string[];
}

/** The figures the daemon measures between two looks (measure.ts). */
export interface Measured {
  /** Seconds between two looks. */
  readonly intervalS: number;
  /** ksmd's CPU over the interval, in % of one CPU. */
  readonly ksmdCpuPercent: number;
  /** pages_scanned per second over the interval. */
  readonly scanRatePagesPerS: number;
  /** Pages one full scan visits (pages_scanned per full_scans, last completed scans), if one was seen. */
  readonly pagesPerFullScan: number | undefined;
  /** Seconds a full scan takes at the present rate, if known. */
  readonly fullScanS: number | undefined;
  /** Pages scanned since the last full scan ended (or since the first look): a floor for pages per scan. */
  readonly pagesSinceScanEnd: number;
}

/** A tuning policy: a decision from what was seen now and what was measured since the last look. */
export interface Tuner {
  readonly name: string;
  /** How often the daemon looks (ksmtuned's KSM_MONITOR_INTERVAL, KubeVirt's ticker). */
  readonly intervalMs: number;
  /** ksmtuned sleeps first and decides after its first interval; the others decide at start. */
  readonly firstDecisionAfterInterval: boolean;
  decide(inputs: TunerInputs, measured: Measured | undefined): TunerDecision;
}

export function describeChange(change: KsmSettingsChange): string {
  const parts = SETTING_ORDER.filter((k) => change[k] !== undefined).map((k) => `${k}=${change[k]}`);
  return parts.length === 0 ? 'no change' : parts.join(' ');
}
