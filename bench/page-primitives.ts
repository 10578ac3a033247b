/**
 * Speed of the page primitives of src/host: the page checksum (plain TypeScript
 * against @node-rs/xxhash) and the page comparison (against Node's Buffer.compare).
 *
 *   npx tsx bench/page-primitives.ts [pages]     (default 1048576 pages = 4 GiB of random content)
 *
 * One core. Figures are the best of several rounds; on a shared machine they still vary by 10-30% between runs,
 * and the word loops of the compares run either about 0.65 or about 1.05 us per whole page from one process
 * to the next (the same code; seemingly where the two arrays land in memory).
 */
import { Buffer } from 'node:buffer';
import { randomFillSync } from 'node:crypto';
import { pageChecksumNative } from '../src/backend/sim/native-checksum.ts';
import { comparePages, pageIsZero, pagesEqual } from '../src/host/page-compare.ts';
import { type PageChecksum, pageChecksumJs } from '../src/host/xxhash64.ts';

const PAGE = 4096;
const CHUNK_PAGES = 1 << 14; // 64 MiB per Uint8Array, as the frame pool does

function fillRandom(bytes: Uint8Array): void {
  for (let o = 0; o < bytes.length; o += 65536) randomFillSync(bytes, o, Math.min(65536, bytes.length - o));
}

function checksums(pages: number): void {
  const chunks: Uint8Array[] = [];
  for (let left = pages; left > 0; left -= CHUNK_PAGES) {
    const chunk = new Uint8Array(Math.min(left, CHUNK_PAGES) * PAGE);
    fillRandom(chunk);
    chunks.push(chunk);
  }
  const run = (fn: PageChecksum): { rate: number; x: number } => {
    let x = 0;
    const t0 = process.hrtime.bigint();
    for (const chunk of chunks) for (let o = 0; o < chunk.length; o += PAGE) x ^= fn(chunk, o);
    const s = Number(process.hrtime.bigint() - t0) / 1e9;
    return { rate: pages / s, x };
  };
  // Warm-up on one chunk, then agree, then time.
  for (let o = 0; o < CHUNK_PAGES * PAGE && o < chunks[0]!.length; o += PAGE) {
    if (pageChecksumJs(chunks[0]!, o) !== pageChecksumNative(chunks[0]!, o))
      throw new Error(`disagree at ${o}`);
  }
  const results: Record<string, number[]> = { js: [], native: [] };
  for (let round = 0; round < 2; round++) {
    for (const [name, fn] of [
      ['js', pageChecksumJs],
      ['native', pageChecksumNative],
    ] as const) {
      const { rate } = run(fn);
      results[name]!.push(rate);
    }
  }
  const best = (name: string): number => Math.max(...results[name]!);
  const js = best('js');
  const native = best('native');
  console.log(`checksum over ${pages} random pages, best of 2:`);
  console.log(
    `  pageChecksumJs      ${js.toFixed(0).padStart(9)} pages/s  ${(1e9 / js).toFixed(0).padStart(6)} ns/page`,
  );
  console.log(
    `  pageChecksumNative  ${native.toFixed(0).padStart(9)} pages/s  ${(1e9 / native).toFixed(0).padStart(6)} ns/page`,
  );
  console.log(
    `  native/js = ${(native / js).toFixed(2)}x; js within 30% of native: ${js >= 0.7 * native ? 'yes' : 'no'}`,
  );
}

type Op = 'comparePages' | 'pagesEqual' | 'bufA.compare' | 'Buffer.compare';
const OPS: readonly Op[] = ['comparePages', 'pagesEqual', 'bufA.compare', 'Buffer.compare'];

/** Nanoseconds per call of `op` over `n` calls; one plain loop per operation, so each call site stays monomorphic. */
function timeOp(op: Op, n: number, a: Uint8Array, aOff: number, b: Uint8Array, bOff: number): number {
  let x = 0;
  const t0 = process.hrtime.bigint();
  switch (op) {
    case 'comparePages':
      for (let i = 0; i < n; i++) x += comparePages(a, aOff, b, bOff);
      break;
    case 'pagesEqual':
      for (let i = 0; i < n; i++) x += pagesEqual(a, aOff, b, bOff) ? 1 : 0;
      break;
    case 'bufA.compare': {
      // Buffers over the same memory, made once; Buffer#compare takes offsets, so no view per call.
      const bufA = Buffer.from(a.buffer, a.byteOffset, a.length);
      const bufB = Buffer.from(b.buffer, b.byteOffset, b.length);
      for (let i = 0; i < n; i++) x += bufA.compare(bufB, bOff, bOff + PAGE, aOff, aOff + PAGE);
      break;
    }
    case 'Buffer.compare': {
      const pa = a.subarray(aOff, aOff + PAGE);
      const pb = b.subarray(bOff, bOff + PAGE);
      for (let i = 0; i < n; i++) x += Buffer.compare(pa, pb);
      break;
    }
  }
  const ns = Number(process.hrtime.bigint() - t0) / n;
  if (Number.isNaN(x)) throw new Error('unreachable');
  return ns;
}

function compares(): void {
  // Two 64 MiB arrays, as two chunks of the frame pool; pages at multiples of 4096.
  const a = new Uint8Array(CHUNK_PAGES * PAGE);
  const b = new Uint8Array(CHUNK_PAGES * PAGE);
  const aOff = 1234 * PAGE;
  const bOff = 4321 * PAGE;
  fillRandom(a.subarray(aOff, aOff + PAGE));
  const cases: [string, number | undefined][] = [
    ['equal pages', undefined],
    ['differing at byte 0', 0],
    ['differing at byte 4000', 4000],
  ];
  const n = 20_000;
  const best = new Map<string, number>();
  for (let round = 0; round < 15; round++) {
    for (const [name, at] of cases) {
      b.set(a.subarray(aOff, aOff + PAGE), bOff);
      if (at !== undefined) b[bOff + at] = (b[bOff + at]! + 1) & 0xff;
      const want = Math.sign(Buffer.compare(a.subarray(aOff, aOff + PAGE), b.subarray(bOff, bOff + PAGE)));
      if (comparePages(a, aOff, b, bOff) !== want) throw new Error(`comparePages disagrees on ${name}`);
      for (const op of OPS) {
        const key = `${name}\t${op}`;
        best.set(key, Math.min(best.get(key) ?? Number.POSITIVE_INFINITY, timeOp(op, n, a, aOff, b, bOff)));
      }
    }
  }
  console.log('ns per call, best of 15 rounds of 20000 calls (pages in two 64 MiB arrays):');
  for (const [name] of cases) {
    console.log(`  ${name}:`);
    for (const op of OPS)
      console.log(`    ${op.padEnd(16)} ${best.get(`${name}\t${op}`)!.toFixed(1).padStart(7)} ns`);
  }
  const z = new Uint8Array(CHUNK_PAGES * PAGE);
  let zeroBest = Number.POSITIVE_INFINITY;
  for (let round = 0; round < 15; round++) {
    let x = 0;
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) x += pageIsZero(z, aOff) ? 1 : 0;
    zeroBest = Math.min(zeroBest, Number(process.hrtime.bigint() - t0) / n);
    if (x !== n) throw new Error('pageIsZero disagrees');
  }
  console.log(`  zero page: pageIsZero ${zeroBest.toFixed(1)} ns`);
}

const pages = Number(process.argv[2] ?? 1 << 20);
compares();
checksums(pages);
