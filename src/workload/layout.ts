/**
 * Deterministic virtual addresses for workload regions, the same on both
 * backends (KSM walks an mm's VMAs in address order, so the order of the
 * rmap_item list, and with it the counters after a partial pass, depends on
 * where regions sit).
 *
 * Each process has a cursor starting at 0x100000000000 (16 TiB, far above any
 * heap or library mapping of the real process). A region of n pages is placed
 * at the cursor, then the cursor moves by roundUp(n × 4096, 2 MiB) + 2 MiB: the
 * 2 MiB alignment lets a THP region use huge pages, and the gap keeps adjacent
 * regions from merging into one VMA. An unmapped region's space is not reused.
 * A forked child copies its parent's cursor and regions.
 */

import { PAGE_SIZE_BYTES } from '../backend/backend.ts';
import { assert } from '../host/assert.ts';

export const LAYOUT_START_ADDRESS = 0x1000_0000_0000;
export const LAYOUT_ALIGN_BYTES = 2 * 1024 * 1024;

/** How far the cursor moves for a region of `pageCount` pages. */
export function regionStrideBytes(pageCount: number): number {
  assert(Number.isSafeInteger(pageCount) && pageCount >= 1, `regionStrideBytes: bad page count ${pageCount}`);
  const sizeBytes = pageCount * PAGE_SIZE_BYTES;
  return Math.ceil(sizeBytes / LAYOUT_ALIGN_BYTES) * LAYOUT_ALIGN_BYTES + LAYOUT_ALIGN_BYTES;
}

interface ProcessLayout {
  cursorAddress: number;
  readonly regionAddresses: Map<string, number>;
}

/** The address plan of every live process of a replay. */
export class AddressLayout {
  private readonly processes = new Map<string, ProcessLayout>();

  spawn(process: string): void {
    assert(!this.processes.has(process), `AddressLayout.spawn: process "${process}" already exists`);
    this.processes.set(process, { cursorAddress: LAYOUT_START_ADDRESS, regionAddresses: new Map() });
  }

  /** Places a new region at the process's cursor and returns its address. */
  place(process: string, region: string, pageCount: number): number {
    const layout = this.layoutOf(process);
    assert(
      !layout.regionAddresses.has(region),
      `AddressLayout.place: "${process}" already has region "${region}"`,
    );
    const address = layout.cursorAddress;
    layout.cursorAddress += regionStrideBytes(pageCount);
    assert(
      Number.isSafeInteger(layout.cursorAddress),
      `AddressLayout.place: "${process}" ran out of address space`,
    );
    layout.regionAddresses.set(region, address);
    return address;
  }

  unmap(process: string, region: string): void {
    const removed = this.layoutOf(process).regionAddresses.delete(region);
    assert(removed, `AddressLayout.unmap: "${process}" has no region "${region}"`);
  }

  fork(parent: string, child: string): void {
    const layout = this.layoutOf(parent);
    assert(!this.processes.has(child), `AddressLayout.fork: process "${child}" already exists`);
    this.processes.set(child, {
      cursorAddress: layout.cursorAddress,
      regionAddresses: new Map(layout.regionAddresses),
    });
  }

  exit(process: string): void {
    assert(this.processes.delete(process), `AddressLayout.exit: no process "${process}"`);
  }

  /** exec: every region goes; the cursor stays, so no address is reused. */
  exec(process: string): void {
    this.layoutOf(process).regionAddresses.clear();
  }

  addressOf(process: string, region: string): number | undefined {
    return this.processes.get(process)?.regionAddresses.get(region);
  }

  cursorOf(process: string): number {
    return this.layoutOf(process).cursorAddress;
  }

  private layoutOf(process: string): ProcessLayout {
    const layout = this.processes.get(process);
    assert(layout !== undefined, `AddressLayout: no process "${process}"`);
    return layout;
  }
}
