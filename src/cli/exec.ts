/** `ksmkit exec [--] CMD ARGS...`: run a command with KSM on for it and its descendants. */
import type { Command } from '@commander-js/extra-typings';
import { EXEC_EXIT, runExec } from '../tools/exec/exec.ts';

/**
 * Adds `ksmkit exec` to the program. Everything after CMD belongs to CMD
 * (`ksmkit exec grep -h x` passes -h to grep), which commander allows only
 * with positional options on the program: this turns them on, so the
 * program's own options (--help, --version) go before the subcommand.
 */
export function registerExec(program: Command): void {
  program.enablePositionalOptions();
  program
    .command('exec')
    .summary('run a command with KSM enabled for it and its descendants')
    .description(
      'run a command with KSM enabled for it and every process it starts (prctl PR_SET_MEMORY_MERGE, ' +
        'inherited across fork and exec); exits with its status',
    )
    .usage('[options] [--] CMD [ARGS...]')
    .argument('<command>', 'the command to run (looked up in PATH)')
    .argument('[args...]', 'its arguments')
    .option('-q, --quiet', 'no note on stderr when ksmd is not running (run is not 1)', false)
    .passThroughOptions()
    .addHelpText(
      'after',
      `
No privilege is needed; ksmd merges only while /sys/kernel/mm/ksm/run is 1 (root sets it).
Exit status: the command's (128 + N when signal N killed it), or when it did not start:
  ${EXEC_EXIT.notFound}  command not found
  ${EXEC_EXIT.cannotExecute}  found but could not be executed
  ${EXEC_EXIT.noKsm}   no KSM in this kernel, or a kernel before 6.4 (no PR_SET_MEMORY_MERGE)
  ${EXEC_EXIT.noPermission}   not permitted (a seccomp filter or security module refuses the prctl)
  ${EXEC_EXIT.prctlFailed}   the prctl failed otherwise
`,
    )
    .action(async (command, args, opts) => {
      process.exitCode = await runExec([command, ...args], {
        quiet: opts.quiet,
        err: (line) => console.error(line),
      });
    });
}
