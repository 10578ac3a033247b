/**
 * /proc/PID/ksm_stat and /proc/PID/ksm_merging_pages (fs/proc/base.c,
 * proc_pid_ksm_stat / proc_pid_ksm_merging_pages), with the 6.14+ lines.
 */
import type { Host } from '../host/host.ts';
import { MMF_VM_MERGE_ANY, type Mm } from '../host/mm.ts';
import type { Ksm } from '../ksm/ksm.ts';

/** The fields of ksm_stat in the kernel's order, plus ksm_merging_pages; yes/no lines as booleans. */
export interface KsmStat {
  readonly ksm_rmap_items: number;
  readonly ksm_zero_pages: number;
  readonly ksm_merging_pages: number;
  readonly ksm_process_profit: number;
  readonly ksm_merge_any: boolean;
  readonly ksm_mergeable: boolean;
}

export function ksmStatOf(ksm: Ksm, mm: Mm): KsmStat {
  return {
    ksm_rmap_items: mm.ksmRmapItems,
    ksm_zero_pages: mm.ksmZeroPages,
    ksm_merging_pages: mm.ksmMergingPages,
    ksm_process_profit: ksm.processProfit(mm),
    ksm_merge_any: (mm.flags & MMF_VM_MERGE_ANY) !== 0,
    ksm_mergeable: mm.hasMergeableVma(),
  };
}

/** The text of /proc/PID/ksm_stat, byte for byte (note the colons of the last two lines). */
export function formatKsmStat(stat: KsmStat): string {
  return (
    `ksm_rmap_items ${stat.ksm_rmap_items}\n` +
    `ksm_zero_pages ${stat.ksm_zero_pages}\n` +
    `ksm_merging_pages ${stat.ksm_merging_pages}\n` +
    `ksm_process_profit ${stat.ksm_process_profit}\n` +
    `ksm_merge_any: ${stat.ksm_merge_any ? 'yes' : 'no'}\n` +
    `ksm_mergeable: ${stat.ksm_mergeable ? 'yes' : 'no'}\n`
  );
}

/** Parses the text form back (used for the real kernel's files too). */
export function parseKsmStat(text: string): KsmStat {
  const fields = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = /^(\w+):? (.+)$/.exec(line);
    if (m !== null) fields.set(m[1]!, m[2]!);
  }
  const num = (k: string): number => {
    const v = fields.get(k);
    if (v === undefined) throw new Error(`ksm_stat: no ${k} line in ${JSON.stringify(text)}`);
    return Number(v);
  };
  return {
    ksm_rmap_items: num('ksm_rmap_items'),
    ksm_zero_pages: num('ksm_zero_pages'),
    ksm_merging_pages: num('ksm_merging_pages'),
    ksm_process_profit: num('ksm_process_profit'),
    ksm_merge_any: fields.get('ksm_merge_any') === 'yes',
    ksm_mergeable: fields.get('ksm_mergeable') === 'yes',
  };
}

/** Reads /proc/PID/<file> of a live process of the host. */
export function readProcFile(
  host: Host,
  ksm: Ksm,
  pid: number,
  file: 'ksm_stat' | 'ksm_merging_pages',
): string {
  const mm = host.process(pid).mm;
  if (file === 'ksm_merging_pages') return `${mm.ksmMergingPages}\n`;
  return formatKsmStat(ksmStatOf(ksm, mm));
}
