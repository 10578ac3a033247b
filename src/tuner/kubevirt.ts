/**
 * KubeVirt's node handler (kubevirt/kubevirt pkg/virt-handler/ksm/ksm.go,
 * `calculateNewRunSleepAndPages`, "inspired from oVirt MOM's ksm.rules"),
 * decision for decision, with its defaults (node annotations override them
 * there; options here):
 *
 *   sleep = 100 * 16 GiB-in-kB / (MemTotal - MemAvailable), at least 100 / 10
 *   no pressure (MemAvailable > MemTotal * 0.2):
 *     running: pages_to_scan - 50; below 64 -> 64 and stop   (writes sleep, pages, run)
 *     stopped: run=0 only
 *   pressure:
 *     running: pages_to_scan + 300, at most 1250
 *     stopped: start at 100
 *
 * `running` and the pages it starts from are read back from sysfs (run and
 * pages_to_scan), not remembered. The handler looks at start and then on a
 * ticker; before kubevirt#16049 it looked only when the cluster's
 * configuration changed (`pollMs: undefined` reproduces that trap: one look at
 * start, none after).
 */
import type { Measured, Tuner, TunerDecision, TunerInputs } from './inputs.ts';

export interface KubevirtConfig {
  readonly pagesBoost: number;
  readonly pagesDecay: number;
  readonly pagesMin: number;
  readonly pagesMax: number;
  readonly pagesInit: number;
  readonly sleepMsBaseline: number;
  /** Pressure when MemAvailable <= MemTotal * freePercent. */
  readonly freePercent: number;
  /** The ticker; undefined: the handler before the fix, which only looked when its configuration changed. */
  readonly pollMs: number | undefined;
}

export const KUBEVIRT_DEFAULTS: KubevirtConfig = {
  pagesBoost: 300,
  pagesDecay: -50,
  pagesMin: 64,
  pagesMax: 1250,
  pagesInit: 100,
  sleepMsBaseline: 100,
  freePercent: 0.2,
  pollMs: 180_000,
};

export function kubevirtDecide(config: KubevirtConfig, inputs: TunerInputs): TunerDecision {
  const { MemTotal: total, MemAvailable: available } = inputs.meminfo;
  const running = inputs.ksm.run === 1;
  const used = Math.max(1, total - available);
  let sleep = Math.floor((config.sleepMsBaseline * 16 * 1024 * 1024) / used);
  const floor = Math.floor(config.sleepMsBaseline / 10);
  if (sleep < floor) sleep = floor;
  const figures = `MemAvailable ${available} kB of ${total} kB`;
  // float32 in Go: the comparison is at float precision, which only matters at the exact edge.
  const pressure = !(Math.fround(available) > Math.fround(total) * Math.fround(config.freePercent));
  const base = { warnings: [], debug: [] };
  if (!pressure) {
    if (!running) {
      return {
        ...base,
        action: 'hold',
        settings: { run: 0 },
        reason: `no pressure (${figures}): KSM stays off`,
      };
    }
    const pages = inputs.ksm.pages_to_scan + config.pagesDecay;
    if (pages < config.pagesMin) {
      return {
        ...base,
        action: 'stop',
        settings: { run: 0 },
        reason: `no pressure (${figures}): pages_to_scan decayed below ${config.pagesMin}, stop`,
      };
    }
    return {
      ...base,
      action: 'adjust',
      settings: { sleep_millisecs: sleep, pages_to_scan: pages, run: 1 },
      reason: `no pressure (${figures}): decay to ${pages} pages, sleep ${sleep} ms`,
    };
  }
  const pages = running
    ? Math.min(config.pagesMax, inputs.ksm.pages_to_scan + config.pagesBoost)
    : config.pagesInit;
  return {
    ...base,
    action: running ? 'adjust' : 'start',
    settings: { sleep_millisecs: sleep, pages_to_scan: pages, run: 1 },
    reason: `pressure (${figures} <= ${config.freePercent * 100}%): ${running ? 'boost' : 'start'} at ${pages} pages, sleep ${sleep} ms`,
  };
}

export class KubevirtTuner implements Tuner {
  readonly name = 'kubevirt';
  readonly intervalMs: number;
  readonly firstDecisionAfterInterval = false;
  private looked = false;

  constructor(readonly config: KubevirtConfig = KUBEVIRT_DEFAULTS) {
    this.intervalMs = config.pollMs ?? 180_000;
  }

  decide(inputs: TunerInputs, _measured: Measured | undefined): TunerDecision {
    if (this.config.pollMs === undefined && this.looked) {
      return {
        action: 'hold',
        settings: {},
        reason: 'configuration unchanged: the handler before kubevirt#16049 does not look again',
        warnings: [],
        debug: [],
      };
    }
    this.looked = true;
    return kubevirtDecide(this.config, inputs);
  }
}
