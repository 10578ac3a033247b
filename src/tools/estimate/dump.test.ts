/** Dump files: raw images and ELF64 core files built here, estimated through the library and the command. */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { Command } from '@commander-js/extra-typings';
import { registerEstimate } from '../../cli/estimate.ts';
import { layoutDump, parseNotes } from './dump-source.ts';
import { runEstimate } from './estimate.ts';

const dir = mkdtempSync(join(tmpdir(), 'ksmkit-estimate-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const PAGE = 4096;

/** One page filled with `byte` (0 = a zero page), with a marker so that pages of different bytes differ. */
function page(byte: number): Buffer {
  return Buffer.alloc(PAGE, byte);
}

function pages(...bytes: number[]): Buffer {
  return Buffer.concat(bytes.map(page));
}

interface Load {
  readonly vaddr: number;
  readonly data: Buffer;
  /** p_memsz beyond the data (not in the file). */
  readonly extraMem?: number;
}

function ntFileNote(files: ReadonlyArray<{ start: number; end: number; name: string }>): Buffer {
  const head = Buffer.alloc(16 + files.length * 24);
  head.writeBigUInt64LE(BigInt(files.length), 0);
  head.writeBigUInt64LE(BigInt(PAGE), 8);
  files.forEach((f, i) => {
    head.writeBigUInt64LE(BigInt(f.start), 16 + i * 24);
    head.writeBigUInt64LE(BigInt(f.end), 24 + i * 24);
  });
  const names = Buffer.concat(files.map((f) => Buffer.from(`${f.name}\0`)));
  let desc = Buffer.concat([head, names]);
  const descsz = desc.length;
  desc = Buffer.concat([desc, Buffer.alloc((4 - (descsz % 4)) % 4)]);
  const h = Buffer.alloc(12);
  h.writeUInt32LE(5, 0);
  h.writeUInt32LE(descsz, 4);
  h.writeUInt32LE(0x46494c45, 8);
  return Buffer.concat([h, Buffer.from('CORE\0\0\0\0'), desc]);
}

/** An ELF64 little-endian core file: a PT_NOTE (NT_FILE) and the given PT_LOADs, data page-aligned. */
function elfCore(loads: readonly Load[], note?: Buffer): Buffer {
  const phnum = loads.length + (note !== undefined ? 1 : 0);
  const header = Buffer.alloc(64);
  header.writeUInt32LE(0x464c457f, 0);
  header[4] = 2; // ELFCLASS64
  header[5] = 1; // little-endian
  header[6] = 1; // EV_CURRENT
  header.writeUInt16LE(4, 16); // ET_CORE
  header.writeUInt16LE(62, 18); // EM_X86_64
  header.writeUInt32LE(1, 20);
  header.writeBigUInt64LE(64n, 0x20); // e_phoff
  header.writeUInt16LE(64, 0x34); // e_ehsize
  header.writeUInt16LE(56, 0x36); // e_phentsize
  header.writeUInt16LE(phnum, 0x38);
  const phdrs = Buffer.alloc(56 * phnum);
  let offset = 64 + 56 * phnum;
  const chunks: Buffer[] = [];
  let k = 0;
  if (note !== undefined) {
    const ph = phdrs.subarray(0, 56);
    ph.writeUInt32LE(4, 0);
    ph.writeBigUInt64LE(BigInt(offset), 8);
    ph.writeBigUInt64LE(BigInt(note.length), 0x20);
    chunks.push(note);
    offset += note.length;
    k++;
  }
  const pad = (PAGE - (offset % PAGE)) % PAGE;
  chunks.push(Buffer.alloc(pad));
  offset += pad;
  for (const l of loads) {
    const ph = phdrs.subarray(k * 56, k * 56 + 56);
    ph.writeUInt32LE(1, 0);
    ph.writeUInt32LE(6, 4);
    ph.writeBigUInt64LE(BigInt(l.data.length > 0 ? offset : 0), 8);
    ph.writeBigUInt64LE(BigInt(l.vaddr), 0x10);
    ph.writeBigUInt64LE(BigInt(l.data.length), 0x20);
    ph.writeBigUInt64LE(BigInt(l.data.length + (l.extraMem ?? 0)), 0x28);
    ph.writeBigUInt64LE(BigInt(PAGE), 0x30);
    chunks.push(l.data);
    offset += l.data.length;
    k++;
  }
  return Buffer.concat([header, phdrs, ...chunks]);
}

function write(name: string, data: Buffer): string {
  const path = join(dir, name);
  writeFileSync(path, data);
  return path;
}

test('raw image: every 4096 bytes are a page; --offset and a partial tail', async () => {
  const path = write(
    'a.raw',
    Buffer.concat([Buffer.alloc(100, 9), pages(1, 1, 2, 0, 0, 3), Buffer.alloc(10, 4)]),
  );
  const layout = layoutDump(path, 'auto', 100);
  assert.equal(layout.kind, 'raw');
  assert.deepEqual(
    layout.segments.map((s) => [s.fileOffset, s.bytes]),
    [[100, 6 * PAGE]],
  );
  assert.deepEqual(
    layout.skipped.map((s) => s.reason),
    ['not memory (offset)', 'less than a whole page'],
  );
  const r = await runEstimate({ files: [path], offset: 100, sysfsDir: join(dir, 'no-ksm') });
  assert.equal(r.total.examined, 6);
  assert.equal(r.total.zeroPages, 2);
  assert.equal(r.total.distinct, 4);
  // 1 ×2 and 0 ×2 merge (use_zero_pages 0: zero pages merge like any content).
  assert.equal(r.total.total.pages_sharing, 2);
  assert.equal(r.total.total.pages_shared, 2);
  // No KSM files there: Linux's defaults, with a note.
  assert.equal(r.settings.maxPageSharing, 256);
  assert.ok(r.notes.some((n) => /does not exist/.test(n)));
});

test('ELF core: PT_LOAD segments are memory; p_filesz 0 and p_memsz beyond p_filesz are skipped; NT_FILE names files', async () => {
  const note = ntFileNote([{ start: 0x400000, end: 0x402000, name: '/usr/bin/thing' }]);
  const core = elfCore(
    [
      { vaddr: 0x400000, data: pages(5, 6) },
      { vaddr: 0x500000, data: Buffer.alloc(0), extraMem: 3 * PAGE },
      { vaddr: 0x600000, data: pages(5, 5, 0, 7), extraMem: PAGE },
    ],
    note,
  );
  const path = write('a.core', core);
  const layout = layoutDump(path);
  assert.equal(layout.kind, 'elf-core');
  assert.equal(layout.segments.length, 2);
  assert.equal(layout.segments[0]!.file, '/usr/bin/thing');
  assert.equal(layout.segments[1]!.file, undefined);
  assert.deepEqual(
    layout.skipped.map((s) => [s.bytes, s.reason]),
    [
      [3 * PAGE, 'not in the dump (p_filesz 0)'],
      [PAGE, 'beyond p_filesz (not in the dump)'],
    ],
  );
  assert.ok(layout.notes.some((n) => /NT_FILE/.test(n)));
  const r = await runEstimate({
    files: [path],
    sysfsDir: join(dir, 'no-ksm'),
    settings: { useZeroPages: true },
  });
  assert.equal(r.total.examined, 6);
  // 5 ×3: SH 1, SG 2; the zero page becomes a KSM zero page.
  assert.equal(r.total.total.pages_sharing, 2);
  assert.equal(r.total.total.ksm_zero_pages, 1);
  assert.equal(r.total.total.rmap_items, 5);
});

test('NT_FILE parsing copes with several files', () => {
  const files = [
    { start: 0x1000, end: 0x3000, name: '/a' },
    { start: 0x8000, end: 0x9000, name: '/lib/b.so' },
  ];
  const note = ntFileNote(files);
  assert.deepEqual(parseNotes(note), files);
  // A note of another type is skipped.
  const other = Buffer.alloc(12 + 8 + 4);
  other.writeUInt32LE(5, 0);
  other.writeUInt32LE(4, 4);
  other.writeUInt32LE(1, 8);
  assert.deepEqual(parseNotes(Buffer.concat([other, note])), files);
});

test('two dump files: the sharing matrix covers them as two sources', async () => {
  // Guest A and guest B share pages 1 and 2; each also has its own pages.
  const a = write('ga.elf', elfCore([{ vaddr: 0, data: pages(1, 2, 3, 0) }]));
  const b = write('gb.raw', pages(1, 2, 4, 4, 0, 0));
  const r = await runEstimate({ files: [a, b], sysfsDir: join(dir, 'no-ksm'), dumpZeroPages: 'absent' });
  assert.equal(r.sources.length, 2);
  assert.equal(r.sources[0]!.kind, 'dump');
  // Zero pages taken as absent: not counted.
  assert.equal(r.total.zeroPages, 0);
  assert.equal(r.total.examined, 3 + 4);
  assert.equal(r.pairs.length, 1);
  const p = r.pairs[0]!;
  assert.equal(p.aPagesFoundInB, 2);
  assert.equal(p.bPagesFoundInA, 2);
  // Together: 1 ×2, 2 ×2, 4 ×2 → SG 3; B alone: 4 ×2 → SG 1.
  assert.equal(p.together.pages_sharing, 3);
  assert.equal(p.crossSharing, 2);
});

test('bad files are reported, not thrown: not ELF with --format elf, big-endian ELF, missing file', async () => {
  const raw = write('x.raw', pages(1));
  assert.throws(() => layoutDump(raw, 'elf'), /not an ELF file/);
  const be = Buffer.from(elfCore([{ vaddr: 0, data: pages(1) }]));
  be[5] = 2;
  const bePath = write('be.core', be);
  assert.throws(() => layoutDump(bePath), /little-endian/);
  const r = await runEstimate({ files: [bePath, join(dir, 'missing')], sysfsDir: join(dir, 'no-ksm') });
  assert.equal(r.sources.length, 0);
  assert.equal(r.unreadable.length, 2);
  assert.ok(r.unreadable.every((u) => u.explicit));
});

async function cli(args: string[]): Promise<{ out: string; code: number | undefined }> {
  const program = new Command()
    .name('ksmkit')
    .exitOverride()
    .configureOutput({ writeErr: () => {} });
  registerEstimate(program);
  const lines: string[] = [];
  const log = console.log;
  console.log = (...a: unknown[]) => lines.push(a.join(' '));
  const before = process.exitCode;
  process.exitCode = undefined;
  try {
    await program.parseAsync(['estimate', ...args], { from: 'user' });
    return { out: lines.join('\n'), code: process.exitCode as number | undefined };
  } finally {
    console.log = log;
    process.exitCode = before;
  }
}

test('the command: tables by default, --json, given settings', async () => {
  const a = write('c1.raw', pages(1, 1, 1, 2, 0));
  const b = write('c2.raw', pages(1, 3, 0));
  const human = await cli([
    a,
    b,
    '--max-page-sharing',
    '2',
    '--pages-to-scan',
    '4',
    '--sleep-millisecs',
    '10',
  ]);
  assert.equal(human.code, undefined);
  assert.match(human.out, /ksmkit estimate: 0 processes, 2 dump files/);
  assert.match(human.out, /max_page_sharing 2 \(given\)/);
  assert.match(human.out, /Sharing matrix/);
  assert.match(human.out, /pages_sharing/);
  // 8 pages by 4 a batch: 3 batches of 12 ms (HZ 250).
  assert.match(human.out, /one pass: 8 pages in 3 batches = 48 ms of sleep/);
  const json = await cli([a, b, '--json', '--max-page-sharing', '2', '--use-zero-pages', '1']);
  const parsed = JSON.parse(json.out) as {
    total: { total: { pages_sharing: number; ksm_zero_pages: number; pages_shared: number } };
    pairs: Array<{ aLabel: string; bLabel: string; together: { pages_sharing: number } }>;
    settings: { maxPageSharing: number; useZeroPages: boolean };
  };
  assert.equal(parsed.settings.maxPageSharing, 2);
  assert.equal(parsed.settings.useZeroPages, true);
  // Content 1 ×4 with max_page_sharing 2: SH 2, SG 2; two zero pages become KSM zero pages.
  assert.equal(parsed.total.total.pages_shared, 2);
  assert.equal(parsed.total.total.pages_sharing, 2);
  assert.equal(parsed.total.total.ksm_zero_pages, 2);
  assert.equal(parsed.pairs[0]!.aLabel, 'c1.raw');
  assert.equal(parsed.pairs[0]!.together.pages_sharing, 2);
  // A file that is not there is a usage error found before anything is read: exit 2, no report.
  const missing = await cli([join(dir, 'nope.raw')]);
  assert.equal(missing.code, 2);
  assert.equal(missing.out, '');
  await assert.rejects(cli([]), /nothing to estimate/);
  await assert.rejects(cli([a, '--max-page-sharing', '1']), /at least 2/);
});
