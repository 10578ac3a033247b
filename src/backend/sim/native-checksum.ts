/**
 * The page checksum through `@node-rs/xxhash` (Rust xxhash, via N-API): the
 * same contract as the engine's `pageChecksumJs`, for the Node-side simulator.
 *
 * Each call makes one subarray view and one bigint; the binding takes no offset.
 */
import { xxh64 } from '@node-rs/xxhash';
import { AssertionFailure } from '../../host/assert.ts';
import type { PageChecksum } from '../../host/xxhash64.ts';

const PAGE_BYTES = 4096;
const LOW_32 = 0xffffffffn;

/** Low 32 bits of XXH64(bytes[offset .. offset + 4096), seed 0), unsigned: the kernel's calc_checksum(). */
export const pageChecksumNative: PageChecksum = (bytes, offset) => {
  if (!(Number.isInteger(offset) && offset >= 0 && offset + PAGE_BYTES <= bytes.length)) {
    throw new AssertionFailure(`pageChecksumNative: page at ${offset} outside ${bytes.length} bytes`);
  }
  return Number(xxh64(bytes.subarray(offset, offset + PAGE_BYTES)) & LOW_32);
};
