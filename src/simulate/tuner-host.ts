/**
 * The simulated host as a `TunerHost`, in virtual time: what `ksmkit tune`
 * would read on this host at this moment, from the engine's model.
 *
 * /proc/meminfo (kB): MemTotal is the scenario's host memory; the host uses
 * its load (reserved, then the `load:` steps) and the guests their frames in
 * use plus KSM's rmap items; the page cache holds what is left up to
 * `page_cache` (reclaimed first under pressure); MemFree is the rest,
 * MemAvailable is MemFree plus the cache. No swap.
 * Committed memory: the RSS of the QEMU guests (groups merging by madvise, as
 * QEMU does): every page of a guest is touched, so RSS is its whole size,
 * merged pages included (each mapping of a KSM page counts). Containers
 * (prctl groups) are not `qemu-system-... -enable-kvm` processes and do not
 * count, as ksmtuned does not count them.
 */
import { ErrnoError } from '../host/errno.ts';
import type { SimulatedHost } from '../surface/simulated-host.ts';
import type { KsmSettingsChange, MemInfoKb, TunerInputs } from '../tuner/inputs.ts';
import type { TunerHost } from '../tuner/loop.ts';

export interface SimHostView {
  readonly sim: SimulatedHost;
  readonly memoryBytes: number;
  readonly pageCacheBytes: number;
  /** The host's own use now. */
  hostLoadBytes(): number;
  /** Frames and rmap items in use by the guests now. */
  guestUseBytes(): number;
  /** Pages of the live QEMU guests (madvise groups). */
  qemuGuestPages(): number;
}

const KB = 1024;

export function simMeminfo(view: SimHostView): MemInfoKb {
  const total = Math.floor(view.memoryBytes / KB);
  const used = Math.floor((view.hostLoadBytes() + view.guestUseBytes()) / KB);
  const cache = Math.max(0, Math.min(Math.floor(view.pageCacheBytes / KB), total - used));
  const free = Math.max(0, total - used - cache);
  return {
    MemTotal: total,
    MemFree: free,
    MemAvailable: free + cache,
    Buffers: 0,
    Cached: cache,
    SwapFree: 0,
  };
}

export class SimTunerHost implements TunerHost {
  constructor(private readonly view: SimHostView) {}

  observe(): TunerInputs {
    const sim = this.view.sim;
    const num = (name: string) => Number(sim.sysfs.read(name).trim());
    return {
      nowMs: sim.host.clock.nowNs / 1e6,
      meminfo: simMeminfo(this.view),
      committedKb: this.view.qemuGuestPages() * 4,
      ksm: {
        run: num('run'),
        pages_to_scan: num('pages_to_scan'),
        sleep_millisecs: num('sleep_millisecs'),
        advisor_mode: this.readSetting('advisor_mode'),
        full_scans: num('full_scans'),
        pages_scanned: num('pages_scanned'),
        pages_shared: num('pages_shared'),
        pages_sharing: num('pages_sharing'),
      },
      ksmdCpuNs: sim.ksm.ksmdCpuNs,
    };
  }

  readSetting(name: keyof KsmSettingsChange): string {
    const text = this.view.sim.sysfs.read(name).trim();
    return name === 'advisor_mode' ? (/\[([^\]]+)\]/.exec(text)?.[1] ?? text) : text;
  }

  writeSetting(name: keyof KsmSettingsChange, value: string): { ok: true } | { ok: false; errno: string } {
    try {
      this.view.sim.sysfs.write(name, value);
      return { ok: true };
    } catch (e) {
      if (e instanceof ErrnoError) return { ok: false, errno: e.code };
      throw e;
    }
  }
}
