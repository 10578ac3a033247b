/**
 * One look, one decision, one write: the step the `ksmkit tune` daemon runs
 * every interval on the real kernel and the simulator runs in virtual time.
 * Synchronous on purpose (the engine is), against a `TunerHost`: the kernel
 * one reads /proc and writes /sys/kernel/mm/ksm under the SysfsGuard, the
 * simulated one reads and writes the engine's sysfs.
 */
import { type CowGuardConfig, cowHeadroom, guardCowStorm } from './cow-guard.ts';
import {
  describeChange,
  type KsmSettingsChange,
  type Measured,
  SETTING_ORDER,
  type Tuner,
  type TunerDecision,
  type TunerInputs,
} from './inputs.ts';
import { Meter } from './measure.ts';

export interface TunerHost {
  observe(): TunerInputs;
  /** The current text of a setting, advisor_mode as its word (what a restore would put back). */
  readSetting(name: keyof KsmSettingsChange): string;
  /** Writes one setting; the kernel's errno name when refused. */
  writeSetting(name: keyof KsmSettingsChange, value: string): { ok: true } | { ok: false; errno: string };
}

/** Everything about one step, for the log, the Prometheus export and the replay. */
export interface DecisionRecord {
  readonly seq: number;
  readonly policy: string;
  readonly inputs: TunerInputs;
  readonly measured: Measured | undefined;
  readonly decision: TunerDecision;
  /** What was written (nothing under dry-run, nor for values already in place). */
  readonly written: KsmSettingsChange;
  readonly failures: readonly string[];
  readonly dryRun: boolean;
  readonly cowLeftKb: number;
}

export interface TuneLoopOptions {
  readonly dryRun: boolean;
  readonly cowGuard: CowGuardConfig;
}

export class TuneLoop {
  private readonly meter = new Meter();
  private seq = 0;
  /** The value each setting had before this loop first wrote it: what a restore puts back. */
  readonly originals = new Map<keyof KsmSettingsChange, string>();

  constructor(
    private readonly host: TunerHost,
    private tuner: Tuner,
    private readonly options: TuneLoopOptions,
  ) {}

  get policy(): Tuner {
    return this.tuner;
  }

  /** SIGHUP: the configuration reread; the measurements carry on. */
  replaceTuner(tuner: Tuner): void {
    this.tuner = tuner;
  }

  step(): DecisionRecord {
    const inputs = this.host.observe();
    const measured = this.meter.look(inputs);
    const decision = guardCowStorm(this.options.cowGuard, inputs, this.tuner.decide(inputs, measured));
    const written: KsmSettingsChange = {};
    const failures: string[] = [];
    if (!this.options.dryRun) {
      for (const name of SETTING_ORDER) {
        const value = decision.settings[name];
        if (value === undefined) continue;
        const before = this.host.readSetting(name);
        if (before === String(value)) continue;
        if (!this.originals.has(name)) this.originals.set(name, before);
        const r = this.host.writeSetting(name, String(value));
        if (r.ok) (written as Record<string, number | string>)[name] = value;
        else failures.push(`${name}=${value}: ${r.errno}`);
      }
    }
    return {
      seq: this.seq++,
      policy: this.tuner.name,
      inputs,
      measured,
      decision,
      written,
      failures,
      dryRun: this.options.dryRun,
      cowLeftKb: cowHeadroom(this.options.cowGuard, inputs).leftKb,
    };
  }
}

/** A decision as one journald-friendly line: key=value pairs, the reason quoted last. */
export function formatDecision(r: DecisionRecord): string {
  const i = r.inputs;
  const m = r.measured;
  const fields = [
    `policy=${r.policy}`,
    `action=${r.decision.action}`,
    `set="${describeChange(r.decision.settings)}"`,
    r.dryRun ? 'dry_run=1' : `written="${describeChange(r.written)}"`,
    `mem_total_kb=${i.meminfo.MemTotal}`,
    `mem_available_kb=${i.meminfo.MemAvailable}`,
    `free_kb=${i.meminfo.MemFree + i.meminfo.Buffers + i.meminfo.Cached}`,
    `committed_kb=${i.committedKb}`,
    `run=${i.ksm.run}`,
    `pages_to_scan=${i.ksm.pages_to_scan}`,
    `sleep_millisecs=${i.ksm.sleep_millisecs}`,
    `full_scans=${i.ksm.full_scans}`,
    `pages_sharing=${i.ksm.pages_sharing}`,
    m === undefined ? '' : `ksmd_cpu_pct=${m.ksmdCpuPercent.toFixed(2)}`,
    m?.fullScanS === undefined ? '' : `full_scan_s=${m.fullScanS.toFixed(2)}`,
    `cow_left_kb=${r.cowLeftKb}`,
    `reason="${r.decision.reason.replaceAll('"', "'")}"`,
  ];
  return fields.filter((f) => f !== '').join(' ');
}
