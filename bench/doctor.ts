/**
 * `npm run bench:doctor`: how long `ksmkit doctor --all` takes on a host of
 * 200 processes (the bar: under 5 s). A benchmark, not a test: it
 * reports figures, it asserts nothing.
 *
 *   npm run bench:doctor                         200 processes, 3 runs
 *   npm run bench:doctor -- --processes 400 --runs 5 --mib 2
 *
 * Half the processes run under ksmkit-exec (PR_SET_MEMORY_MERGE): a bash
 * holding a MiB string of one repeated byte, so doctor's page analysis has
 * twins to find; the other half are the same bash without KSM. Every bash stops
 * itself (SIGSTOP) once its string is built and is killed by pid at the end.
 * Mergeable processes would disturb other kernel tests, so the whole run holds
 * the machine-wide KSM lock (SysfsGuard), and every setting is restored.
 *
 * --no-ksm starts none under ksmkit-exec and takes no lock (smaps only, no pages).
 *
 * Measured: runDoctor({ target: all }) in this process (the library entry
 * point, 1 s measuring window included), and the CLI end to end
 * (`node dist/cli/main.js doctor --all --json`, when dist/ is built).
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { Command, InvalidArgumentError } from '@commander-js/extra-typings';
import { SysfsGuard } from '../src/backend/kernel/sysfs-guard.ts';
import { runDoctor } from '../src/tools/doctor/doctor.ts';

function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('must be a positive integer');
  return n;
}

const opts = new Command()
  .name('bench:doctor')
  .option('--processes <n>', 'processes to start', positiveInt, 200)
  .option('--mib <n>', 'MiB each process holds', positiveInt, 1)
  .option('--runs <n>', 'doctor runs', positiveInt, 3)
  .option(
    '--no-ksm',
    'no process under PR_SET_MEMORY_MERGE (then no lock is needed; no page analysis happens)',
  )
  .parse()
  .opts();

const root = fileURLToPath(new URL('..', import.meta.url));
const execHelper = `${root}native/build/ksmkit-exec`;
const cli = `${root}dist/cli/main.js`;
if (!existsSync(execHelper)) {
  console.error(`bench:doctor: ${execHelper} is not built: run node scripts/build-agent.mjs`);
  process.exit(2);
}

const children: ChildProcess[] = [];
function killAll(): void {
  for (const c of children) {
    if (c.pid !== undefined && c.exitCode === null && c.signalCode === null) {
      try {
        process.kill(c.pid, 'SIGKILL');
      } catch {
        // Gone.
      }
    }
  }
}

/** User + system CPU of the reaped children of this process (/proc/self/stat cutime, cstime), s. */
function childrenCpuSeconds(): number {
  const stat = readFileSync('/proc/self/stat', 'latin1');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // stat(5) fields 16 and 17 (cutime, cstime); this slice starts at field 3. Ticks of 1/100 s (USER_HZ).
  return (Number(fields[13]) + Number(fields[14])) / 100;
}

/** True once the process has stopped itself (state T). */
function stopped(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    return stat.charAt(stat.lastIndexOf(')') + 2) === 'T';
  } catch {
    return false;
  }
}

let guard: SysfsGuard | undefined;
if (opts.ksm) {
  try {
    guard = await SysfsGuard.acquire();
  } catch (e) {
    console.error(`bench:doctor: ${(e as Error).message.split('\n')[0]} (--no-ksm needs no lock)`);
    process.exit(2);
  }
  guard.onBeforeRestore(killAll);
}
try {
  const script = `x=$(head -c ${opts.mib * 1048576} /dev/zero | tr '\\0' a); kill -STOP $$; echo "\${#x}"`;
  for (let i = 0; i < opts.processes; i++) {
    const argv = ['bash', '-c', script];
    const c =
      opts.ksm && i % 2 === 0
        ? spawn(execHelper, argv, { stdio: 'ignore' })
        : spawn(argv[0]!, argv.slice(1), { stdio: 'ignore' });
    children.push(c);
  }
  const deadline = Date.now() + 60_000;
  while (!children.every((c) => c.pid !== undefined && stopped(c.pid))) {
    if (Date.now() > deadline) throw new Error('the processes did not all start within 60 s');
    await sleep(50);
  }
  console.log(
    `${opts.processes} processes of ${opts.mib} MiB each (${opts.ksm ? 'half' : 'none'} under PR_SET_MEMORY_MERGE), stopped`,
  );
  const library: number[] = [];
  for (let r = 0; r < opts.runs; r++) {
    const t0 = performance.now();
    const report = await runDoctor({ target: { kind: 'all' } });
    const ms = performance.now() - t0;
    library.push(ms);
    const pages = Object.entries(report.pageTotals)
      .filter(([, n]) => n > 0)
      .map(([v, n]) => `${v} ${n}`)
      .join(', ');
    console.log(
      `runDoctor --all: ${(ms / 1000).toFixed(2)} s; ${report.target.pids.length} processes, ${report.findings.length} findings; pages: ${pages}`,
    );
  }
  const cliTimes: number[] = [];
  const cliCpu: number[] = [];
  if (existsSync(cli)) {
    for (let r = 0; r < opts.runs; r++) {
      const t0 = performance.now();
      const cpu0 = childrenCpuSeconds();
      const p = spawnSync(process.execPath, [cli, 'doctor', '--all', '--json'], {
        encoding: 'utf8',
        maxBuffer: 256 << 20,
      });
      const ms = performance.now() - t0;
      const cpuSeconds = childrenCpuSeconds() - cpu0;
      if (p.status !== 0 && p.status !== 1) throw new Error(`the CLI exited ${p.status}: ${p.stderr}`);
      cliTimes.push(ms);
      cliCpu.push(cpuSeconds * 1000);
      console.log(
        `node dist/cli/main.js doctor --all --json: ${(ms / 1000).toFixed(2)} s wall, ${cpuSeconds.toFixed(2)} s CPU (exit ${p.status})`,
      );
    }
  } else console.log(`no ${cli}: run npm run build to time the CLI too`);
  const best = (a: number[]): string => (a.length === 0 ? '-' : `${(Math.min(...a) / 1000).toFixed(2)} s`);
  console.log(
    `best: library ${best(library)} wall; CLI ${best(cliTimes)} wall, ${best(cliCpu)} CPU (bar: 5 s; the 1 s window is in the wall times)`,
  );
  console.log('Figures taken on a shared, loaded machine are not trustworthy for ratios.');
} finally {
  killAll();
  guard?.release();
}
