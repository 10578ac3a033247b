/**
 * Runs the real ksmtuned (/usr/sbin/ksmtuned, the Debian script) on recorded
 * inputs, step by step, and records what it decided: the oracle for
 * `tune --policy ksmtuned` (ksmtuned-oracle.test.ts compares).
 *
 * Meant to run as pid 1 of a private pid and mount namespace
 * (`unshare --mount --pid --fork --mount-proc --propagation private`), as root:
 * - a scratch directory is bind-mounted over /sys/kernel/mm/ksm, and checked
 *   (a marker file must show through) before the script ever starts, so the
 *   script writes the scratch files, never the machine's sysfs;
 * - a scratch file over /proc/meminfo (rewritten in place between steps: the
 *   bind mount holds the inode) and one over /etc/ksmtuned.conf;
 * - stand-in guests: perl exec'd under the name `qemu-system-x86_64` with
 *   `-enable-kvm` in its command line, holding a known number of touched MiB.
 * The pid namespace sees only these processes, so no other helper's stand-in
 * counts, and everything in it dies with this process.
 *
 * Each step: write the step's meminfo, start or end stand-ins to the step's
 * sizes, take ksmkit's own look at the host (KernelTunerHost.observe(), the
 * daemon's code path), then SIGUSR1 the script's loop (it retunes at once)
 * and wait for its last DEBUG line of the step. The script's `debug` lines,
 * the scratch run/pages_to_scan/sleep_millisecs after the step, and our look
 * are written out as JSON.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { MemInfoKb, TunerInputs } from '../../tuner/inputs.ts';
import { committedMemoryKb, KernelTunerHost } from './kernel-host.ts';

export const KSMTUNED_SCRIPT = '/usr/sbin/ksmtuned';
const KSM_DIR = '/sys/kernel/mm/ksm';
const MARKER = '.ksmkit-oracle-scratch';

export interface OracleStep {
  readonly meminfo: MemInfoKb;
  /** The stand-in guests running during this step, MiB each. */
  readonly guestsMiB: readonly number[];
}

export interface OracleSequence {
  readonly name: string;
  /** ksmtuned.conf lines of the sequence; the driver adds DEBUG, LOGFILE and a long KSM_MONITOR_INTERVAL. */
  readonly conf: string;
  readonly steps: readonly OracleStep[];
}

export interface OracleStepResult {
  /** ksmkit's look at the host just before the script's step. */
  readonly inputs: TunerInputs;
  /** The script's DEBUG lines of this step (the start lines with the first step), date stripped. */
  readonly debug: readonly string[];
  /** The scratch sysfs files after the step. */
  readonly sysfs: { readonly run: string; readonly pages_to_scan: string; readonly sleep_millisecs: string };
}

export interface OracleSequenceResult {
  readonly name: string;
  /** The conf file as the script read it (the sequence's plus the driver's lines). */
  readonly conf: string;
  readonly steps: readonly OracleStepResult[];
}

const STAND_IN =
  'my $x = "\\x01" x ($ARGV[1] * 1048576); open(my $f, ">", $ARGV[2]) or die; close $f; sleep 1 while 1;';

function meminfoText(m: MemInfoKb): string {
  const line = (k: string, v: number) => `${`${k}:`.padEnd(16)}${String(v).padStart(8)} kB\n`;
  return (
    line('MemTotal', m.MemTotal) +
    line('MemFree', m.MemFree) +
    line('MemAvailable', m.MemAvailable) +
    line('Buffers', m.Buffers) +
    line('Cached', m.Cached) +
    line('SwapCached', 0) +
    line('SwapTotal', m.SwapFree) +
    line('SwapFree', m.SwapFree)
  );
}

/** `Sun Dec  6 00:47:47 UTC 2026: total 123` -> `total 123` (the script prefixes `/bin/date`). */
function stripDate(line: string): string {
  const at = line.indexOf(': ');
  return at < 0 ? line : line.slice(at + 2);
}

function mount(args: string[]): void {
  execFileSync('mount', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

interface StandIn {
  readonly mib: number;
  readonly child: ChildProcess;
}

class Driver {
  private readonly scratch = mkdtempSync('/tmp/ksmkit-ksmtuned-oracle-');
  private readonly ksmDir = join(this.scratch, 'ksm');
  private readonly meminfoPath = join(this.scratch, 'meminfo');
  private readonly confPath = join(this.scratch, 'ksmtuned.conf');
  private readonly logPath = join(this.scratch, 'log');
  private standIns: StandIn[] = [];
  private readyCount = 0;

  setUp(): void {
    if (process.pid !== 1)
      throw new Error('the oracle driver must be pid 1 of its own pid namespace (unshare --pid --fork)');
    execFileSync('mkdir', ['-p', this.ksmDir]);
    writeFileSync(join(this.ksmDir, MARKER), '');
    this.resetSysfs();
    writeFileSync(
      this.meminfoPath,
      meminfoText({ MemTotal: 1, MemFree: 1, MemAvailable: 1, Buffers: 0, Cached: 0, SwapFree: 0 }),
    );
    writeFileSync(this.confPath, '');
    mount(['--make-rprivate', '/']);
    mount(['--bind', this.ksmDir, KSM_DIR]);
    // The script must never run unless its sysfs writes land in the scratch directory.
    if (!existsSync(join(KSM_DIR, MARKER)))
      throw new Error(`${KSM_DIR} is not the scratch directory: refusing to run`);
    mount(['--bind', this.meminfoPath, '/proc/meminfo']);
    if (!existsSync('/etc/ksmtuned.conf')) writeFileSync('/etc/ksmtuned.conf', '');
    mount(['--bind', this.confPath, '/etc/ksmtuned.conf']);
  }

  async tearDown(): Promise<void> {
    await this.setStandIns([]);
    rmSync(this.scratch, { recursive: true, force: true });
  }

  private resetSysfs(): void {
    writeFileSync(join(this.ksmDir, 'run'), '0\n');
    writeFileSync(join(this.ksmDir, 'pages_to_scan'), '100\n');
    writeFileSync(join(this.ksmDir, 'sleep_millisecs'), '20\n');
    for (const f of ['full_scans', 'pages_scanned', 'pages_shared', 'pages_sharing'])
      writeFileSync(join(this.ksmDir, f), '0\n');
  }

  /** Starts and ends stand-ins until exactly `mibs` run (matched by size), each holding its memory. */
  private async setStandIns(mibs: readonly number[]): Promise<void> {
    const wanted = [...mibs];
    const keep: StandIn[] = [];
    const ending: Array<Promise<unknown>> = [];
    for (const s of this.standIns) {
      const i = wanted.indexOf(s.mib);
      if (i >= 0) {
        wanted.splice(i, 1);
        keep.push(s);
      } else {
        // Reaped (gone from /proc) before anyone counts again.
        ending.push(new Promise((resolve) => s.child.once('exit', resolve)));
        s.child.kill('SIGKILL');
      }
    }
    await Promise.all(ending);
    const fresh: Array<{ standIn: StandIn; ready: string }> = [];
    for (const mib of wanted) {
      const ready = join(this.scratch, `ready-${this.readyCount++}`);
      const child = spawn(
        'bash',
        [
          '-c',
          'exec -a qemu-system-x86_64 perl -e "$0" -- -enable-kvm "$1" "$2"',
          STAND_IN,
          String(mib),
          ready,
        ],
        { stdio: 'ignore' },
      );
      fresh.push({ standIn: { mib, child }, ready });
    }
    this.standIns = [...keep, ...fresh.map((f) => f.standIn)];
    for (const f of fresh)
      await waitFor(() => existsSync(f.ready), 10_000, `stand-in of ${f.standIn.mib} MiB`);
    // perl faults in a few more pages on its way into sleep(): count only once the RSS holds still.
    let last = -1;
    for (let same = 0; same < 3; ) {
      await sleep(20);
      const now = committedMemoryKb('/proc');
      same = now === last ? same + 1 : 0;
      last = now;
    }
  }

  async run(seq: OracleSequence): Promise<OracleSequenceResult> {
    const conf = `${seq.conf.trimEnd()}\nKSM_MONITOR_INTERVAL=3600\nDEBUG=1\nLOGFILE=${this.logPath}\n`;
    writeFileSync(this.confPath, conf);
    writeFileSync(this.logPath, '');
    this.resetSysfs();
    const first = seq.steps[0];
    if (first === undefined) throw new Error(`sequence ${seq.name} has no step`);
    writeFileSync(this.meminfoPath, meminfoText(first.meminfo));
    await this.setStandIns(first.guestsMiB);
    const pidFile = join(this.scratch, 'pid');
    rmSync(pidFile, { force: true });
    execFileSync(KSMTUNED_SCRIPT, [], { env: { ...process.env, PIDFILE: pidFile }, stdio: 'ignore' });
    const loopPid = Number(readFileSync(pidFile, 'latin1').trim());
    // SIGUSR1 before the loop has set its trap would kill it: wait until it catches the signal.
    await waitFor(() => catchesUsr1(loopPid), 5_000, "ksmtuned's loop to trap SIGUSR1");
    const host = new KernelTunerHost({ procDir: '/proc', ksmDir: KSM_DIR });
    const steps: OracleStepResult[] = [];
    let linesSeen = 0;
    let decisions = 0;
    try {
      for (const [index, step] of seq.steps.entries()) {
        if (index > 0) {
          writeFileSync(this.meminfoPath, meminfoText(step.meminfo));
          await this.setStandIns(step.guestsMiB);
        }
        const inputs = host.observe();
        const want = decisions + 1;
        const count = () => this.log().filter((l) => / stop ksm$|KSMCTL start /.test(l)).length;
        // A signal that lands while the loop is between `sleep &` and `wait` is trapped without ending
        // the wait: send it again until the step shows in the log.
        for (let attempt = 0; count() < want; attempt++) {
          if (attempt > 20) throw new Error(`ksmtuned did not take step ${index} of ${seq.name}`);
          process.kill(loopPid, 'SIGUSR1');
          await waitFor(() => count() >= want, 1_000, '').catch(() => undefined);
        }
        decisions = want;
        const lines = this.log();
        steps.push({
          inputs,
          debug: lines.slice(linesSeen).map(stripDate),
          sysfs: {
            run: this.readScratch('run'),
            pages_to_scan: this.readScratch('pages_to_scan'),
            sleep_millisecs: this.readScratch('sleep_millisecs'),
          },
        });
        linesSeen = lines.length;
      }
    } finally {
      killTree(loopPid);
    }
    return { name: seq.name, conf, steps };
  }

  private log(): string[] {
    return readFileSync(this.logPath, 'latin1')
      .split('\n')
      .filter((l) => l !== '');
  }

  private readScratch(name: string): string {
    return readFileSync(join(this.ksmDir, name), 'latin1').trim();
  }
}

function catchesUsr1(pid: number): boolean {
  try {
    const m = /^SigCgt:\s*([0-9a-f]+)$/m.exec(readFileSync(`/proc/${pid}/status`, 'latin1'));
    return m !== null && (BigInt(`0x${m[1]}`) & (1n << 9n)) !== 0n;
  } catch {
    return false;
  }
}

/** The loop and its `sleep` child. */
function killTree(pid: number): void {
  try {
    for (const child of readFileSync(`/proc/${pid}/task/${pid}/children`, 'latin1').trim().split(/\s+/)) {
      if (child !== '') process.kill(Number(child), 'SIGKILL');
    }
    process.kill(pid, 'SIGKILL');
  } catch {
    // Already gone.
  }
}

async function waitFor(ok: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

export async function runOracle(sequences: readonly OracleSequence[]): Promise<OracleSequenceResult[]> {
  const driver = new Driver();
  driver.setUp();
  try {
    const out: OracleSequenceResult[] = [];
    for (const seq of sequences) out.push(await driver.run(seq));
    return out;
  } finally {
    await driver.tearDown();
  }
}

// As a program: ksmtuned-oracle.ts PLAN.json OUT.json (inside the namespace).
if (process.argv[1] !== undefined && import.meta.url.endsWith(process.argv[1].replace(/^.*\//, '/'))) {
  const [planPath, outPath] = process.argv.slice(2);
  if (planPath === undefined || outPath === undefined) {
    console.error('usage: ksmtuned-oracle.ts PLAN.json OUT.json');
    process.exit(2);
  }
  const plan = JSON.parse(readFileSync(planPath, 'utf8')) as OracleSequence[];
  runOracle(plan).then(
    (results) => {
      writeFileSync(outPath, JSON.stringify(results));
      process.exit(0);
    },
    (e: unknown) => {
      console.error(`ksmtuned oracle: ${(e as Error).message}`);
      process.exit(1);
    },
  );
}
