/**
 * The KSM settings an estimate is made for: read from /sys/kernel/mm/ksm, or
 * given, or Linux's defaults when the kernel has no KSM files.
 */
import { existsSync, readFileSync } from 'node:fs';
import { release } from 'node:os';
import { gunzipSync } from 'node:zlib';

export const KSM_SYSFS_DIR = '/sys/kernel/mm/ksm';

/** Linux 6.18's defaults (reference §1.1). */
export const LINUX_DEFAULT_SETTINGS = {
  maxPageSharing: 256,
  useZeroPages: false,
  pagesToScan: 100,
  sleepMillisecs: 20,
} as const;

export interface EstimateSettings {
  readonly maxPageSharing: number;
  readonly useZeroPages: boolean;
  readonly pagesToScan: number;
  readonly sleepMillisecs: number;
  /** The kernel's tick rate: sleeps are rounded up to whole jiffies. */
  readonly hz: number;
}

export type SettingSource = 'option' | 'sysfs' | 'default';

export interface ResolvedSettings extends EstimateSettings {
  /** Where each value came from. */
  readonly sources: Readonly<Record<keyof EstimateSettings, SettingSource>>;
  /** Things the reader should know (no KSM here, the advisor owns pages_to_scan, …). */
  readonly notes: readonly string[];
}

export type SettingOverrides = { -readonly [K in keyof EstimateSettings]?: EstimateSettings[K] };

function readSysfs(dir: string, name: string): string | undefined {
  try {
    return readFileSync(`${dir}/${name}`, 'latin1').trim();
  } catch {
    return undefined;
  }
}

function readInt(dir: string, name: string): number | undefined {
  const text = readSysfs(dir, name);
  if (text === undefined || !/^\d+$/.test(text)) return undefined;
  return Number(text);
}

/**
 * CONFIG_HZ of the running kernel, from /boot/config-RELEASE or
 * /proc/config.gz; 250 (the common distribution choice) when neither says.
 */
export function kernelHz(): { hz: number; known: boolean } {
  const candidates = [`/boot/config-${release()}`, '/proc/config.gz'];
  for (const path of candidates) {
    try {
      const raw = readFileSync(path);
      const text = path.endsWith('.gz') ? gunzipSync(raw).toString('latin1') : raw.toString('latin1');
      const m = /^CONFIG_HZ=(\d+)$/m.exec(text);
      if (m !== null) return { hz: Number(m[1]), known: true };
    } catch {
      // Not there or not readable: try the next one.
    }
  }
  return { hz: 250, known: false };
}

/** Options first, then the machine's sysfs, then Linux's defaults. */
export function resolveSettings(overrides: SettingOverrides = {}, dir = KSM_SYSFS_DIR): ResolvedSettings {
  const notes: string[] = [];
  const hasKsm = existsSync(`${dir}/run`);
  if (!hasKsm) notes.push(`${dir} does not exist (kernel without KSM?): using Linux's defaults`);
  const sources: Record<keyof EstimateSettings, SettingSource> = {
    maxPageSharing: 'default',
    useZeroPages: 'default',
    pagesToScan: 'default',
    sleepMillisecs: 'default',
    hz: 'default',
  };
  const pick = <K extends keyof EstimateSettings>(
    key: K,
    fromSysfs: EstimateSettings[K] | undefined,
    fallback: EstimateSettings[K],
  ): EstimateSettings[K] => {
    const given = overrides[key];
    if (given !== undefined) {
      sources[key] = 'option';
      return given as EstimateSettings[K];
    }
    if (fromSysfs !== undefined) {
      sources[key] = 'sysfs';
      return fromSysfs;
    }
    return fallback;
  };
  const zero = hasKsm ? readInt(dir, 'use_zero_pages') : undefined;
  const maxPageSharing = pick(
    'maxPageSharing',
    hasKsm ? readInt(dir, 'max_page_sharing') : undefined,
    LINUX_DEFAULT_SETTINGS.maxPageSharing,
  );
  const useZeroPages = pick(
    'useZeroPages',
    zero === undefined ? undefined : zero !== 0,
    LINUX_DEFAULT_SETTINGS.useZeroPages,
  );
  const pagesToScan = pick(
    'pagesToScan',
    hasKsm ? readInt(dir, 'pages_to_scan') : undefined,
    LINUX_DEFAULT_SETTINGS.pagesToScan,
  );
  const sleepMillisecs = pick(
    'sleepMillisecs',
    hasKsm ? readInt(dir, 'sleep_millisecs') : undefined,
    LINUX_DEFAULT_SETTINGS.sleepMillisecs,
  );
  let hz: number;
  if (overrides.hz !== undefined) {
    hz = overrides.hz;
    sources.hz = 'option';
  } else {
    const k = kernelHz();
    hz = k.hz;
    if (k.known) sources.hz = 'sysfs';
    else notes.push('CONFIG_HZ not found in /boot/config-* or /proc/config.gz: assuming HZ=250');
  }
  if (hasKsm && overrides.pagesToScan === undefined) {
    const advisor = readSysfs(dir, 'advisor_mode');
    if (advisor !== undefined && /\[scan-time\]/.test(advisor)) {
      notes.push(
        'advisor_mode is scan-time: ksmd changes pages_to_scan after every pass; the time uses its current value',
      );
    }
  }
  if (pagesToScan === 0) notes.push('pages_to_scan is 0: ksmd would never finish a pass');
  return { maxPageSharing, useZeroPages, pagesToScan, sleepMillisecs, hz, sources, notes };
}
