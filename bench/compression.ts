/**
 * The README's "KSM against compression" table: three kinds of memory in real
 * processes, each measured with `estimate --compare` (the same code as
 * `ksmkit estimate --compare --pid …`):
 *
 * - cloned guests: four python3 processes that load the same 48 MiB of this
 *   machine's shared libraries (real program bytes, as a guest's page cache
 *   and text), plus 8 MiB of records of their own and 8 MiB of zeroed pages;
 * - a language runtime's heap: two replicas of one Node.js service holding
 *   about 64 MiB of records each (objects, strings, arrays: V8's heap);
 * - zero-heavy memory: two python3 processes with 48 MiB of touched zero
 *   pages and 16 MiB of records.
 *
 *   npx tsx bench/compression.ts            the markdown table on stdout
 *
 * Nothing is merged and no device is touched: estimate only reads.
 */

import type { CompareReport } from '../src/tools/compress/compare.ts';
import { runEstimate } from '../src/tools/estimate/estimate.ts';
import { PAGE_BYTES } from '../src/tools/estimate/model.ts';
import { type Started, startReady, stopAll } from '../src/tools/estimate/testing.ts';

const PYTHON_RECORDS = `
import ctypes, glob, os, random, sys, time
ctypes.CDLL(None).prctl(1, 9, 0, 0, 0)
MiB = 1 << 20
def records(n_bytes, seed):
    rng = random.Random(seed)
    words = ['alpha', 'beta', 'gamma', 'delta', 'status', 'ok', 'error', 'user', 'id', 'name', 'value']
    out, size = [], 0
    while size < n_bytes:
        r = {'id': rng.randrange(10**9), 'name': rng.choice(words) + str(rng.randrange(10**4)),
             'tags': [rng.choice(words) for _ in range(3)], 'score': rng.random()}
        out.append(r)
        size += 200
    return out
`;

function clonedGuest(): string {
  return `${PYTHON_RECORDS}
libs = bytearray()
for path in sorted(glob.glob('/usr/lib/x86_64-linux-gnu/*.so*')):
    if len(libs) >= 48 * MiB: break
    try:
        with open(path, 'rb') as f: libs += f.read(48 * MiB - len(libs))
    except OSError: pass
own = records(8 * MiB, os.getpid())
zeroes = bytearray(8 * MiB)
for i in range(0, len(zeroes), 4096): zeroes[i] = 0
os.write(1, f'ready {os.getpid()}\\n'.encode())
time.sleep(3600)
`;
}

function zeroHeavy(): string {
  return `${PYTHON_RECORDS}
zeroes = bytearray(48 * MiB)
for i in range(0, len(zeroes), 4096): zeroes[i] = 0
own = records(16 * MiB, os.getpid())
os.write(1, f'ready {os.getpid()}\\n'.encode())
time.sleep(3600)
`;
}

const NODE_SERVICE = `
let seed = process.pid;
const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
const words = ['alpha', 'beta', 'gamma', 'delta', 'status', 'ok', 'error', 'user', 'id', 'name', 'value'];
const pick = () => words[Math.floor(rnd() * words.length)];
globalThis.records = [];
for (let bytes = 0; bytes < 64 * 2 ** 20; bytes += 160)
  records.push({ id: Math.floor(rnd() * 1e9), name: pick() + Math.floor(rnd() * 1e4), tags: [pick(), pick()], score: rnd() });
console.log('ready ' + process.pid);
setInterval(() => {}, 1 << 30);
`;

interface Kind {
  readonly name: string;
  readonly start: () => Promise<Started[]>;
}

const kinds: Kind[] = [
  {
    name: 'cloned guests (4 × 64 MiB: shared libraries, own records, zeroed pages)',
    start: () => Promise.all([0, 1, 2, 3].map(() => startReady(['python3', '-c', clonedGuest()]))),
  },
  {
    name: 'a language runtime’s heap (2 Node.js replicas, 64 MiB of records each)',
    start: () => Promise.all([0, 1].map(() => startReady([process.execPath, '-e', NODE_SERVICE]))),
  },
  {
    name: 'zero-heavy (2 × 48 MiB zeroed + 16 MiB records)',
    start: () => Promise.all([0, 1].map(() => startReady(['python3', '-c', zeroHeavy()]))),
  },
];

const pct = (saved: number, c: CompareReport): string =>
  `${((100 * saved) / (c.physicalPages * PAGE_BYTES)).toFixed(0)}%`;

const rows: string[] = [];
for (const kind of kinds) {
  const started = await kind.start();
  try {
    const report = await runEstimate({ pids: started.flatMap((s) => s.pids), compare: true });
    const c = report.compare!;
    const by = (a: string) => c.algorithms.find((x) => x.algorithm === a)!;
    const mib = (c.physicalPages * PAGE_BYTES) / 2 ** 20;
    rows.push(
      `| ${kind.name} | ${mib.toFixed(0)} MiB | ${pct(c.ksm.savedBytes, c)} | ` +
        ['lzo-rle', 'lzo', 'lz4'].map((a) => pct(by(a).zram.savedBytes, c)).join(' | ') +
        ' | ' +
        ['lzo-rle', 'lzo', 'lz4'].map((a) => pct(by(a).ksmThenZram.savedBytes, c)).join(' | ') +
        ` | ${pct(by('lzo').zswapDedup.savedBytes, c)} |`,
    );
    const cpu = c.algorithms.map(
      (a) => `${a.algorithm} ${a.compressNs.toFixed(0)}/${a.decompressNs.toFixed(0)}`,
    );
    console.error(
      `${kind.name}: use_zero_pages ${report.settings.useZeroPages ? 1 : 0}; ns per page compress/decompress: ` +
        `${cpu.join(', ')}; ksmd ${c.cpu.ksmdScanNsPerPage.toFixed(0)} per page and pass, ` +
        `COW break ${c.cpu.cowBreakNs.toFixed(0)}`,
    );
  } finally {
    await stopAll(started);
  }
}
console.log(
  '| memory | size | KSM | zram lzo-rle | zram lzo | zram lz4 | KSM + lzo-rle | KSM + lzo | KSM + lz4 | zswap lzo + dedup |',
);
console.log('|---|---|---|---|---|---|---|---|---|---|');
for (const r of rows) console.log(r);
