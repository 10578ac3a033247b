/**
 * Engine speed per workload and pass, for profiling (the full comparison with
 * the real ksmd is `npm run bench`). One workload per process run:
 *
 *   npx tsx bench/profile-engine.ts <size> <mix> [passes]
 *     size:  256M | 1G | 4G   mergeable memory, byte-backed
 *     mix:   clones  4 processes map one random image, each with half its pages replaced by unique ones
 *            pairs   2 processes, half of each one's pages the same in both, half unique (random)
 *            unique  2 processes, random contents
 *            zero0   2 processes, half zero pages, half unique; use_zero_pages 0 (zero pages chain up)
 *            zero1   the same with use_zero_pages 1
 *
 *   KSMKIT_PROFILE=scan.cpuprofile npx tsx bench/profile-engine.ts 1G pairs
 *       (a V8 CPU profile of the passes alone, without building the workload)
 *
 * Pages scanned per CPU-second of this process (user + system), per full pass,
 * unthrottled (ksm.fullScans(1)), checksums through @node-rs/xxhash as the
 * Node backend runs them. Prints one line per pass and a JSON summary line.
 */
import { randomFillSync } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { pageChecksumNative } from '../src/backend/sim/native-checksum.ts';
import { pageCompareNative } from '../src/backend/sim/native-compare.ts';
import { SimulatedHost } from '../src/surface/simulated-host.ts';

const PAGE = 4096;
const SIZES: Record<string, number> = {
  '16M': 2 ** 24,
  '64M': 2 ** 26,
  '256M': 2 ** 28,
  '1G': 2 ** 30,
  '4G': 2 ** 32,
};
const MIXES = ['clones', 'pairs', 'unique', 'zero0', 'zero1'] as const;
type Mix = (typeof MIXES)[number];

const sizeArg = process.argv[2] ?? '1G';
const mixArg = process.argv[3] ?? 'pairs';
const passes = Number(process.argv[4] ?? 4);
const bytes = SIZES[sizeArg];
if (bytes === undefined) throw new Error(`size ${sizeArg}: one of ${Object.keys(SIZES).join(', ')}`);
if (!(MIXES as readonly string[]).includes(mixArg))
  throw new Error(`mix ${mixArg}: one of ${MIXES.join(', ')}`);
const mix = mixArg as Mix;
const noNativeCompare = process.env.KSMKIT_JS_COMPARE === '1';

const totalPages = bytes / PAGE;
const sim = new SimulatedHost({
  memoryBytes: bytes + 128 * 2 ** 20,
  checksum: pageChecksumNative,
  ...(noNativeCompare ? {} : { pageCompare: pageCompareNative }),
});
const { host, ksm } = sim;

/** Random pages, refilled per batch: a batch of 256 pages at a time. */
const BATCH = 256;
const batch = new Uint8Array(BATCH * PAGE);
const zeroPage = new Uint8Array(PAGE);

function mapRegion(pid: number, pageCount: number): number {
  const addr = host.mmap(pid, { lengthBytes: pageCount * PAGE });
  host.madvise(pid, addr, pageCount * PAGE, 'nohugepage');
  return addr;
}

function writeRandom(pid: number, addr: number, pageCount: number): void {
  for (let done = 0; done < pageCount; done += BATCH) {
    const n = Math.min(BATCH, pageCount - done);
    randomFillSync(batch, 0, n * PAGE);
    host.write(pid, addr + done * PAGE, batch.subarray(0, n * PAGE));
  }
}

/** A seeded choice per page (xorshift32), so a workload is the same run after run. */
let rngState = 0x9e3779b9;
function coin(): boolean {
  rngState ^= rngState << 13;
  rngState ^= rngState >>> 17;
  rngState ^= rngState << 5;
  return (rngState & 1) === 1;
}

function build(): void {
  switch (mix) {
    case 'clones': {
      const perProc = totalPages / 4;
      const image = new Uint8Array(perProc * PAGE);
      for (let o = 0; o < image.length; o += 65536)
        randomFillSync(image, o, Math.min(65536, image.length - o));
      for (let k = 0; k < 4; k++) {
        const p = host.spawn();
        const addr = mapRegion(p.pid, perProc);
        const page = new Uint8Array(PAGE);
        for (let i = 0; i < perProc; i++) {
          if (coin()) {
            randomFillSync(page);
            host.write(p.pid, addr + i * PAGE, page);
          } else host.write(p.pid, addr + i * PAGE, image.subarray(i * PAGE, (i + 1) * PAGE));
        }
        host.madvise(p.pid, addr, perProc * PAGE, 'mergeable');
      }
      return;
    }
    case 'pairs': {
      const perProc = totalPages / 2;
      const shared = new Uint8Array((perProc / 2) * PAGE);
      for (let o = 0; o < shared.length; o += 65536)
        randomFillSync(shared, o, Math.min(65536, shared.length - o));
      for (let k = 0; k < 2; k++) {
        const p = host.spawn();
        const addr = mapRegion(p.pid, perProc);
        const page = new Uint8Array(PAGE);
        for (let i = 0; i < perProc; i++) {
          if (i % 2 === 1) {
            randomFillSync(page);
            host.write(p.pid, addr + i * PAGE, page);
          } else {
            const j = i >> 1;
            host.write(p.pid, addr + i * PAGE, shared.subarray(j * PAGE, (j + 1) * PAGE));
          }
        }
        host.madvise(p.pid, addr, perProc * PAGE, 'mergeable');
      }
      return;
    }
    case 'unique': {
      for (let k = 0; k < 2; k++) {
        const p = host.spawn();
        const addr = mapRegion(p.pid, totalPages / 2);
        writeRandom(p.pid, addr, totalPages / 2);
        host.madvise(p.pid, addr, (totalPages / 2) * PAGE, 'mergeable');
      }
      return;
    }
    case 'zero0':
    case 'zero1': {
      if (mix === 'zero1') sim.sysfs.write('use_zero_pages', '1');
      const perProc = totalPages / 2;
      for (let k = 0; k < 2; k++) {
        const p = host.spawn();
        const addr = mapRegion(p.pid, perProc);
        const page = new Uint8Array(PAGE);
        for (let i = 0; i < perProc; i++) {
          if (coin()) host.write(p.pid, addr + i * PAGE, zeroPage);
          else {
            randomFillSync(page);
            host.write(p.pid, addr + i * PAGE, page);
          }
        }
        host.madvise(p.pid, addr, perProc * PAGE, 'mergeable');
      }
      return;
    }
  }
}

const t0 = process.hrtime.bigint();
build();
const buildS = Number(process.hrtime.bigint() - t0) / 1e9;
sim.sysfs.write('run', '1');

const profilePath = process.env.KSMKIT_PROFILE;
/** KSMKIT_PROFILE_PASS=n profiles pass n alone (default: every pass). */
const profilePass = Number(process.env.KSMKIT_PROFILE_PASS ?? 0);
const session = profilePath === undefined ? null : new Session();
if (session !== null) {
  session.connect();
  await session.post('Profiler.enable');
}

interface PassFigure {
  pass: number;
  pages: number;
  cpuS: number;
  userS: number;
  sysS: number;
  pagesPerCpuS: number;
  counters: string;
}
const figures: PassFigure[] = [];
for (let pass = 1; pass <= passes; pass++) {
  const profiling = session !== null && (profilePass === 0 || profilePass === pass);
  if (profiling && (pass === 1 || profilePass === pass)) await session.post('Profiler.start');
  const scanned0 = ksm.pagesScanned;
  const u0 = process.cpuUsage();
  ksm.fullScans(1);
  const u = process.cpuUsage(u0);
  if (profiling && profilePass === pass) {
    const { profile } = await session.post('Profiler.stop');
    writeFileSync(profilePath!, JSON.stringify(profile));
  }
  const cpuS = (u.user + u.system) / 1e6;
  const pages = ksm.pagesScanned - scanned0;
  const c = ksm.counters();
  figures.push({
    pass,
    pages,
    cpuS,
    userS: u.user / 1e6,
    sysS: u.system / 1e6,
    pagesPerCpuS: Math.round(pages / cpuS),
    counters: `shared ${c.pages_shared} sharing ${c.pages_sharing} unshared ${c.pages_unshared} volatile ${c.pages_volatile} zero ${c.ksm_zero_pages} chains ${c.stable_node_chains} dups ${c.stable_node_dups}`,
  });
}

if (session !== null && profilePath !== undefined) {
  if (profilePass === 0) {
    const { profile } = await session.post('Profiler.stop');
    writeFileSync(profilePath, JSON.stringify(profile));
  }
  session.disconnect();
}

const meta = ksm.metadataBytes();
const items = ksm.counters().rmap_items;
console.log(
  `${sizeArg} ${mix}: ${totalPages} pages, built in ${buildS.toFixed(1)} s, native compare ${noNativeCompare ? 'off' : 'on'}`,
);
for (const f of figures) {
  console.log(
    `  pass ${f.pass}: ${f.pages} pages, ${f.cpuS.toFixed(3)} s CPU (user ${f.userS.toFixed(3)}, sys ${f.sysS.toFixed(3)}) = ${f.pagesPerCpuS.toLocaleString('en')} pages/CPU-s  [${f.counters}]`,
  );
}
console.log(
  `  metadata ${meta.total} bytes = ${(meta.total / Math.max(items, 1)).toFixed(1)} per rmap item, rmap items alone ${(meta.rmapItems / Math.max(items, 1)).toFixed(1)}, stable nodes ${(meta.stableNodes / Math.max(ksm.nodes.live, 1)).toFixed(1)} per node in use (${JSON.stringify(meta)}); RSS ${(process.memoryUsage().rss / 2 ** 20).toFixed(0)} MiB`,
);
console.log(
  JSON.stringify({
    size: sizeArg,
    mix,
    passes: figures.map((f) => f.pagesPerCpuS),
    metaPerItem: meta.total / Math.max(items, 1),
  }),
);
