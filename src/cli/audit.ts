/**
 * `ksmkit audit FILE --policy NAME [--json]`: replays a workload on the
 * simulated host under a hardening policy and prints the audit log of every
 * attempt to write /sys/kernel/mm/ksm (who, when on the virtual clock, old and
 * new value, result). Only dormant and fortress keep a log. A `set` step may
 * name the writing process with `as:`, and a process may have a uid, cgroup,
 * label and cap_sys_admin (readme-policy, "Workload files").
 *
 * Exit status as `replay`: 0, 1 when an expect or read failed, 2 invalid file.
 */
import { type Command, InvalidArgumentError } from '@commander-js/extra-typings';
import { SimBackend } from '../backend/sim/sim-backend.ts';
import { formatAuditLog } from '../policy/audit.ts';
import { describePolicy, type PolicyConfig, parsePolicy } from '../policy/policy.ts';
import { EXIT_INVALID, runReplay } from '../workload/index.ts';
import { loadOrReport, type Output } from './replay.ts';

export interface AuditCommandOptions {
  readonly policy: PolicyConfig;
  readonly json: boolean;
}

export async function auditCommand(file: string, options: AuditCommandOptions, io: Output): Promise<number> {
  const workload = await loadOrReport(file, io);
  if (workload === null) return EXIT_INVALID;
  const backend = new SimBackend({ policy: options.policy });
  let exitStatus: number;
  try {
    exitStatus = (await runReplay(workload, backend)).exitStatus;
  } catch (e) {
    io.err(`ksmkit audit: ${file}: ${(e as Error).message}`);
    return EXIT_INVALID;
  }
  const entries = backend.simulated.auditLog.entries();
  if (options.json) {
    for (const event of entries) io.out(JSON.stringify(event));
    return exitStatus;
  }
  io.out(`# ${workload.name} under ${describePolicy(options.policy)}`);
  if (options.policy.name !== 'dormant' && options.policy.name !== 'fortress') {
    io.out('# this policy keeps no audit log (dormant and fortress do)');
    return exitStatus;
  }
  for (const line of formatAuditLog(entries)) io.out(line);
  return exitStatus;
}

function policyOption(value: string): PolicyConfig {
  try {
    return parsePolicy(value);
  } catch (e) {
    throw new InvalidArgumentError((e as Error).message);
  }
}

export function registerAudit(program: Command, io: Output): void {
  program
    .command('audit')
    .description('replay a workload on the simulated host under a policy and print its sysfs audit log')
    .argument('<file>', 'workload file (YAML or JSON)')
    .requiredOption(
      '--policy <name>',
      'dormant or fortress (the policies that audit), or any other',
      policyOption,
    )
    .option('--json', 'one JSON object per audit event', false)
    .action(async (file, opts) => {
      process.exitCode = await auditCommand(file, opts, io);
    });
}
