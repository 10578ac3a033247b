/**
 * The page checksum through `@node-rs/xxhash` (Rust xxhash, via N-API): the
 * same contract as the engine's `pageChecksumJs`, for the Node-side simulator.
 *
 * Each call makes one subarray view and one bigint; the binding takes no offset.
 * The low half is read back through a 64-bit typed array rather than with a
 * bigint `&`, which would allocate a second bigint.
 */
import { xxh64 } from '@node-rs/xxhash';
import { AssertionFailure } from '../../host/assert.ts';
import type { PageChecksum } from '../../host/xxhash64.ts';

const PAGE_BYTES = 4096;

const hash64 = new BigUint64Array(1);
const hashWords = new Uint32Array(hash64.buffer);
/** Index of the low 32-bit half of hash64[0] in hashWords. */
const LOW_WORD = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1 ? 0 : 1;

/** Low 32 bits of XXH64(bytes[offset .. offset + 4096), seed 0), unsigned: the kernel's calc_checksum(). */
export const pageChecksumNative: PageChecksum = (bytes, offset) => {
  if (!(Number.isInteger(offset) && offset >= 0 && offset + PAGE_BYTES <= bytes.length)) {
    throw new AssertionFailure(`pageChecksumNative: page at ${offset} outside ${bytes.length} bytes`);
  }
  hash64[0] = xxh64(bytes.subarray(offset, offset + PAGE_BYTES));
  return hashWords[LOW_WORD]!;
};
