/**
 * The command line of `npm run bench`, parsed into the harness's options.
 * Kept apart from bench/run.ts so that its rules are tested.
 */
import { Command, InvalidArgumentError } from '@commander-js/extra-typings';
import type { BenchOptions } from './harness.ts';
import { DEFAULT_SCALE } from './scale.ts';
import { MIXES, parseMixes, parseSizes } from './workload.ts';

export const DEFAULT_SIZES = '256M,1G,4G';
export const DEFAULT_JSON = 'bench-results.json';

export interface BenchCommandLine {
  readonly bench: Omit<BenchOptions, 'log'>;
  /** Where the JSON goes. */
  readonly jsonPath: string;
  /** Where the README table (markdown) goes, if anywhere. */
  readonly markdownPath: string | undefined;
  readonly color: boolean;
}

function wrapParse<T>(parse: (text: string) => T): (text: string) => T {
  return (text) => {
    try {
      return parse(text);
    } catch (e) {
      throw new InvalidArgumentError((e as Error).message);
    }
  };
}

function positiveInt(text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 2) throw new InvalidArgumentError('must be an integer of at least 2');
  return n;
}

/** `npm run bench -- ARGS` without the options that only say where output goes. */
export function reproducingCommand(argv: readonly string[]): string {
  const kept: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--json' || a === '--markdown') i++;
    else if (!a.startsWith('--json=') && !a.startsWith('--markdown=')) kept.push(a);
  }
  return ['npm run bench', ...(kept.length > 0 ? ['--', ...kept] : [])].join(' ');
}

/** Parses `argv` (without node and the script). Throws commander's errors on bad input (exitOverride). */
export function parseBenchCommandLine(
  argv: readonly string[],
  isTty = false,
  output?: { readonly writeOut: (text: string) => void; readonly writeErr: (text: string) => void },
): BenchCommandLine {
  const program = new Command()
    .name('npm run bench --')
    .description('the engine against the real ksmd, pages per CPU-second, on the same workloads')
    .exitOverride()
    .option(
      '--sizes <list>',
      `mergeable memory per workload (default ${DEFAULT_SIZES})`,
      wrapParse(parseSizes),
    )
    .option(
      '--mixes <list>',
      `workload mixes, any of ${MIXES.map((m) => m.name).join(', ')} (default all)`,
      wrapParse(parseMixes),
    )
    .option('--processes <n>', 'processes per workload', positiveInt, 4)
    .option('--json <file>', 'where the results go as JSON', DEFAULT_JSON)
    .option('--markdown <file>', "also write the README's performance table (markdown) there")
    .option('--no-kernel', 'the engine only (the ksmd column then says why)')
    .option('--force', 'drive ksmd even if other processes of the machine are mergeable')
    .option(
      '--scale',
      'the 64 GiB scale run (64 guests of 1 GiB as fingerprints): on by default, off with --quick',
    )
    .option('--no-scale', 'leave out the 64 GiB scale run')
    .option('--quick', '256M only, and the default scenario as npm start runs it only')
    .option('--no-color', 'no colours on the terminal');
  if (output !== undefined) program.configureOutput(output);
  program.parse([...argv], { from: 'user' });
  const o = program.opts();
  const quick = o.quick === true;
  const sizes = o.sizes ?? parseSizes(quick ? '256M' : DEFAULT_SIZES);
  const command = reproducingCommand(argv);
  return {
    bench: {
      sizes,
      mixes: o.mixes ?? [...MIXES],
      processCount: o.processes,
      kernel: o.kernel,
      force: o.force === true,
      scale: (o.scale ?? !quick) ? DEFAULT_SCALE : null,
      sweep: quick ? 'fast-forward' : 'both',
      command,
    },
    jsonPath: o.json,
    markdownPath: o.markdown,
    color: o.color && isTty,
  };
}
