#!/usr/bin/env node
/** ksmkit: the command line. */
import { Command, InvalidArgumentError } from '@commander-js/extra-typings';
import { machineMemory, memoryRefusal } from '../simulate/footprint.ts';
import { registerAudit } from './audit.ts';
import { registerCalibrate } from './calibrate.ts';
import { demoMemoryNeed, runDemo } from './demo.ts';
import { registerDoctor } from './doctor.ts';
import { registerEstimate } from './estimate.ts';
import { registerExec } from './exec.ts';
import { applyExitConvention, EXIT_FAILED, EXIT_USAGE, errorLine, messageOf } from './exit.ts';
import { registerFleet } from './fleet.ts';
import { registerFuzz } from './fuzz.ts';
import { registerPolicies } from './policies.ts';
import { registerProbe } from './probe.ts';
import { registerRecord } from './record.ts';
import { type BackendName, diffCommand, replayCommand } from './replay.ts';
import { registerRestore } from './restore.ts';
import { registerSimulate } from './simulate.ts';
import { registerStatus } from './status.ts';
import { exitQuietlyOnClosedStdout } from './terminal.ts';
import { registerTune } from './tune.ts';

function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError('must be a positive integer');
  return n;
}

const program = new Command()
  .name('ksmkit')
  .description('Linux Kernel Samepage Merging, re-implemented and checked against the real kernel')
  .version('0.1.0');

program
  .command('demo')
  .description('a short run of the KSM engine on simulated guests cloned from one image')
  .option('--guests <n>', 'number of guests', positiveInt, 8)
  .option('--guest-mib <n>', 'memory per guest in MiB', positiveInt, 16)
  .action((opts) => {
    const refusal = memoryRefusal(demoMemoryNeed(opts.guests, opts.guestMib), machineMemory());
    if (refusal !== undefined) {
      console.error(errorLine('demo', refusal));
      process.exitCode = EXIT_USAGE;
      return;
    }
    runDemo({ guests: opts.guests, guestMiB: opts.guestMib, write: (l) => console.log(l) });
  });

const io = { out: (l: string) => console.log(l), err: (l: string) => console.error(l) };

program
  .command('replay')
  .description('run a workload file on one backend and print one line (or JSON object) per step')
  .argument('<file>', 'workload file (YAML or JSON)')
  .option(
    '--backend <name>',
    'sim (the engine) or kernel (this machine)',
    (v): BackendName => {
      if (v !== 'sim' && v !== 'kernel') throw new InvalidArgumentError("must be 'sim' or 'kernel'");
      return v;
    },
    'sim' as BackendName,
  )
  .option('--json', 'one JSON object per line', false)
  .option('--force', 'run the kernel backend even if other processes on this machine are mergeable', false)
  .action(async (file, opts) => {
    process.exitCode = await replayCommand(file, opts, io);
  });

program
  .command('diff')
  .description('run workload files on the engine and on the real kernel; print every counter that differs')
  .argument('<files...>', 'workload files')
  .option('--force', 'run even if other processes on this machine are mergeable', false)
  .action(async (files, opts) => {
    process.exitCode = await diffCommand(files, opts, io);
  });

registerRecord(program, io);
registerAudit(program, io);
registerFuzz(program, io);
registerStatus(program);
registerRestore(program);
registerExec(program);
registerEstimate(program);
registerFleet(program);
registerSimulate(program);
registerPolicies(program);
registerCalibrate(program);
registerProbe(program);
registerTune(program);
registerDoctor(program);

applyExitConvention(program);
exitQuietlyOnClosedStdout();

try {
  await program.parseAsync(process.argv);
} catch (e) {
  // A failure no command turned into a sentence: still one line, the stack only when asked for.
  const command = program.args[0] ?? '';
  console.error(errorLine(command, messageOf(e)));
  if (process.env.KSMKIT_DEBUG !== undefined && e instanceof Error) console.error(e.stack);
  else console.error('(KSMKIT_DEBUG=1 shows where)');
  process.exitCode = EXIT_FAILED;
}
