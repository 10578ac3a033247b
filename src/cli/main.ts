#!/usr/bin/env node
/** ksmkit: the command line. */
import { Command, InvalidArgumentError } from '@commander-js/extra-typings';
import { runDemo } from './demo.ts';

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
  .action((opts) => runDemo({ guests: opts.guests, guestMiB: opts.guestMib, write: (l) => console.log(l) }));

await program.parseAsync(process.argv);
