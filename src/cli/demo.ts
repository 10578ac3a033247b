/**
 * `ksmkit demo`: a short, readable run of the engine. Eight small "guests"
 * are cloned from one disk image with some private pages each; ksmd runs on
 * the virtual clock with tuned settings and we watch /sys/kernel/mm/ksm.
 */
import { createHash } from 'node:crypto';
import pc from 'picocolors';
import { pageChecksumNative } from '../backend/sim/native-checksum.ts';
import { pageCompareNative } from '../backend/sim/native-compare.ts';
import { PAGE_SIZE } from '../host/constants.ts';
import { ENGINE_BASE_BYTES, type MemoryNeed } from '../simulate/footprint.ts';
import { formatBytes } from '../simulate/units.ts';
import { SimulatedHost } from '../surface/simulated-host.ts';

export interface DemoOptions {
  readonly guests: number;
  readonly guestMiB: number;
  readonly write: (line: string) => void;
}

function imagePage(index: number): Uint8Array {
  // Deterministic, incompressible "image" contents: one SHA-256 block repeated per 32 bytes.
  const out = new Uint8Array(PAGE_SIZE);
  for (let k = 0; k < PAGE_SIZE / 32; k++) {
    out.set(createHash('sha256').update(`demo-image/${index}/${k}`).digest(), k * 32);
  }
  return out;
}

/**
 * The demo holds page contents as bytes: 4 KiB a page, plus the frame's and
 * the rmap item's metadata, plus the host's spare frames and Node itself.
 */
export function demoMemoryNeed(guests: number, guestMiB: number): MemoryNeed {
  const bytes = (guests * guestMiB + 64) * 2 ** 20;
  return {
    bytes: bytes * 1.1 + ENGINE_BASE_BYTES,
    basis: `${guests} guests of ${guestMiB} MiB held as bytes, ${formatBytes(bytes)}, plus metadata`,
  };
}

export function runDemo(options: DemoOptions): void {
  const { write } = options;
  const pagesPerGuest = (options.guestMiB * 2 ** 20) / PAGE_SIZE;
  const imagePages = Math.floor(pagesPerGuest * 0.6);
  const zeroPages = Math.floor(pagesPerGuest * 0.25);
  const sim = new SimulatedHost({
    memoryBytes: (options.guests * options.guestMiB + 64) * 2 ** 20,
    checksum: pageChecksumNative,
    pageCompare: pageCompareNative,
  });
  const { host, sysfs } = sim;
  write(pc.bold('ksmkit demo: Kernel Samepage Merging, simulated as Linux 6.18 does it'));
  write(
    `${options.guests} guests of ${options.guestMiB} MiB each: ${imagePages} pages from one shared image, ` +
      `${zeroPages} zero pages, ${pagesPerGuest - imagePages - zeroPages} pages of their own.`,
  );
  const image = Array.from({ length: imagePages }, (_, i) => imagePage(i));
  const own = new Uint8Array(PAGE_SIZE);
  for (let g = 0; g < options.guests; g++) {
    const p = host.spawn({ comm: `guest-${g}` });
    const base = host.mmap(p.pid, { lengthBytes: pagesPerGuest * PAGE_SIZE });
    for (let i = 0; i < pagesPerGuest; i++) {
      if (i < imagePages) host.write(p.pid, base + i * PAGE_SIZE, image[i]!);
      else if (i < imagePages + zeroPages) host.write(p.pid, base + i * PAGE_SIZE, new Uint8Array(PAGE_SIZE));
      else {
        own.fill(0);
        new DataView(own.buffer).setUint32(0, g * 1_000_003 + i);
        host.write(p.pid, base + i * PAGE_SIZE, own);
      }
    }
    host.madvise(p.pid, base, pagesPerGuest * PAGE_SIZE, 'mergeable');
  }
  const usedBefore = host.frames.usedFrames;
  write(`Memory in use before KSM: ${mib(usedBefore * PAGE_SIZE)}.`);
  sysfs.write('pages_to_scan', '1000');
  sysfs.write('sleep_millisecs', '20');
  sysfs.write('run', '1');
  write('');
  write(`echo 1000 > pages_to_scan; echo 20 > sleep_millisecs; echo 1 > run   ${pc.dim('(virtual time)')}`);
  write(
    pad(
      ['time', 'full_scans', 'pages_shared', 'pages_sharing', 'pages_volatile', 'saved (general_profit)'],
      [8, 11, 13, 14, 15, 22],
    ),
  );
  const stepMs = 500;
  for (let t = stepMs; t <= 8000; t += stepMs) {
    sim.ksm.advance(stepMs);
    const c = sim.ksm.counters();
    write(
      pad(
        [
          `${(t / 1000).toFixed(1)} s`,
          `${c.full_scans}`,
          `${c.pages_shared}`,
          `${c.pages_sharing}`,
          `${c.pages_volatile}`,
          mib(c.general_profit),
        ],
        [8, 11, 13, 14, 15, 22],
      ),
    );
  }
  const usedAfter = host.frames.usedFrames;
  write('');
  write(
    `Memory in use after KSM: ${mib(usedAfter * PAGE_SIZE)} (${pc.green(`${(100 * (1 - usedAfter / usedBefore)).toFixed(1)}% less`)}). ` +
      `ksmd used ${(sim.ksm.ksmdCpuNs / 1e9).toFixed(2)} s of CPU by the cost model.`,
  );
  write(
    'Each image page is now one write-protected KSM page (pages_shared) mapped by every guest (pages_sharing);' +
      ' a guest that writes to one gets a private copy by copy-on-write. The zero pages of all guests share a' +
      ' few KSM pages too: at most max_page_sharing (256) mappings each. Pages of their own wait in the unstable' +
      ' tree (pages_unshared) until smart_scan starts skipping them (then they count as pages_volatile).',
  );
}

function mib(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(1)} MiB`;
}

function pad(cells: string[], widths: number[]): string {
  return cells.map((c, i) => c.padStart(widths[i]!)).join(' ');
}
