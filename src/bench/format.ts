/**
 * The benchmark's results for people: tables for the terminal (cli-table3)
 * and the README's performance table (markdown), both from the JSON record.
 */
import Table from 'cli-table3';
import pc from 'picocolors';
import { WARM_UP_BYTES } from './engine-side.ts';
import { type PassRole, passOfRole } from './passes.ts';
import type { BenchResults, WorkloadResult } from './schema.ts';

const SHOWN_ROLES = ['first', 'merge', 'steady'] as const;
const ROLE_LABEL: Record<PassRole, string> = {
  first: '1 (checksums)',
  merge: '2 (merges)',
  settle: 'settling',
  steady: 'steady',
};

/** 1234567 → "1,234,567". */
export function formatRate(pagesPerSecond: number): string {
  return Math.round(pagesPerSecond).toLocaleString('en');
}

/** 2.345 → "2.35×", with a mark when under the target. */
export function formatRatio(ratio: number | null, target: number, color = false): string {
  if (ratio === null) return '–';
  const text = `${ratio.toFixed(2)}×`;
  if (ratio >= target) return text;
  return color ? pc.red(`${text} ✗`) : `${text} ✗`;
}

export function formatMiB(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(0)} MiB`;
}

function passLabel(role: PassRole, w: WorkloadResult): string {
  const e = 'error' in w.engine ? undefined : passOfRole(w.engine.passes, role);
  const k = w.kernel.ok ? passOfRole(w.kernel.passes, role) : undefined;
  const index = e?.pass ?? k?.pass;
  return role === 'steady' && index !== undefined ? `${index} (steady)` : ROLE_LABEL[role];
}

/** The main table: pages per CPU-second, kernel and engine side by side, per pass. */
export function ratesTable(results: BenchResults, color = false): string {
  const table = new Table({
    head: [
      'workload',
      'pass',
      'ksmd pages/CPU-s',
      'engine pages/CPU-s',
      'engine ÷ ksmd',
      'engine ÷ hash ceiling',
    ],
    colAligns: ['left', 'left', 'right', 'right', 'right', 'right'],
    style: { head: color ? ['cyan'] : [], border: color ? ['grey'] : [] },
  });
  for (const w of results.workloads) {
    for (const [i, role] of SHOWN_ROLES.entries()) {
      const k = w.kernel.ok ? passOfRole(w.kernel.passes, role) : undefined;
      const e = 'error' in w.engine ? undefined : passOfRole(w.engine.passes, role);
      const kernelCell = w.kernel.ok
        ? k === undefined
          ? '–'
          : formatRate(k.pagesPerCpuSecond)
        : i === 0
          ? wrap(w.kernel.reason, 28)
          : '';
      const ceiling = w.ofHashCeiling[role];
      table.push([
        i === 0 ? w.name : '',
        passLabel(role, w),
        kernelCell,
        e === undefined ? ('error' in w.engine ? 'error' : '–') : formatRate(e.pagesPerCpuSecond),
        formatRatio(w.ratio[role], results.targets.ratio, color),
        ceiling === null ? '–' : `${(ceiling * 100).toFixed(0)}%`,
      ]);
    }
  }
  return table.toString();
}

/** Per workload: the two sides agree?, metadata, memory, hashing ceiling. */
export function detailsTable(results: BenchResults, color = false): string {
  const table = new Table({
    head: [
      'workload',
      'counters ksmd = engine',
      'B/scanned page: rmap items (kernel 64); all KSM arrays; process growth',
      'B/merged page',
      'engine peak RSS',
      'hash ceiling pages/s',
    ],
    colAligns: ['left', 'left', 'right', 'right', 'right', 'right'],
    style: { head: color ? ['cyan'] : [], border: color ? ['grey'] : [] },
  });
  for (const w of results.workloads) {
    if ('error' in w.engine) {
      table.push([w.name, '–', { colSpan: 4, content: wrap(`engine failed: ${w.engine.error}`, 60) }]);
      continue;
    }
    const m = w.engine.metadata;
    const over = m.rmapItemsPerScannedPage > results.targets.metadataBytesPerScannedPage;
    const perScanned = `${m.rmapItemsPerScannedPage.toFixed(1)}${over ? ' ✗' : ''}; ${m.ksmArrayPerScannedPage.toFixed(1)}; ${m.measuredPerScannedPage.toFixed(1)}`;
    table.push([
      w.name,
      w.countersMatch === null ? '–' : w.countersMatch ? 'yes' : wrap(`no: ${w.counterDifference}`, 40),
      color && over ? pc.red(perScanned) : perScanned,
      m.mergedPages > 0 ? m.ksmArrayPerMergedPage.toFixed(1) : '–',
      formatMiB(w.engine.peakRssBytes),
      w.engine.hashCeiling === null ? '–' : formatRate(w.engine.hashCeiling.perPagePagesPerSecond),
    ]);
  }
  return table.toString();
}

function wrap(text: string, width: number): string {
  const words = text.split(' ');
  const lines: string[] = [];
  let line = '';
  for (const word of words) {
    if (line !== '' && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line === '' ? word : `${line} ${word}`;
  }
  if (line !== '') lines.push(line);
  return lines.join('\n');
}

/** Lines after the tables: the scale run, the default scenario's speed, the method, notes. */
export function summaryLines(results: BenchResults): string[] {
  const lines: string[] = [];
  const ks = results.kernelSide;
  lines.push(ks.available ? `ksmd: ${ks.method}` : `ksmd: not measured: ${ks.reason}`);
  lines.push(
    `engine: one core, CPU of its own process (process.cpuUsage); warmed up first on a ${WARM_UP_BYTES / 2 ** 20} MiB run of the same mix (V8 compiles the engine as it runs; ksmd's code is compiled ahead)`,
  );
  if (ks.otherMergeableProcesses.length > 0) {
    lines.push(
      `other mergeable processes: ${ks.otherMergeableProcesses.map((p) => `${p.pid} (${p.command})`).join(', ')}`,
    );
  }
  lines.push(
    `✗: under the target (engine ≥ ${results.targets.ratio}× ksmd's pages per CPU-second; ` +
      `≤ ${results.targets.metadataBytesPerScannedPage} bytes of rmap items per scanned page, the kernel's rmap_item; ` +
      "stable nodes come on top on both sides, the kernel's at 64 bytes each).",
  );
  const s = results.scale;
  if (s !== null) {
    if ('error' in s) lines.push(`scale run: failed: ${s.error}`);
    else {
      const steady = s.passes.at(-1);
      lines.push(
        `scale run: ${s.workload}, ${(s.guestMemoryBytes / 2 ** 30).toFixed(0)} GiB of guest memory as fingerprints: ` +
          `built in ${(s.buildWallMs / 1000).toFixed(1)} s, merged to a steady pass in ${s.passes.length} passes, ` +
          `${(s.mergeWallMs / 1000).toFixed(1)} s wall, ${(s.mergeCpuNs / 1e9).toFixed(1)} s CPU; ` +
          `peak RSS ${formatMiB(s.peakRssBytes)}; pages swapped out meanwhile: ${s.pagesSwappedOut}; ` +
          `full merge reached: ${s.fullyMerged ? 'yes' : 'NO'}` +
          (steady === undefined
            ? ''
            : ` (pages_sharing ${steady.counters.pages_sharing.toLocaleString('en')}, ` +
              `ksm_zero_pages ${steady.counters.ksm_zero_pages.toLocaleString('en')})`),
      );
    }
  }
  for (const d of results.defaultScenario) {
    if ('error' in d) lines.push(`default scenario: failed: ${d.error}`);
    else {
      lines.push(
        `default scenario (${d.scenario}, ${(d.simulatedMs / 60_000).toFixed(0)} min of ksmd, ` +
          `${d.fastForward ? 'as npm start runs it, steady state fast-forwarded' : 'every batch simulated'}): ` +
          `${d.cpuSecondsPerSimulatedHour.toFixed(2)} CPU-seconds per simulated hour ` +
          `(${(d.cpuNs / 1e9).toFixed(1)} s CPU, ${(d.wallMs / 1000).toFixed(1)} s wall)`,
      );
    }
  }
  return lines;
}

/** Everything printed on the terminal. */
export function renderTerminal(results: BenchResults, color = false): string {
  return [ratesTable(results, color), detailsTable(results, color), ...summaryLines(results)].join('\n');
}

/** The README's performance table (markdown), with the command that reproduces it. */
export function readmeTable(results: BenchResults): string {
  const rows: string[] = [
    '| workload | pass | ksmd, pages per CPU-second | engine, pages per CPU-second (one core) | engine ÷ ksmd |',
    '|---|---|---:|---:|---:|',
  ];
  for (const w of results.workloads) {
    for (const role of SHOWN_ROLES) {
      const k = w.kernel.ok ? passOfRole(w.kernel.passes, role) : undefined;
      const e = 'error' in w.engine ? undefined : passOfRole(w.engine.passes, role);
      rows.push(
        `| ${role === 'first' ? w.name : ''} | ${passLabel(role, w)} | ` +
          `${w.kernel.ok ? (k === undefined ? '–' : formatRate(k.pagesPerCpuSecond)) : w.kernel.reason} | ` +
          `${e === undefined ? '–' : formatRate(e.pagesPerCpuSecond)} | ` +
          `${formatRatio(w.ratio[role], results.targets.ratio)} |`,
      );
    }
  }
  return [
    `Measured with \`${results.command}\` on ${results.machine.cpuModel} ×${results.machine.cpus}, ` +
      `Linux ${results.machine.kernel}, ${results.startedAt.slice(0, 10)}; ✗ marks a ratio under ${results.targets.ratio}×.`,
    '',
    ...rows,
  ].join('\n');
}
