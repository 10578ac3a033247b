/**
 * For the tests of `ksmkit status` and `ksmkit exec`: temporary directories
 * that imitate /sys/kernel/mm/ksm and /proc of a given kernel, and a way to run
 * the two commands as a user would (a child process with commander).
 */
import { type SpawnOptions, spawn, spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { SysfsGuard } from '../../backend/kernel/sysfs-guard.ts';
import { KSM_SYSFS_DIR } from '../../surface/sysfs.ts';
import { execAvailability, helperPathFromEnv } from '../exec/exec.ts';
import type { StatusSources } from './snapshot.ts';

/** Linux 6.18's files with plausible values (a host with one merged VM). */
export const KSM_6_18: Readonly<Record<string, string>> = {
  run: '1',
  pages_to_scan: '100',
  sleep_millisecs: '20',
  merge_across_nodes: '1',
  use_zero_pages: '0',
  max_page_sharing: '256',
  stable_node_chains_prune_millisecs: '2000',
  smart_scan: '1',
  advisor_mode: '[none] scan-time',
  advisor_max_cpu: '70',
  advisor_min_pages_to_scan: '500',
  advisor_max_pages_to_scan: '30000',
  advisor_target_scan_time: '200',
  pages_scanned: '123456',
  pages_shared: '10',
  pages_sharing: '500',
  pages_unshared: '7',
  pages_volatile: '3',
  pages_skipped: '42',
  ksm_zero_pages: '4',
  general_profit: '2063360',
  stable_node_chains: '0',
  stable_node_dups: '0',
  full_scans: '9',
};

/** A 6.1-era directory: no smart_scan, advisor, pages_skipped, ksm_zero_pages, general_profit, pages_scanned. */
export const KSM_6_1: Readonly<Record<string, string>> = {
  run: '1',
  pages_to_scan: '100',
  sleep_millisecs: '20',
  merge_across_nodes: '1',
  use_zero_pages: '0',
  max_page_sharing: '256',
  stable_node_chains_prune_millisecs: '2000',
  pages_shared: '2',
  pages_sharing: '30',
  pages_unshared: '1',
  pages_volatile: '0',
  stable_node_chains: '0',
  stable_node_dups: '0',
  full_scans: '3',
};

/** The six lines of a 6.14+ ksm_stat. */
export function ksmStat6(v: {
  rmap: number;
  zero: number;
  merging: number;
  profit: number;
  mergeAny: boolean;
  mergeable: boolean;
}): string {
  return (
    `ksm_rmap_items ${v.rmap}\nksm_zero_pages ${v.zero}\nksm_merging_pages ${v.merging}\n` +
    `ksm_process_profit ${v.profit}\nksm_merge_any: ${v.mergeAny ? 'yes' : 'no'}\n` +
    `ksm_mergeable: ${v.mergeable ? 'yes' : 'no'}\n`
  );
}

export interface FixtureProcess {
  readonly pid: number;
  readonly comm: string;
  /** NUL-separated as in /proc; '' for a kernel thread. */
  readonly cmdline?: string;
  /** The ksm_stat text; undefined: no such file (a kernel before 6.1). */
  readonly ksmStat?: string;
  /** The ksm_merging_pages text; undefined: no such file. */
  readonly mergingPages?: string;
}

export interface Fixture {
  readonly dir: string;
  readonly sources: StatusSources;
  /** Rewrites one KSM file (between readings). */
  setKsm(name: string, value: string): void;
  cleanup(): void;
}

/** A temporary /sys/kernel/mm/ksm (omitted when `ksm` is null) and /proc. */
export function makeFixture(options: {
  readonly kernel?: string;
  readonly ksm: Readonly<Record<string, string>> | null;
  readonly processes: readonly FixtureProcess[];
  /** Extra (read-only) files of a kernel newer than the table. */
  readonly extraKsm?: Readonly<Record<string, string>>;
}): Fixture {
  const dir = mkdtempSync(join(tmpdir(), 'ksmkit-status-'));
  const ksmDir = join(dir, 'sys/kernel/mm/ksm');
  const procDir = join(dir, 'proc');
  mkdirSync(join(procDir, 'sys/kernel'), { recursive: true });
  writeFileSync(join(procDir, 'sys/kernel/osrelease'), `${options.kernel ?? '6.18.44-fixture'}\n`);
  const counters = new Set([
    'pages_scanned',
    'pages_shared',
    'pages_sharing',
    'pages_unshared',
    'pages_volatile',
    'pages_skipped',
    'ksm_zero_pages',
    'general_profit',
    'stable_node_chains',
    'stable_node_dups',
    'full_scans',
  ]);
  if (options.ksm !== null) {
    mkdirSync(ksmDir, { recursive: true });
    for (const [name, value] of Object.entries(options.ksm)) {
      writeFileSync(join(ksmDir, name), `${value}\n`, { mode: counters.has(name) ? 0o444 : 0o644 });
    }
    for (const [name, value] of Object.entries(options.extraKsm ?? {})) {
      writeFileSync(join(ksmDir, name), `${value}\n`, { mode: 0o444 });
    }
  }
  for (const p of options.processes) {
    const pd = join(procDir, String(p.pid));
    mkdirSync(pd, { recursive: true });
    writeFileSync(join(pd, 'comm'), `${p.comm}\n`);
    writeFileSync(join(pd, 'cmdline'), p.cmdline ?? `${p.comm}\0`);
    if (p.ksmStat !== undefined) writeFileSync(join(pd, 'ksm_stat'), p.ksmStat);
    if (p.mergingPages !== undefined) writeFileSync(join(pd, 'ksm_merging_pages'), p.mergingPages);
  }
  return {
    dir,
    sources: { ksmDir, procDir },
    // Replaced by a rename: a non-root test cannot open its own 0444 file for writing.
    setKsm: (name, value) => {
      const path = join(ksmDir, name);
      writeFileSync(`${path}.new`, `${value}\n`, { mode: statSync(path).mode & 0o777 });
      renameSync(`${path}.new`, path);
    },
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** A 6.18 host: a VM merged by prctl, a madvise user, an idle process, a kernel thread, a zombie. */
export function host618(extra: readonly FixtureProcess[] = []): Fixture {
  return makeFixture({
    ksm: KSM_6_18,
    processes: [
      {
        pid: 100,
        comm: 'qemu-system-x86',
        cmdline: 'qemu-system-x86_64\0-name\0vm1\0',
        ksmStat: ksmStat6({
          rmap: 520,
          zero: 4,
          merging: 505,
          profit: 2_050_816,
          mergeAny: true,
          mergeable: true,
        }),
        mergingPages: '505\n',
      },
      {
        pid: 200,
        comm: 'redis-server',
        ksmStat: ksmStat6({
          rmap: 100,
          zero: 0,
          merging: 5,
          profit: 14_080,
          mergeAny: false,
          mergeable: true,
        }),
        mergingPages: '5\n',
      },
      {
        pid: 300,
        comm: 'bash',
        ksmStat: ksmStat6({ rmap: 0, zero: 0, merging: 0, profit: 0, mergeAny: false, mergeable: false }),
        mergingPages: '0\n',
      },
      { pid: 2, comm: 'kthreadd', cmdline: '', ksmStat: '', mergingPages: '' },
      {
        pid: 400,
        comm: 'scanner',
        ksmStat: ksmStat6({ rmap: 50, zero: 0, merging: 0, profit: -3200, mergeAny: false, mergeable: true }),
        mergingPages: '0\n',
      },
      ...extra,
    ],
  });
}

const REPO = new URL('../../../', import.meta.url).pathname;

/** commander with the two commands alone, as main.ts registers them. */
const HARNESS = `
const { Command } = await import('@commander-js/extra-typings');
const { registerStatus } = await import(${JSON.stringify(new URL('../../cli/status.ts', import.meta.url).href)});
const { registerExec } = await import(${JSON.stringify(new URL('../../cli/exec.ts', import.meta.url).href)});
const program = new Command().name('ksmkit');
registerStatus(program);
registerExec(program);
await program.parseAsync(process.argv.slice(1), { from: 'user' });
`;

export interface CliRun {
  readonly status: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Spawns `ksmkit ARGS...` (via tsx); `onStdout` sees output as it comes (for --serve). */
export function spawnCli(args: readonly string[], options: SpawnOptions = {}) {
  return spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', HARNESS, '--', ...args], {
    cwd: REPO,
    stdio: ['ignore', 'pipe', 'pipe'],
    ...options,
  });
}

/** Runs `ksmkit ARGS...` to its end. */
export function runCli(args: readonly string[], options: SpawnOptions = {}): Promise<CliRun> {
  const child = spawnCli(args, options);
  let stdout = '';
  let stderr = '';
  child.stdout?.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (status, signal) => resolve({ status, signal, stdout, stderr }));
  });
}

/** One metric family of a parsed exposition; label values unescaped. */
export interface ParsedFamily {
  readonly help: string;
  readonly type: string;
  readonly samples: Array<{ readonly labels: Record<string, string>; readonly value: number }>;
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const FLOAT = /^(?:[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|NaN|[-+]Inf)$/;

function unescapeText(text: string, quotes: boolean, where: string): string {
  let out = '';
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (ch !== '\\') {
      out += ch;
      continue;
    }
    const next = text[++i];
    if (next === '\\') out += '\\';
    else if (next === 'n') out += '\n';
    else if (next === '"' && quotes) out += '"';
    else throw new Error(`${where}: bad escape \\${next ?? ''}`);
  }
  return out;
}

/**
 * A strict reader of the text exposition format 0.0.4, for the tests: every
 * line is a HELP, a TYPE or a sample; HELP then TYPE come once per family,
 * before its samples, which follow together; names, labels, escapes and
 * values are checked. Throws with the line number on the first fault.
 */
export function parseExposition(text: string): Map<string, ParsedFamily> {
  if (!text.endsWith('\n')) throw new Error('the exposition must end with a newline');
  const families = new Map<string, ParsedFamily & { samples: ParsedFamily['samples'] }>();
  let current: string | undefined;
  let pendingHelp: { name: string; help: string } | undefined;
  const lines = text.slice(0, -1).split('\n');
  for (const [index, line] of lines.entries()) {
    const where = `line ${index + 1} (${JSON.stringify(line)})`;
    if (line.startsWith('#')) {
      const help = /^# HELP (\S+) (.*)$/.exec(line);
      const type = /^# TYPE (\S+) (counter|gauge|histogram|summary|untyped)$/.exec(line);
      if (help !== null) {
        if (!METRIC_NAME.test(help[1]!)) throw new Error(`${where}: bad metric name`);
        if (families.has(help[1]!)) throw new Error(`${where}: family ${help[1]} described twice`);
        pendingHelp = { name: help[1]!, help: unescapeText(help[2]!, false, where) };
        continue;
      }
      if (type !== null) {
        if (pendingHelp === undefined || pendingHelp.name !== type[1])
          throw new Error(`${where}: TYPE without its HELP just before`);
        if (type[2] === 'counter' && !type[1]!.endsWith('_total'))
          throw new Error(`${where}: a counter's name ends in _total`);
        families.set(type[1]!, { help: pendingHelp.help, type: type[2]!, samples: [] });
        current = type[1];
        pendingHelp = undefined;
        continue;
      }
      throw new Error(`${where}: a comment that is neither HELP nor TYPE`);
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$/.exec(line);
    if (m === null) throw new Error(`${where}: not a sample line`);
    if (m[1] !== current) throw new Error(`${where}: sample of ${m[1]} outside its family (${current})`);
    if (!FLOAT.test(m[4]!)) throw new Error(`${where}: bad value`);
    const labels: Record<string, string> = {};
    let rest = m[3] ?? '';
    while (rest !== '') {
      const label = /^([^=]+)="((?:[^"\\]|\\.)*)"(,|$)/.exec(rest);
      if (label === null) throw new Error(`${where}: bad labels at ${JSON.stringify(rest)}`);
      if (!LABEL_NAME.test(label[1]!) || label[1]!.startsWith('__'))
        throw new Error(`${where}: bad label name`);
      if (label[1]! in labels) throw new Error(`${where}: label ${label[1]} twice`);
      labels[label[1]!] = unescapeText(label[2]!, true, where);
      rest = rest.slice(label[0].length);
    }
    const family = families.get(m[1]!)!;
    const key = JSON.stringify(labels);
    if (family.samples.some((s) => JSON.stringify(s.labels) === key))
      throw new Error(`${where}: the same labels twice`);
    family.samples.push({ labels, value: Number(m[4]!.replace('Inf', 'Infinity')) });
  }
  if (pendingHelp !== undefined) throw new Error(`HELP of ${pendingHelp.name} without TYPE`);
  for (const [name, f] of families)
    if (f.samples.length === 0) throw new Error(`family ${name} has no sample`);
  return families;
}

/**
 * SysfsGuard (the machine-wide lock, every KSM setting restored at release).
 * Without `force` it waits, up to a minute, while other processes are
 * mergeable (when test files run in parallel, the exec tests' short-lived
 * commands are). With `force` it only serializes: the exec tests take it so
 * that their mergeable commands never run during another run's kernel test.
 */
export async function acquireGuard(options: { force?: boolean } = {}): Promise<SysfsGuard> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    try {
      return await SysfsGuard.acquire({ force: options.force === true });
    } catch (e) {
      if (!/other processes are already mergeable/.test((e as Error).message) || Date.now() > deadline)
        throw e;
      await sleep(250);
    }
  }
}

/** Why a test of this host's KSM cannot run here, or false. */
export function ksmSkip(): string | false {
  if (process.platform !== 'linux') return `needs Linux, this is ${process.platform}`;
  if (!existsSync(`${KSM_SYSFS_DIR}/run`)) return `no ${KSM_SYSFS_DIR}: this kernel has no KSM`;
  return false;
}

export function rootSkip(): string | false {
  const k = ksmSkip();
  if (k !== false) return k;
  if (process.getuid?.() !== 0) return 'needs root (runs a command as another user, or drives ksmd)';
  return false;
}

/** The run-as-nobody test needs the checkout readable by that user (a clone in a 0700 directory is not). */
export function nobodySkip(): string | false {
  const r = rootSkip();
  if (r !== false) return r;
  const probe = spawnSync(
    '/bin/sh',
    ['-c', 'test -r "$1/node_modules/tsx/package.json"', 'sh', process.cwd()],
    {
      uid: 65534,
      gid: 65534,
    },
  );
  return probe.status === 0 ? false : `user nobody cannot read this checkout (${process.cwd()})`;
}

export function mergeSkip(): string | false {
  const r = rootSkip();
  if (r !== false) return r;
  const availability = execAvailability();
  if (!availability.ok) return availability.reason;
  const probe = spawnSync(helperPathFromEnv(), ['true'], {
    stdio: ['ignore', 'ignore', 'pipe'],
    encoding: 'utf8',
  });
  if (probe.status !== 0) return `the exec helper cannot enable KSM here: ${probe.stderr.trim()}`;
  return false;
}

/** A Node process that fills 512 pages with the same byte, says ready, and waits. */
const FILLER = `
const b = Buffer.alloc(512 * 4096, 7);
globalThis.keep = b;
console.log('ready');
setInterval(() => {}, 1000);
`;

/**
 * Starts the filler under `ksmkit exec` (KSM on for it, 512 equal pages) and
 * returns the ksmkit child and the filler's pid (the exec'd helper: ksmkit's
 * node process's only child). Call it while holding the guard; end the child.
 */
export async function startFiller(): Promise<{ child: ReturnType<typeof spawnCli>; pid: number }> {
  const child = spawnCli(['exec', '-q', '--', process.execPath, '-e', FILLER]);
  child.stdout!.setEncoding('utf8');
  await new Promise<void>((resolve, reject) => {
    child.stdout!.once('data', (d: string) => (d.startsWith('ready') ? resolve() : reject(new Error(d))));
    child.once('exit', (code) => reject(new Error(`exited ${code} first`)));
  });
  const cli = child.pid!;
  const children = readFileSync(`/proc/${cli}/task/${cli}/children`, 'latin1').trim().split(' ');
  if (children.length !== 1) throw new Error(`children of ${cli}: ${children.join(' ')}`);
  return { child, pid: Number(children[0]) };
}
