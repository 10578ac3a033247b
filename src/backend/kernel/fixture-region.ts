/** Regions for kernel tests: each at its own 128 MiB slot of the layout's address range, private, no THP unless asked. */
import type { RegionMapping } from '../backend.ts';

export const FIXTURE_BASE_ADDRESS = 0x1000_0000_0000;
const SLOT_BYTES = 64 * 2 * 1024 * 1024;

/** Region `name` at slot `index`. */
export function fixtureRegion(
  name: string,
  index: number,
  pageCount: number,
  extra: Partial<RegionMapping> = {},
): RegionMapping {
  return {
    name,
    address: FIXTURE_BASE_ADDRESS + index * SLOT_BYTES,
    pageCount,
    shared: false,
    thp: false,
    ...extra,
  };
}
