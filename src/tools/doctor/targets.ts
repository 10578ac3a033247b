/**
 * Which processes `doctor` looks at: given pids, every process, those whose
 * command line matches a pattern, the processes of a cgroup (and its
 * descendants), or of a systemd unit (with its MemoryKSM= setting).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import type { ProcEntry } from './host-reading.ts';

export type DoctorTarget =
  | { readonly kind: 'all' }
  | { readonly kind: 'pids'; readonly pids: readonly number[] }
  | { readonly kind: 'match'; readonly pattern: string }
  | { readonly kind: 'cgroup'; readonly path: string }
  | { readonly kind: 'unit'; readonly name: string };

export const CGROUP_ROOT = '/sys/fs/cgroup';

export interface ResolvedTarget {
  readonly description: string;
  readonly pids: readonly number[];
  /** The unit's MemoryKSM= (systemd 254+), when a unit was asked for. */
  readonly memoryKsm?: string;
  /** One line per thing that went wrong but let the report go on (a pid that does not exist). */
  readonly problems: readonly string[];
}

/** Thrown when the target itself cannot be resolved (no such cgroup, no systemd): doctor cannot run. */
export class TargetError extends Error {}

function cgroupPids(dir: string): number[] {
  const pids: number[] = [];
  const walk = (d: string): void => {
    try {
      for (const line of readFileSync(join(d, 'cgroup.procs'), 'latin1').split('\n')) {
        if (/^\d+$/.test(line)) pids.push(Number(line));
      }
    } catch {
      // Removed meanwhile.
    }
    let entries: string[] = [];
    try {
      entries = readdirSync(d, { withFileTypes: true })
        .filter((e) => e.isDirectory())
        .map((e) => e.name);
    } catch {
      // Removed meanwhile.
    }
    for (const e of entries) walk(join(d, e));
  };
  walk(dir);
  return pids.sort((a, b) => a - b);
}

function cgroupDir(path: string): string {
  const dir = isAbsolute(path) && path.startsWith(CGROUP_ROOT) ? path : join(CGROUP_ROOT, path);
  let ok = false;
  try {
    ok = statSync(dir).isDirectory() && existsSync(join(dir, 'cgroup.procs'));
  } catch {
    ok = false;
  }
  if (!ok) throw new TargetError(`no cgroup ${path} (looked for ${join(dir, 'cgroup.procs')})`);
  return dir;
}

function systemdShow(unit: string): Map<string, string> {
  if (!existsSync('/run/systemd/system'))
    throw new TargetError(`--unit ${unit}: systemd is not running on this host (no /run/systemd/system)`);
  let text: string;
  try {
    text = execFileSync(
      'systemctl',
      ['show', '-p', 'ControlGroup', '-p', 'MemoryKSM', '-p', 'LoadState', unit],
      {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
  } catch (e) {
    throw new TargetError(`--unit ${unit}: systemctl show failed: ${(e as Error).message.split('\n')[0]}`);
  }
  const fields = new Map<string, string>();
  for (const line of text.split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) fields.set(line.slice(0, eq), line.slice(eq + 1));
  }
  if (fields.get('LoadState') === 'not-found') throw new TargetError(`--unit ${unit}: no such unit`);
  return fields;
}

export function resolveTarget(
  target: DoctorTarget,
  processes: readonly ProcEntry[],
  selfPid: number,
): ResolvedTarget {
  const user = processes.filter((p) => p.cmdline !== '' && p.pid !== selfPid);
  switch (target.kind) {
    case 'all':
      return { description: 'every process', pids: user.map((p) => p.pid), problems: [] };
    case 'pids': {
      const known = new Set(processes.map((p) => p.pid));
      const problems: string[] = [];
      const pids: number[] = [];
      for (const pid of target.pids) {
        if (!known.has(pid)) problems.push(`pid ${pid}: no such process`);
        else if (processes.find((p) => p.pid === pid)?.cmdline === '')
          problems.push(`pid ${pid}: a kernel thread (no memory of its own)`);
        else pids.push(pid);
      }
      return { description: `pid ${target.pids.join(', ')}`, pids, problems };
    }
    case 'match': {
      const re = new RegExp(target.pattern);
      const pids = user.filter((p) => re.test(p.cmdline)).map((p) => p.pid);
      return {
        description: `command lines matching /${target.pattern}/`,
        pids,
        problems: pids.length === 0 ? [`no process matches /${target.pattern}/`] : [],
      };
    }
    case 'cgroup': {
      const dir = cgroupDir(target.path);
      return {
        description: `cgroup ${dir}`,
        pids: cgroupPids(dir).filter((p) => p !== selfPid),
        problems: [],
      };
    }
    case 'unit': {
      const fields = systemdShow(target.name);
      const group = fields.get('ControlGroup') ?? '';
      const memoryKsm = fields.get('MemoryKSM');
      const pids = group === '' ? [] : cgroupPids(cgroupDir(group)).filter((p) => p !== selfPid);
      return {
        description: `systemd unit ${target.name}`,
        pids,
        ...(memoryKsm === undefined ? {} : { memoryKsm }),
        problems: group === '' ? [`unit ${target.name} has no control group (not running?)`] : [],
      };
    }
  }
}
