/**
 * The page compressors (native/compress.c, built at install into
 * native/build/ksmkit-compress.node): LZO1X-1 and LZO-RLE as the kernel's
 * lib/lzo runs them, and the reference LZ4 library at zram's level.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

/** The algorithms this kernel's zram offers (/sys/block/zram0/comp_algorithm), in the addon's order. */
export const ALGORITHMS = ['lzo', 'lzo-rle', 'lz4'] as const;
export type Algorithm = (typeof ALGORITHMS)[number];

/** Entries analyze() writes per page: flags, then one compressed length per algorithm. */
export const ANALYSIS_STRIDE = 1 + ALGORITHMS.length;
/** Flags of analyze(): page_same_filled() held (one repeated 8-byte word), and that word is 0. */
export const SAME_FILLED = 1;
export const ZERO_FILLED = 2;

/** Where output can differ from the kernel's, per algorithm (said in every report). */
export const FIDELITY: Readonly<Record<Algorithm, string>> = {
  lzo: "byte-identical to the kernel's lzo1x_1_compress on 4 KiB pages (2^13-entry dictionary, as lib/lzo)",
  'lzo-rle':
    "byte-identical to the kernel's lzorle1x_1_compress on 4 KiB pages (zero runs as one instruction)",
  lz4:
    "the reference liblz4 at acceleration 1 (zram's and zswap's level); the kernel's lib/lz4 is an older " +
    'copy of the same code: compressed sizes within 0.01% of the kernel’s on the pages tested',
};

interface Addon {
  compress(algo: number, src: Uint8Array): Uint8Array;
  decompress(algo: number, src: Uint8Array, outBytes: number): Uint8Array;
  analyze(src: Uint8Array, out: Int32Array, timing?: Float64Array): void;
}

const ADDON_PATH = fileURLToPath(new URL('../../../native/build/ksmkit-compress.node', import.meta.url));

let addon: Addon | undefined;

/** Why the compressors cannot run here, or undefined when they can. */
export function compressorUnavailable(): string | undefined {
  if (addon !== undefined) return undefined;
  if (!existsSync(ADDON_PATH))
    return `${ADDON_PATH} is not built (npm install builds it; it needs a C compiler and liblz4-dev)`;
  try {
    addon = createRequire(import.meta.url)(ADDON_PATH) as Addon;
    return undefined;
  } catch (e) {
    return `${ADDON_PATH} does not load: ${(e as Error).message}`;
  }
}

function load(): Addon {
  const why = compressorUnavailable();
  if (why !== undefined) throw new Error(`the compressors are unavailable: ${why}`);
  return addon!;
}

function indexOf(algorithm: Algorithm): number {
  return ALGORITHMS.indexOf(algorithm);
}

export function compress(algorithm: Algorithm, src: Uint8Array): Uint8Array {
  return load().compress(indexOf(algorithm), src);
}

export function decompress(algorithm: Algorithm, src: Uint8Array, outBytes: number): Uint8Array {
  return load().decompress(indexOf(algorithm), src, outBytes);
}

/**
 * Entries of a timing array: per algorithm, CPU ns compressing, CPU ns
 * decompressing, pages compressed, pages decompressed (one in eight).
 */
export const TIMING_ENTRIES = 4 * ALGORITHMS.length;

/**
 * Flags and compressed lengths of every page of `pages` into
 * out[ANALYSIS_STRIDE × i …]; adds this thread's CPU time to `timing`.
 */
export function analyzePages(pages: Uint8Array, out: Int32Array, timing?: Float64Array): void {
  load().analyze(pages, out, timing);
}
