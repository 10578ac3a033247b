/**
 * The compression comparison, unit by unit, and against the real zram: the
 * same pages are estimated (estimate --compare on a dump file) and written to
 * /dev/zram0 once per algorithm; mm_stat must agree: same_pages, huge_pages
 * and orig_data_size exactly, compr_data_size exactly for the LZO family (our
 * compressor is byte-identical) and within 1% for lz4 (liblz4 against the
 * kernel's older copy), mem_used_total within 3%. The device goes through
 * ZramGuard: one user per machine, reset and its algorithm restored on every
 * exit path.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { mergeableProcesses, SysfsGuard } from '../../backend/kernel/sysfs-guard.ts';
import { ZramGuard } from '../../backend/kernel/zram-guard.ts';
import { runEstimate } from '../estimate/estimate.ts';
import { PAGE_BYTES } from '../estimate/model.ts';
import {
  prepareKsmd,
  python3,
  pythonWorkload,
  runKsmdUntilSettled,
  type Started,
  startReady,
  stopAll,
} from '../estimate/testing.ts';
import type { CompareReport } from './compare.ts';
import {
  ALGORITHMS,
  ANALYSIS_STRIDE,
  analyzePages,
  compress,
  compressorUnavailable,
  decompress,
  SAME_FILLED,
  ZERO_FILLED,
} from './native.ts';
import { renderCompare } from './report.ts';
import { ZramModel, ZswapModel } from './zram.ts';
import { DEFAULT_CLASSES, SizeClassTable, ZsPool, zspageChainSize } from './zsmalloc.ts';

const noCompressor = compressorUnavailable();
const skipNative = noCompressor !== undefined ? noCompressor : false;

/** A seeded xorshift32: the same pages on every run. */
function random(seed: number): (bytes: Uint8Array) => void {
  let x = seed >>> 0 || 1;
  return (bytes) => {
    for (let i = 0; i < bytes.length; i++) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      bytes[i] = x & 0xff;
    }
  };
}

/**
 * Pages of every kind zram tells apart: program text, JSON text, zero pages,
 * pages of one repeated non-zero word, pages one word short of that, random
 * (incompressible) pages, random prefixes of 3,520..3,708 bytes before zeroes
 * (their compressed lengths straddle huge_class_size), and the program pages
 * again (each copy is a page of its own to zram).
 */
export function samplePages(): Buffer {
  const pages: Buffer[] = [];
  const fill = random(0x5eed);
  const program = readFileSync(process.execPath);
  const programPages: Buffer[] = [];
  for (let i = 0; i < 192; i++) {
    const at = (((i * 7919) % Math.floor(program.length / PAGE_BYTES - 1)) + 1) * PAGE_BYTES;
    programPages.push(Buffer.from(program.subarray(at, at + PAGE_BYTES)));
  }
  pages.push(...programPages);
  const json = Buffer.from(
    JSON.stringify({ config: process.config, env: { PATH: '/usr/bin' }, versions: process.versions }).repeat(
      40,
    ),
  );
  for (let i = 0; i + PAGE_BYTES <= json.length && i < 24 * PAGE_BYTES; i += PAGE_BYTES)
    pages.push(Buffer.from(json.subarray(i, i + PAGE_BYTES)));
  for (let i = 0; i < 48; i++) pages.push(Buffer.alloc(PAGE_BYTES));
  for (const word of [0x0101010101010101n, 0x0123456789abcdefn, 0xffffffffffffffffn, 0x8000000000000001n]) {
    const p = Buffer.alloc(PAGE_BYTES);
    for (let i = 0; i < PAGE_BYTES; i += 8) p.writeBigUInt64LE(word, i);
    pages.push(p, Buffer.from(p));
    const almost = Buffer.from(p);
    almost.writeBigUInt64LE(word ^ 1n, PAGE_BYTES - 8);
    pages.push(almost);
  }
  for (let i = 0; i < 24; i++) {
    const p = Buffer.alloc(PAGE_BYTES);
    fill(p);
    pages.push(p);
  }
  for (let k = 3520; k <= 3708; k += 4) {
    const p = Buffer.alloc(PAGE_BYTES);
    fill(p.subarray(0, k));
    pages.push(p);
  }
  pages.push(...programPages.slice(0, 64));
  return Buffer.concat(pages);
}

test('zsmalloc: chains of up to 8 pages, huge_class_size 3625, merged classes', () => {
  assert.equal(zspageChainSize(4096, 8), 1);
  assert.equal(zspageChainSize(2048, 8), 1);
  // 3632 bytes: 9 objects in 8 pages waste 80 bytes, against 464 in one page.
  assert.equal(zspageChainSize(3632, 8), 8);
  assert.equal(DEFAULT_CLASSES.hugeClassSize, 3625);
  assert.equal(DEFAULT_CLASSES.classFor(3624).huge, false);
  assert.equal(DEFAULT_CLASSES.classFor(3625).huge, true);
  assert.equal(DEFAULT_CLASSES.classFor(4096).size, 4096);
  // The handle comes first: 24 bytes of data + 8 fit the 32-byte class, 25 do not.
  assert.equal(DEFAULT_CLASSES.classFor(24).size, 32);
  assert.equal(DEFAULT_CLASSES.classFor(25).size, 48);
  // One-page chains (CONFIG_ZSMALLOC_CHAIN_SIZE=1, the old layout) make many more classes huge.
  assert.ok(new SizeClassTable(1).hugeClassSize < 3625);
  const pool = new ZsPool();
  pool.malloc(3000, 5);
  // 3008-byte class: 8 objects in 6 pages (waste 512)? whatever the table says, 5 objects take one zspage.
  const c = DEFAULT_CLASSES.classFor(3000);
  assert.equal(pool.totalPages(), Math.ceil(5 / c.objsPerZspage) * c.pagesPerZspage);
  assert.throws(() => pool.malloc(0), /zs_malloc size 0/);
});

test('zram model: same-filled pages cost nothing, huge pages a whole page, the rest their class', () => {
  const z = new ZramModel();
  z.write(SAME_FILLED | ZERO_FILLED, 20, 3);
  z.write(0, 3625, 2);
  z.write(0, 3624, 1);
  z.write(0, 100, 10);
  const s = z.mmStat();
  assert.equal(s.orig_data_size, 16 * PAGE_BYTES);
  assert.equal(s.same_pages, 3);
  assert.equal(s.huge_pages, 2);
  assert.equal(s.compr_data_size, 2 * PAGE_BYTES + 3624 + 1000);
  const pool = new ZsPool();
  pool.malloc(PAGE_BYTES, 2);
  pool.malloc(3624);
  pool.malloc(100, 10);
  assert.equal(s.mem_used_total, pool.totalPages() * PAGE_BYTES);
});

test('zswap model: zero-filled pages go to the swap zeromap, other same-filled pages are compressed', () => {
  const w = new ZswapModel();
  w.store(SAME_FILLED | ZERO_FILLED, 20, 4);
  w.store(SAME_FILLED, 30, 2);
  w.store(0, 5000, 1);
  const s = w.stat();
  assert.deepEqual(
    { pages: s.pages, zero: s.zeroFilledPages, stored: s.storedPages, incompressible: s.incompressiblePages },
    { pages: 7, zero: 4, stored: 3, incompressible: 1 },
  );
  assert.equal(s.compressedBytes, 60 + PAGE_BYTES);
});

test('compressors: every page comes back; LZO-RLE announces itself; corrupt input is refused', {
  skip: skipNative,
}, () => {
  const pages = samplePages();
  for (const algorithm of ALGORITHMS) {
    for (let at = 0; at < pages.length; at += PAGE_BYTES) {
      const page = pages.subarray(at, at + PAGE_BYTES);
      const packed = compress(algorithm, page);
      assert.deepEqual(
        Buffer.from(decompress(algorithm, packed, PAGE_BYTES)),
        page,
        `${algorithm} page ${at / PAGE_BYTES}`,
      );
    }
    assert.throws(() => decompress(algorithm, Uint8Array.of(0x20, 0x00), PAGE_BYTES), /corrupt/);
  }
  const rle = compress('lzo-rle', Buffer.alloc(PAGE_BYTES, 7));
  assert.deepEqual([...rle.subarray(0, 2)], [17, 1]);
  // A zero run of 4,000 bytes is one 4-byte instruction under lzo-rle, many matches under lzo.
  const runs = Buffer.alloc(PAGE_BYTES);
  random(9)(runs.subarray(0, 96));
  assert.ok(compress('lzo-rle', runs).length < compress('lzo', runs).length);
  // Short inputs are all literals, as the kernel writes them (17 + n, then the end marker).
  assert.deepEqual([...compress('lzo', Uint8Array.of(1, 2, 3))], [20, 1, 2, 3, 17, 0, 0]);
  const out = new Int32Array(3 * ANALYSIS_STRIDE);
  const three = Buffer.alloc(3 * PAGE_BYTES);
  three.fill(0xab, PAGE_BYTES, 2 * PAGE_BYTES);
  three[3 * PAGE_BYTES - 1] = 1;
  analyzePages(three, out);
  assert.deepEqual(
    [out[0], out[ANALYSIS_STRIDE], out[2 * ANALYSIS_STRIDE]],
    [SAME_FILLED | ZERO_FILLED, SAME_FILLED, 0],
  );
});

test('estimate --compare on a dump: KSM leaves one copy of each content to zram; zswap dedup keeps one entry per content; reader threads agree', {
  skip: skipNative,
}, async () => {
  const fill = random(77);
  const text = Buffer.alloc(PAGE_BYTES);
  text.write('{"id":1,"name":"alpha","tags":["beta","gamma"]} '.repeat(90));
  const noise = Buffer.alloc(PAGE_BYTES);
  fill(noise);
  const word = Buffer.alloc(PAGE_BYTES, 0x5a);
  // 3 copies of a text page, 2 zero pages, 1 random page, 2 pages of one repeated byte.
  const pages = Buffer.concat([text, text, text, Buffer.alloc(2 * PAGE_BYTES), noise, word, word]);
  const dir = mkdtempSync(join(tmpdir(), 'ksmkit-compare-'));
  const dump = join(dir, 'pages.raw');
  writeFileSync(dump, Buffer.concat([pages, pages]));
  try {
    const settings = { maxPageSharing: 256, useZeroPages: false };
    const inline = await runEstimate({ files: [dump], compare: true, threads: 0, settings });
    const c = inline.compare!;
    assert.equal(c.pages, 16);
    assert.equal(c.physicalPages, 16);
    assert.equal(c.distinctContents, 4);
    // One KSM page per content, and the random page alone (it has a twin in the second copy: merged too).
    assert.equal(c.pagesAfterKsm, 4);
    assert.equal(c.ksm.pagesFreed, 12);
    for (const a of c.algorithms) {
      assert.equal(a.zram.same_pages, 8, `${a.algorithm}: zero and one-byte pages are same-filled`);
      assert.equal(a.zram.huge_pages, 2, `${a.algorithm}: the random pages are stored whole`);
      assert.equal(a.ksmThenZram.same_pages, 2);
      assert.equal(a.ksmThenZram.huge_pages, 1);
      assert.equal(a.zswap.zeroFilledPages, 4);
      assert.equal(a.zswapDedup.storedPages, 3, `${a.algorithm}: text, random, byte pages once each`);
      assert.ok(a.compressNs > 0 && a.decompressNs > 0);
    }
    const threaded = await runEstimate({ files: [dump], compare: true, threads: 2, settings });
    const strip = (r: typeof c) => r.algorithms.map(({ compressNs: _c, decompressNs: _d, ...rest }) => rest);
    assert.deepEqual(strip(threaded.compare!), strip(c));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

function zramAvailability(): string | false {
  if (noCompressor !== undefined) return noCompressor;
  if (process.platform !== 'linux') return `needs Linux, not ${process.platform}`;
  if (process.getuid?.() !== 0) return 'needs root (writes /dev/zram0)';
  if (!existsSync('/sys/block/zram0/mm_stat')) return 'no /dev/zram0 (modprobe zram)';
  return false;
}

/** The model's zram figures against the kernel's mm_stat for the same pages, algorithm by algorithm. */
async function holdAgainstZram(t: TestContext, pages: Buffer, compare: CompareReport): Promise<void> {
  assert.equal(compare.physicalPages, pages.length / PAGE_BYTES);
  const guard = await ZramGuard.acquire({ lockTimeoutMs: 600_000 });
  try {
    const offered = guard.algorithms();
    const modelled = ALGORITHMS.filter((a) => offered.includes(a));
    t.diagnostic(`zram0 offers ${offered.join(' ')}; compared: ${modelled.join(' ')}`);
    assert.ok(modelled.length > 0, 'the kernel offers none of lzo, lzo-rle, lz4');
    for (const algorithm of modelled) {
      const kernel = guard.writePages(algorithm, pages, pages.length + (1 << 20));
      const model = compare.algorithms.find((a) => a.algorithm === algorithm)!.zram;
      t.diagnostic(JSON.stringify({ algorithm, kernel, model }));
      assert.equal(model.same_pages, kernel.same_pages, `${algorithm}: same_pages`);
      assert.equal(model.huge_pages, kernel.huge_pages, `${algorithm}: huge_pages`);
      assert.equal(model.orig_data_size, kernel.orig_data_size, `${algorithm}: orig_data_size`);
      const compr = (model.compr_data_size - kernel.compr_data_size) / kernel.compr_data_size;
      if (algorithm === 'lz4')
        assert.ok(Math.abs(compr) <= 0.01, `lz4: compr_data_size off by ${(compr * 100).toFixed(3)}%`);
      else assert.equal(model.compr_data_size, kernel.compr_data_size, `${algorithm}: compr_data_size`);
      const used = (model.mem_used_total - kernel.mem_used_total) / kernel.mem_used_total;
      assert.ok(Math.abs(used) <= 0.03, `${algorithm}: mem_used_total off by ${(used * 100).toFixed(2)}%`);
    }
  } finally {
    guard.release();
  }
  assert.equal(readFileSync('/sys/block/zram0/disksize', 'utf8').trim(), '0', 'zram0 is reset');
  assert.equal(readFileSync('/sys/block/zram0/initstate', 'utf8').trim(), '0');
}

test('zram0: same_pages, huge_pages, orig_data_size exactly; compr_data_size and mem_used_total as the kernel counts', {
  skip: zramAvailability(),
  timeout: 900_000,
}, async (t) => {
  const pages = samplePages();
  const dir = mkdtempSync(join(tmpdir(), 'ksmkit-zram-'));
  const dump = join(dir, 'pages.raw');
  writeFileSync(dump, pages);
  try {
    const estimate = await runEstimate({ files: [dump], compare: true, threads: 0 });
    await holdAgainstZram(t, pages, estimate.compare!);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

const HELPER = fileURLToPath(new URL('../../../native/build/ksmkit-exec', import.meta.url));
const python = process.platform === 'linux' ? python3() : undefined;

function liveAvailability(): string | false {
  const zram = zramAvailability();
  if (zram !== false) return zram;
  if (!existsSync('/sys/kernel/mm/ksm/run')) return 'no /sys/kernel/mm/ksm: kernel without KSM';
  if (!existsSync(HELPER)) return 'native/build/ksmkit-exec is not built (node scripts/build-agent.mjs)';
  if (python === undefined) return 'needs python3';
  return false;
}

test('live processes: their pages in zram0 as estimate --compare says, and KSM as ksmd merges them', {
  skip: liveAvailability(),
  timeout: 1_200_000,
}, async (t) => {
  const guard = await SysfsGuard.acquire({ lockTimeoutMs: 600_000 });
  const started: Started[] = [];
  const killAll = (): void => {
    for (const s of started)
      for (const pid of s.pids) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // Gone already.
        }
      }
  };
  guard.onBeforeRestore(killAll);
  try {
    prepareKsmd({ maxPageSharing: 256, useZeroPages: false });
    // Three interpreters with the same seeded data, some zero-filled and some repeated pages, and their own heaps.
    const script = pythonWorkload({ shared: 16, pattern: 4, zeroes: 4, unique: 4 });
    for (let i = 0; i < 3; i++) started.push(await startReady([HELPER, python!, '-c', script]));
    const pids = started.flatMap((s) => s.pids);
    assert.deepEqual(mergeableProcesses(new Set(pids)), [], 'no other mergeable process on the machine');
    // The very pages estimate counts, one copy per physical page: what swapping them all out would write.
    const seen = new Set<number>();
    const pages: Buffer[] = [];
    const estimate = await runEstimate({
      pids,
      compare: true,
      onPage: (page, frame) => {
        if (frame >= 0) {
          if (seen.has(frame)) return;
          seen.add(frame);
        }
        pages.push(Buffer.from(page));
      },
    });
    const compare = estimate.compare!;
    for (const line of renderCompare(compare)) t.diagnostic(line);
    await holdAgainstZram(t, Buffer.concat(pages), compare);

    const { kernel } = await runKsmdUntilSettled();
    const expected = estimate.total.total;
    t.diagnostic(JSON.stringify({ estimate: expected, kernel }));
    const error = (expected.pages_sharing - kernel.pages_sharing) / kernel.pages_sharing;
    assert.ok(
      Math.abs(error) <= 0.05,
      `estimate ${expected.pages_sharing} against the kernel's ${kernel.pages_sharing}: ${(error * 100).toFixed(2)}%`,
    );
    assert.equal(compare.ksm.savedBytes, expected.general_profit);
  } finally {
    killAll();
    await stopAll(started);
    guard.release();
  }
});
