/**
 * Runs one engine job (a workload's engine side, the scale run, the default
 * scenario's speed) in a child process of its own, so that its peak resident
 * memory is its own (VmHWM) and its gigabytes go back to the machine before
 * the next job. The child is this file:
 * `node [the parent's loader] --expose-gc child.ts '<job JSON>'` prints the
 * result as its last line of output, as JSON.
 */
import { spawn } from 'node:child_process';
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { type EngineSideOptions, type EngineSideResult, runEngineSide } from './engine-side.ts';
import { runScale, type ScaleOptions, type ScaleResult } from './scale.ts';
import { measureSweepSpeed, type SweepSpeed } from './sweep-speed.ts';
import type { BenchWorkload } from './workload.ts';

export type ChildJob =
  | { readonly kind: 'engine'; readonly workload: BenchWorkload; readonly options: EngineSideOptions }
  | { readonly kind: 'scale'; readonly options: ScaleOptions }
  | { readonly kind: 'sweep'; readonly fastForward: boolean };

interface ChildResults {
  engine: EngineSideResult;
  scale: ScaleResult;
  sweep: SweepSpeed;
}

const SELF = fileURLToPath(import.meta.url);

/** Node's flags for the child: the parent's loader (tsx), without the test runner's. */
function childExecArgv(): string[] {
  return [...process.execArgv.filter((a) => !a.startsWith('--test')), '--expose-gc'];
}

export function runInChild<J extends ChildJob>(job: J): Promise<ChildResults[J['kind']]> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...childExecArgv(), SELF, JSON.stringify(job)], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (t: string) => {
      out = `${out}${t}`;
    });
    child.stderr.setEncoding('utf8').on('data', (t: string) => {
      err = `${err}${t}`.slice(-4000);
    });
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      if (code !== 0) {
        reject(new Error(`the ${job.kind} job failed (${signal ?? `exit ${code}`}): ${err.trim()}`));
        return;
      }
      try {
        resolve(JSON.parse(out.trim().split('\n').at(-1) ?? '') as ChildResults[J['kind']]);
      } catch {
        reject(new Error(`the ${job.kind} job printed no result: ${out.slice(-500)} ${err.trim()}`));
      }
    });
  });
}

async function runJob(job: ChildJob): Promise<unknown> {
  switch (job.kind) {
    case 'engine':
      return runEngineSide(job.workload, job.options);
    case 'scale':
      return runScale(job.options);
    case 'sweep':
      return measureSweepSpeed(job.fastForward);
  }
}

function isMain(): boolean {
  const entry = process.argv[1];
  if (entry === undefined) return false;
  try {
    return realpathSync(entry) === realpathSync(SELF);
  } catch {
    return false;
  }
}

if (isMain()) {
  const job = JSON.parse(process.argv[2] ?? '{}') as ChildJob;
  process.stdout.write(`${JSON.stringify(await runJob(job))}\n`);
}
