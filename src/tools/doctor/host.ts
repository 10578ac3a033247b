/**
 * Host checks: ksmd's state and pacing, the settings that decide what merges,
 * and a tuning daemon that may be deciding for the operator. Pure: the
 * `HostReading` is gathered elsewhere (host-reading.ts on a real host, the
 * engine's settings for a workload), and every check turns it into findings
 * with the evidence and the exact fix.
 */
import { HZ, msecsToJiffies } from '../../host/constants.ts';
import { type Finding, PAGE_SIZE_BYTES } from './verdicts.ts';

const KSM = '/sys/kernel/mm/ksm';

/** The sysfs settings doctor looks at; null when this kernel lacks the file. */
export interface HostSettings {
  readonly run: number | null;
  readonly pagesToScan: number | null;
  readonly sleepMillisecs: number | null;
  readonly advisorMode: string | null;
  readonly advisorTargetScanTime: number | null;
  readonly useZeroPages: number | null;
  readonly smartScan: number | null;
  readonly mergeAcrossNodes: number | null;
  readonly maxPageSharing: number | null;
}

/** ksmtuned's tunables (/etc/ksmtuned.conf, its defaults where the file is silent). */
export interface KsmtunedConfig {
  readonly monitorIntervalS: number;
  readonly sleepMsec: number;
  readonly npagesBoost: number;
  readonly npagesDecay: number;
  readonly npagesMin: number;
  readonly npagesMax: number;
  readonly thresCoef: number;
  readonly thresConstKb: number;
}

export const KSMTUNED_DEFAULTS: KsmtunedConfig = {
  monitorIntervalS: 60,
  sleepMsec: 10,
  npagesBoost: 300,
  npagesDecay: -50,
  npagesMin: 64,
  npagesMax: 1250,
  thresCoef: 20,
  thresConstKb: 2048,
};

/** What ksmtuned's loop decides from /proc/meminfo (its algorithm, ksmtuned lines "adjust"). */
export interface KsmtunedDecision {
  readonly totalKb: number;
  readonly thresholdKb: number;
  /** Σ RSS of `qemu-system.*-enable-kvm` processes, the only memory it counts as committed. */
  readonly committedKb: number;
  /** MemFree + Buffers + Cached. */
  readonly freeKb: number;
  /** True when its next round writes run=0. */
  readonly stopsKsm: boolean;
}

export interface TunerInfo {
  readonly pid: number;
  readonly name: 'ksmtuned' | 'ksmkit tune';
  readonly command: string;
  /** ksmtuned only: the file read, its values, and what its rule decides now. */
  readonly configPath?: string;
  readonly config?: KsmtunedConfig;
  readonly decision?: KsmtunedDecision;
}

export interface HostReading {
  /** False when the kernel has no KSM at all. */
  readonly available: boolean;
  readonly unavailableReason?: string;
  readonly kernel: string;
  readonly settings: HostSettings;
  /** Files doctor relies on that this kernel lacks (an older kernel). */
  readonly missingFiles: readonly string[];
  readonly numaNodes: number;
  /** Pages ksmd visits in one full scan: present anonymous pages of every VM_MERGEABLE VMA on the host. */
  readonly pagesToVisit: number;
  /** How long the measuring window lasted (s); 0 when nothing was measured (the engine). */
  readonly windowSeconds: number;
  readonly ksmdCpuPercent: number | null;
  /** pages_scanned grew by this much over the window. */
  readonly pagesScannedInWindow: number | null;
  /** thp_split_page of /proc/vmstat grew by this much over the window. */
  readonly thpSplitsInWindow: number | null;
  /** Tuning daemons running, in pid order (two of them fight over the same files). */
  readonly tuners: readonly TunerInfo[];
}

export interface HostAssessment {
  /** Seconds one full scan takes now; null when ksmd does not run or there is nothing to visit. */
  readonly fullScanSeconds: number | null;
  /** `measured`: pages_scanned's rate over the window; `settings`: pages_to_scan and sleep_millisecs. */
  readonly fullScanBasis: 'measured' | 'settings' | null;
  /** The pages_to_scan that meets the target at the current sleep_millisecs, when the target is missed. */
  readonly suggestedPagesToScan: number | null;
}

export interface HostCheckOptions {
  /** The longest acceptable full scan (s); Meta aims at 2-3 min. */
  readonly targetScanSeconds: number;
  /** All-zero pages seen by the page analysis that are not merged yet (undefined: not analysed). */
  readonly zeroPagesUnmerged?: number;
  /** Pages the page analysis read (for the share of zero pages). */
  readonly pagesExamined?: number;
}

export const DEFAULT_TARGET_SCAN_SECONDS = 180;
/** use_zero_pages is worth a finding from this many unmerged zero pages (1 MiB) and 1% of the pages. */
const MANY_ZERO_PAGES = 256;

/** One ksmd batch period: the sleep rounded up to ticks, woken on the tick after (see wakeAfterSleepNs). */
export function batchPeriodSeconds(sleepMillisecs: number): number {
  const jiffies = msecsToJiffies(sleepMillisecs);
  return jiffies === 0 ? 1 / HZ : (jiffies + 1) / HZ;
}

function setting(name: string, value: string | number): string {
  return `echo ${value} > ${KSM}/${name}`;
}

/** The full-scan time now, and the pages_to_scan that would meet the target. */
export function assessHost(r: HostReading, targetScanSeconds: number): HostAssessment {
  const s = r.settings;
  if (s.run !== 1 || r.pagesToVisit === 0) {
    return { fullScanSeconds: null, fullScanBasis: null, suggestedPagesToScan: null };
  }
  let fullScanSeconds: number | null = null;
  let basis: HostAssessment['fullScanBasis'] = null;
  const scanned = r.pagesScannedInWindow ?? 0;
  if (r.windowSeconds > 0 && scanned > 0) {
    fullScanSeconds = r.pagesToVisit / (scanned / r.windowSeconds);
    basis = 'measured';
  } else if (s.pagesToScan !== null && s.sleepMillisecs !== null && s.pagesToScan > 0) {
    fullScanSeconds = Math.ceil(r.pagesToVisit / s.pagesToScan) * batchPeriodSeconds(s.sleepMillisecs);
    basis = 'settings';
  }
  let suggested: number | null = null;
  if (fullScanSeconds !== null && fullScanSeconds > targetScanSeconds && s.sleepMillisecs !== null) {
    const batches = targetScanSeconds / batchPeriodSeconds(s.sleepMillisecs);
    suggested = Math.ceil(r.pagesToVisit / Math.max(batches, 1));
  }
  return { fullScanSeconds, fullScanBasis: basis, suggestedPagesToScan: suggested };
}

function host(verdict: Finding['verdict'], evidence: string, fix: string, bytes = 0): Finding {
  return { verdict, subject: {}, pages: 0, bytes, evidence, fix };
}

export function formatSeconds(s: number): string {
  if (s < 1) return `${(s * 1000).toFixed(0)} ms`;
  if (s < 120) return `${s.toFixed(1)} s`;
  if (s < 7200) return `${(s / 60).toFixed(1)} min`;
  return `${(s / 3600).toFixed(1)} h`;
}

function tunerFinding(t: TunerInfo, run: number | null, others: number): Finding {
  const who = `${t.name} (pid ${t.pid})`;
  const stop =
    t.name === 'ksmtuned'
      ? 'systemctl disable --now ksmtuned (or raise KSM_THRES_COEF in /etc/ksmtuned.conf)'
      : `stop ${t.name} (pid ${t.pid}) before setting KSM by hand`;
  const fight =
    others > 0 ? `; ${others} other tuner${others === 1 ? '' : 's'} running: they overwrite each other` : '';
  if (run === 0) {
    const d = t.decision;
    const why =
      d === undefined
        ? 'run is 0'
        : d.stopsKsm
          ? `run is 0: its rule sees no pressure (committed ${d.committedKb} kB + threshold ${d.thresholdKb} kB < total ${d.totalKb} kB and free ${d.freeKb} kB > threshold)`
          : `run is 0 (its rule would start KSM now: committed ${d.committedKb} kB, free ${d.freeKb} kB, threshold ${d.thresholdKb} kB)`;
    return host('tuner-gating', `${who} is running; ${why}${fight}`, stop);
  }
  const c = t.config;
  const range = c === undefined ? '' : `; pages_to_scan kept in [${c.npagesMin}, ${c.npagesMax}]`;
  return host(
    'tuner-running',
    `${who} is running${range}${fight}`,
    `change its configuration, not sysfs: ${stop}`,
  );
}

function tunerFindings(r: HostReading): Finding[] {
  return r.tuners.map((t) => tunerFinding(t, r.settings.run, r.tuners.length - 1));
}

/** Every host finding, and the full-scan assessment they rest on. */
export function hostFindings(
  r: HostReading,
  options: HostCheckOptions,
): { findings: Finding[]; assessment: HostAssessment } {
  const none: HostAssessment = { fullScanSeconds: null, fullScanBasis: null, suggestedPagesToScan: null };
  if (!r.available) {
    return {
      findings: [
        host(
          'ksm-missing',
          r.unavailableReason ?? `no ${KSM}`,
          'a kernel built with CONFIG_KSM=y (Linux 6.1 or later for /proc/PID/ksm_stat)',
        ),
      ],
      assessment: none,
    };
  }
  const s = r.settings;
  const findings: Finding[] = [];
  if (r.missingFiles.length > 0) {
    findings.push(
      host(
        'ksm-missing',
        `kernel ${r.kernel} lacks ${r.missingFiles.join(', ')}`,
        'Linux 6.8 or later for every check (smart_scan 6.7, advisor 6.8)',
      ),
    );
  }
  findings.push(...tunerFindings(r));
  if (s.run === 0 && !findings.some((f) => f.verdict === 'tuner-gating')) {
    findings.push(host('ksmd-stopped', `${KSM}/run is 0`, setting('run', 1)));
  }
  if (s.run === 2) findings.push(host('ksmd-unmerging', `${KSM}/run is 2`, setting('run', 1)));
  const assessment = assessHost(r, options.targetScanSeconds);
  if (assessment.fullScanSeconds !== null) {
    const basis =
      assessment.fullScanBasis === 'measured'
        ? `${r.pagesScannedInWindow} pages scanned in ${r.windowSeconds.toFixed(1)} s`
        : `pages_to_scan ${s.pagesToScan}, sleep_millisecs ${s.sleepMillisecs}`;
    const evidence = `full scan of ${r.pagesToVisit} pages takes ${formatSeconds(assessment.fullScanSeconds)} (${basis}); target ${formatSeconds(options.targetScanSeconds)}`;
    if (assessment.fullScanSeconds > options.targetScanSeconds) {
      const fix =
        s.advisorMode === 'scan-time'
          ? `${setting('advisor_target_scan_time', Math.round(options.targetScanSeconds))} (or raise advisor_max_pages_to_scan / advisor_max_cpu)`
          : `${setting('pages_to_scan', assessment.suggestedPagesToScan ?? 0)} (or ${setting('advisor_mode', 'scan-time')})`;
      findings.push(host('scan-too-slow', evidence, fix, r.pagesToVisit * PAGE_SIZE_BYTES));
    }
  }
  if (r.ksmdCpuPercent !== null) {
    findings.push(
      host(
        'ksmd-cpu',
        `ksmd used ${r.ksmdCpuPercent.toFixed(1)}% of a CPU over ${r.windowSeconds.toFixed(1)} s`,
        r.ksmdCpuPercent > 50
          ? `${setting('advisor_max_cpu', 30)} with ${setting('advisor_mode', 'scan-time')}`
          : '',
      ),
    );
  }
  if (s.advisorMode === 'scan-time') {
    findings.push(
      host(
        'advisor-mode',
        `advisor_mode scan-time, target ${s.advisorTargetScanTime ?? '?'} s: pages_to_scan (${s.pagesToScan}) is the advisor's`,
        '',
      ),
    );
  }
  const zero = options.zeroPagesUnmerged;
  if (
    s.useZeroPages === 0 &&
    zero !== undefined &&
    zero >= MANY_ZERO_PAGES &&
    zero * 100 >= (options.pagesExamined ?? 0)
  ) {
    findings.push(
      host(
        'zero-pages-off',
        `use_zero_pages is 0 and ${zero} zero-filled pages are not merged`,
        setting('use_zero_pages', 1),
        zero * PAGE_SIZE_BYTES,
      ),
    );
  }
  if (s.smartScan === 0) findings.push(host('smart-scan-off', 'smart_scan is 0', setting('smart_scan', 1)));
  if (r.numaNodes > 1 && s.mergeAcrossNodes === 1) {
    findings.push(
      host(
        'merge-across-nodes',
        `${r.numaNodes} NUMA nodes and merge_across_nodes is 1`,
        `for latency-sensitive guests: echo 2 > ${KSM}/run; ${setting('merge_across_nodes', 0)}; ${setting('run', 1)}`,
      ),
    );
  }
  return { findings, assessment };
}

/** ksmtuned's rule (from /usr/sbin/ksmtuned): does its next round write run=0? */
export function ksmtunedDecision(
  config: KsmtunedConfig,
  meminfo: { totalKb: number; freeKb: number; buffersKb: number; cachedKb: number },
  committedKb: number,
): KsmtunedDecision {
  const thresholdKb = Math.max(Math.floor((meminfo.totalKb * config.thresCoef) / 100), config.thresConstKb);
  const freeKb = meminfo.freeKb + meminfo.buffersKb + meminfo.cachedKb;
  return {
    totalKb: meminfo.totalKb,
    thresholdKb,
    committedKb,
    freeKb,
    stopsKsm: committedKb + thresholdKb < meminfo.totalKb && freeKb > thresholdKb,
  };
}

/** /etc/ksmtuned.conf: `KEY=value` lines (shell syntax, comments ignored); defaults for the rest. */
export function parseKsmtunedConf(text: string): KsmtunedConfig {
  const values = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = /^\s*(KSM_[A-Z_]+)\s*=\s*"?(-?\d+)"?\s*(#.*)?$/.exec(line);
    if (m !== null) values.set(m[1]!, Number(m[2]));
  }
  const d = KSMTUNED_DEFAULTS;
  return {
    monitorIntervalS: values.get('KSM_MONITOR_INTERVAL') ?? d.monitorIntervalS,
    sleepMsec: values.get('KSM_SLEEP_MSEC') ?? d.sleepMsec,
    npagesBoost: values.get('KSM_NPAGES_BOOST') ?? d.npagesBoost,
    npagesDecay: values.get('KSM_NPAGES_DECAY') ?? d.npagesDecay,
    npagesMin: values.get('KSM_NPAGES_MIN') ?? d.npagesMin,
    npagesMax: values.get('KSM_NPAGES_MAX') ?? d.npagesMax,
    thresCoef: values.get('KSM_THRES_COEF') ?? d.thresCoef,
    thresConstKb: values.get('KSM_THRES_CONST') ?? d.thresConstKb,
  };
}
