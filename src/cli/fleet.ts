/** `ksmkit fingerprint` (one host's pages as a Parquet file) and `ksmkit fleet` (many hosts: savings, overlap, a plan). */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { type Command, InvalidArgumentError, Option } from '@commander-js/extra-typings';
import { formatBytes } from '../simulate/units.ts';
import { checkDumpFiles } from '../tools/estimate/estimate.ts';
import type { SettingOverrides } from '../tools/estimate/settings.ts';
import { checkSampleOneIn, runFingerprint } from '../tools/fleet/fingerprint.ts';
import { runFleet } from '../tools/fleet/fleet.ts';
import { renderHtml, renderHuman, renderJson } from '../tools/fleet/report.ts';
import { makeSyntheticFleet, SYNTHETIC_GUESTS_PER_HOST } from '../tools/fleet/synthetic.ts';
import {
  bool01,
  byteSize,
  maxPageSharing,
  nothingNamed,
  pidList,
  positiveInt,
  regex,
  scenarioOption,
} from './estimate.ts';
import { EXIT_FAILED, EXIT_USAGE, errorLine, messageOf } from './exit.ts';

function sampleOneIn(value: string): number {
  const n = positiveInt(value);
  try {
    checkSampleOneIn(n);
  } catch (e) {
    throw new InvalidArgumentError((e as Error).message.replace(/^--sample \d+: /, ''));
  }
  return n;
}

export function registerFleet(program: Command): void {
  program
    .command('fingerprint')
    .description(
      "one host's pages as a Parquet file for ksmkit fleet: per source (process, QEMU guest by -name, container by " +
        'cgroup, dump file) its page fingerprints and counts, zero pages and total pages, with the host’s KSM ' +
        'settings and memory',
    )
    .argument('[files...]', 'memory dump files: raw images or ELF64 core files')
    .requiredOption('-o, --output <file>', 'the Parquet file to write')
    .option('-p, --pid <pids>', 'a process (repeat, or comma-separated)', pidList)
    .option('-a, --all', 'every process (but this one)', false)
    .option('-m, --match <regex>', 'processes whose command line matches', regex)
    .option('--scenario <name|file>', 'an engine scenario: its guests as they start')
    .addOption(
      new Option('--vmas <mode>', 'which VMAs of a process (as ksmkit estimate)')
        .choices(['auto', 'mergeable', 'compatible'] as const)
        .default('auto' as const),
    )
    .addOption(
      new Option('--dump-zero-pages <how>', 'dump files: zero pages present or absent')
        .choices(['present', 'absent'] as const)
        .default('present' as const),
    )
    .option('--host <name>', 'the host’s name in the fleet (default: this machine’s)')
    .option(
      '--memory <bytes>',
      'the host’s memory for placement (K, M, G suffixes; default MemTotal)',
      byteSize,
    )
    .option(
      '--sample <N>',
      'keep 1 content in N (a power of two), chosen by its hash, the same on every host: the fleet’s shared ' +
        'pages are then estimated, with the error stated',
      sampleOneIn,
      1,
    )
    .option('--max-page-sharing <n>', 'instead of /sys/kernel/mm/ksm/max_page_sharing', maxPageSharing)
    .option('--use-zero-pages <0|1>', 'instead of /sys/kernel/mm/ksm/use_zero_pages', bool01)
    .option('--progress', 'a progress bar on stderr', false)
    .action(async (files, opts, cmd) => {
      const pids = opts.pid ?? [];
      if (nothingNamed(files, pids, opts))
        cmd.error('error: nothing to fingerprint: give --pid, --all, --match, --scenario or dump files');
      const scenario = await scenarioOption('fingerprint', opts.scenario);
      if (scenario === null) return;
      const problems = [
        ...pids.filter((pid) => !existsSync(`/proc/${pid}`)).map((pid) => `pid ${pid}: no such process`),
        ...checkDumpFiles(files, 'auto', 0),
      ];
      if (problems.length > 0) {
        for (const p of problems) console.error(errorLine('fingerprint', p));
        process.exitCode = EXIT_USAGE;
        return;
      }
      const settings: SettingOverrides = {};
      if (opts.maxPageSharing !== undefined) settings.maxPageSharing = opts.maxPageSharing;
      if (opts.useZeroPages !== undefined) settings.useZeroPages = opts.useZeroPages;
      const result = await runFingerprint({
        output: opts.output,
        pids,
        all: opts.all,
        ...(opts.match !== undefined ? { match: opts.match } : {}),
        files,
        vmaMode: opts.vmas,
        dumpZeroPages: opts.dumpZeroPages,
        settings,
        progress: opts.progress,
        sampleOneIn: opts.sample,
        ...(opts.host !== undefined ? { host: opts.host } : {}),
        ...(opts.memory !== undefined ? { memoryBytes: opts.memory } : {}),
        ...(scenario !== undefined ? { scenario } : {}),
      });
      for (const u of result.estimate.unreadable)
        console.error(errorLine('fingerprint', `${u.what}: ${u.error}`));
      console.log(
        `${result.output}: host ${result.host}, ${result.sources} sources, ${result.pages} pages, ` +
          `${result.rows} rows (${result.sampleOneIn === 1 ? 'every content' : `1 content in ${result.sampleOneIn}`}), ` +
          `memory ${formatBytes(result.memoryBytes)}`,
      );
      if (result.estimate.unreadable.some((u) => u.explicit) || result.sources === 0)
        process.exitCode = EXIT_FAILED;
    });

  program
    .command('fleet')
    .description(
      'fingerprint files of many hosts in DuckDB: what KSM saves on each host now (the kernel’s rules, as ' +
        'estimate), which sources overlap most, and a placement under each host’s memory that raises the saving',
    )
    .argument('[files...]', 'Parquet files written by ksmkit fingerprint, one per host')
    .option(
      '--synthetic <dir>',
      'instead of files: write a synthetic fleet into <dir> (guests from the scenario library, dealt at random, ' +
        '16 per host) and analyse it',
    )
    .option('--hosts <n>', 'with --synthetic: hosts (a multiple of 5, one per template)', positiveInt, 200)
    .option('--guest-pages <n>', 'with --synthetic: pages per guest', positiveInt, 256)
    .option('--sample <N>', 'with --synthetic: fingerprints sampled 1 in N', sampleOneIn, 1)
    .option(
      '--pin <regex>',
      'sources that stay where they are (matched against host/source and source)',
      regex,
    )
    .option('--json', 'one JSON object with every figure', false)
    .option('--report <file>', 'also write an HTML report')
    .option('--limit <n>', 'rows shown per table', positiveInt, 20)
    .addOption(
      new Option('--engine <engine>', 'the analytic engine (ClickHouse is not supported yet)')
        .choices(['duckdb'] as const)
        .default('duckdb' as const),
    )
    .action(async (given, opts, cmd) => {
      if ((given.length === 0) === (opts.synthetic === undefined))
        cmd.error('error: give fingerprint files, or --synthetic <dir> (not both)', { exitCode: EXIT_USAGE });
      let report: Awaited<ReturnType<typeof runFleet>>;
      try {
        let files = given;
        if (opts.synthetic !== undefined) {
          mkdirSync(opts.synthetic, { recursive: true });
          const fleet = await makeSyntheticFleet({
            dir: opts.synthetic,
            hosts: opts.hosts,
            guestsPerHost: SYNTHETIC_GUESTS_PER_HOST,
            guestPages: opts.guestPages,
            seed: 1,
            samplings: [opts.sample],
          });
          files = [...fleet.files.get(opts.sample)!];
        }
        report = await runFleet({ files, ...(opts.pin !== undefined ? { pin: opts.pin } : {}) });
      } catch (e) {
        console.error(errorLine('fleet', messageOf(e).split('\n')[0]!));
        process.exitCode = EXIT_USAGE;
        return;
      }
      if (opts.report !== undefined) writeFileSync(opts.report, renderHtml(report));
      if (opts.json) console.log(renderJson(report));
      else
        console.log(
          renderHuman(report, {
            color: process.stdout.isTTY === true,
            limit: opts.limit,
            ...(process.stdout.isTTY === true ? { width: process.stdout.columns } : {}),
          }),
        );
    });
}
