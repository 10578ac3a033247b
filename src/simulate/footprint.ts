/**
 * What a run will need of this machine's memory, said before anything is
 * allocated: a scenario of 2 TiB of guests must be refused with the figure
 * and what the machine has, not grow until the kernel's OOM killer ends it.
 */
import { freemem, totalmem } from 'node:os';
import { PAGE_SIZE } from '../host/constants.ts';
import { type Scenario, totalGuestPages } from './scenario.ts';
import { formatBytes } from './units.ts';

/**
 * Engine memory per guest page in fingerprint mode: the 8-byte fingerprint,
 * the frame's metadata, the page-table entry, the rmap item (60 bytes) and
 * the stable tree's share. Measured: 64 GiB of guests (16.8 million pages)
 * peaked at 1.9 GiB resident, about 120 bytes a page (README, "Scale").
 */
export const ENGINE_BYTES_PER_GUEST_PAGE = 128;
/** Node, the engine's code and its fixed pools. */
export const ENGINE_BASE_BYTES = 256 * 2 ** 20;

export interface MemoryNeed {
  /** What the run is estimated to need. */
  readonly bytes: number;
  /** How the figure was made, for the message. */
  readonly basis: string;
}

/** This machine's memory: available now (MemAvailable) and in all. */
export interface MachineMemory {
  readonly availableBytes: number;
  readonly totalBytes: number;
}

export function machineMemory(): MachineMemory {
  return { availableBytes: freemem(), totalBytes: totalmem() };
}

/** What simulating `scenario` needs: on the engine, its metadata; on the kernel, the guests' memory itself. */
export function runMemoryNeed(scenario: Scenario, backend: 'sim' | 'kernel'): MemoryNeed {
  const pages = totalGuestPages(scenario);
  if (backend === 'kernel')
    return {
      bytes: pages * PAGE_SIZE + ENGINE_BASE_BYTES,
      basis: `the guests' ${formatBytes(pages * PAGE_SIZE)}, allocated for real by the kernel backend's agents`,
    };
  return {
    bytes: pages * ENGINE_BYTES_PER_GUEST_PAGE + ENGINE_BASE_BYTES,
    basis: `${formatBytes(pages * PAGE_SIZE)} of guests is ${pages.toLocaleString('en-US')} pages, at about ${ENGINE_BYTES_PER_GUEST_PAGE} bytes of engine memory each`,
  };
}

/**
 * The sentence refusing a run that needs more than the machine has available,
 * or undefined when it fits.
 */
export function memoryRefusal(need: MemoryNeed, machine: MachineMemory, hint = ''): string | undefined {
  if (!Number.isFinite(need.bytes) || need.bytes > machine.availableBytes) {
    return (
      `this run needs about ${formatBytes(need.bytes)} of memory: ${need.basis}; this machine has ` +
      `${formatBytes(machine.availableBytes)} available of ${formatBytes(machine.totalBytes)}${hint}`
    );
  }
  return undefined;
}

/** A --scale factor that would fit, for the refusal's hint (one significant digit, rounded down). */
export function fittingScale(need: MemoryNeed, machine: MachineMemory): number | undefined {
  const room = machine.availableBytes - ENGINE_BASE_BYTES;
  if (room <= 0 || !Number.isFinite(need.bytes)) return undefined;
  const factor = (room * 0.8) / Math.max(1, need.bytes - ENGINE_BASE_BYTES);
  if (factor >= 1 || factor < 0.001) return undefined;
  const magnitude = 10 ** Math.floor(Math.log10(factor));
  return Number((Math.floor(factor / magnitude) * magnitude).toPrecision(1));
}
