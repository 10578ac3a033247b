/** estimate --compare and simulate --compression as text: one table of savings, one of CPU. */
import Table from 'cli-table3';
import { PAGE_BYTES } from '../estimate/model.ts';
import type { CompareReport } from './compare.ts';

const int = (n: number): string => Math.round(n).toLocaleString('en-US');

/** Bytes as MiB with one decimal (KiB below 1 MiB), signed. */
export function sizeText(bytes: number): string {
  if (Math.abs(bytes) < 1048576) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1048576).toFixed(1)} MiB`;
}

function percentOf(part: number, whole: number): string {
  return whole > 0 ? `${((100 * part) / whole).toFixed(1)}%` : '–';
}

function ns(v: number): string {
  return Number.isFinite(v) ? `${int(v)} ns` : '–';
}

function newTable(head: string[], color: boolean): Table.Table {
  return new Table({
    head,
    chars: { mid: '', 'left-mid': '', 'mid-mid': '', 'right-mid': '' },
    style: color ? { head: ['cyan'] } : { head: [], border: [] },
    colAligns: ['left', ...head.slice(1).map(() => 'right' as const)],
  });
}

/** The rows every comparison shows: what is saved, of the memory these pages take. */
export function savingRows(c: CompareReport): Array<{ what: string; savedBytes: number; detail: string }> {
  const rows = [
    {
      what: 'KSM',
      savedBytes: c.ksm.savedBytes,
      detail: `${int(c.ksm.pagesFreed)} pages freed (pages_sharing + ksm_zero_pages), less rmap items`,
    },
  ];
  for (const a of c.algorithms) {
    const z = a.zram;
    rows.push({
      what: `zram ${a.algorithm}`,
      savedBytes: z.savedBytes,
      detail:
        `same ${int(z.same_pages)}, huge ${int(z.huge_pages)}, compr ${sizeText(z.compr_data_size)}, ` +
        `mem_used ${sizeText(z.mem_used_total)}`,
    });
  }
  for (const a of c.algorithms) {
    const w = a.zswap;
    const d = a.zswapDedup;
    rows.push({
      what: `zswap ${a.algorithm}`,
      savedBytes: w.savedBytes,
      detail: `zero-filled ${int(w.zeroFilledPages)} (swap zeromap), stored ${int(w.storedPages)}, pool ${sizeText(w.poolBytes)}`,
    });
    rows.push({
      what: `zswap ${a.algorithm} + dedup`,
      savedBytes: d.savedBytes,
      detail: `one entry per content: stored ${int(d.storedPages)}, pool ${sizeText(d.poolBytes)}`,
    });
  }
  for (const a of c.algorithms) {
    const k = a.ksmThenZram;
    rows.push({
      what: `KSM, then zram ${a.algorithm}`,
      savedBytes: k.savedBytes,
      detail: `${int(c.pagesAfterKsm)} pages left to zram: mem_used ${sizeText(k.mem_used_total)}`,
    });
  }
  return rows;
}

export function renderCompare(c: CompareReport, color = false): string[] {
  const out: string[] = [];
  const base = c.physicalPages * PAGE_BYTES;
  out.push(
    '',
    `KSM against compression: ${int(c.pages)} pages mapped, ${int(c.physicalPages)} physical ` +
      `(${sizeText(base)}), ${int(c.distinctContents)} distinct contents`,
  );
  const t = newTable(['', 'saved', 'of the pages', 'how'], color);
  for (const r of savingRows(c))
    t.push([r.what, sizeText(r.savedBytes), percentOf(r.savedBytes, base), r.detail]);
  out.push(t.toString());

  const cpu = newTable(['CPU per page', 'compress (swap-out)', 'decompress (fault)'], color);
  for (const a of c.algorithms) cpu.push([a.algorithm, ns(a.compressNs), ns(a.decompressNs)]);
  cpu.push(['ksmd, each full scan', ns(c.cpu.ksmdScanNsPerPage), '–']);
  cpu.push(['ksmd, each merge', ns(c.cpu.ksmdMergeNs), '–']);
  cpu.push(['COW break (write to a merged page)', '–', ns(c.cpu.cowBreakNs)]);
  out.push(cpu.toString());
  out.push(
    '  Compression: this thread’s CPU time on these pages, measured now (other load on the machine ' +
      'slows it); decompression on one page in eight. ksmd and COW break: ' +
      c.cpu.source +
      '. ksmd pays its scan cost on every pass for as long as it runs; a page is compressed once per swap-out.',
  );
  out.push('  Where the compressors can differ from the kernel’s:');
  for (const a of c.algorithms) out.push(`    ${a.algorithm}: ${c.fidelity[a.algorithm]}`);
  if (c.notModelled.length > 0)
    out.push(`  This kernel's zram also offers ${c.notModelled.join(', ')}: not modelled.`);
  return out;
}
