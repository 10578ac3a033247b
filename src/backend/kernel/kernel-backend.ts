/**
 * The real kernel behind the `Backend` interface: every workload process is a
 * real process (native/agent.c, driven over a unix socket), every counter is
 * read from /sys/kernel/mm/ksm and /proc/PID/ksm_stat, and ksmd is the
 * machine's own, stepped one full pass at a time (ksmd-stepper.ts).
 *
 * Decisions the simulator mirrors:
 * - `scan(N)` when ksmd's mm list is empty (no mm registered): ksmd does not
 *   scan (`ksmd_should_run()` is false), so `scan` stops there, full_scans
 *   grows by less than N (possibly 0), and that is not an error. The list can
 *   empty itself mid-scan (a pass drops the slot of an mm with no mergeable VMA
 *   left); the following passes then do not happen either. `scan` sets run=1
 *   first in every case, even for N = 0.
 * - The pacing files are the stepper's: between scans pages_to_scan is 0 (the
 *   brake) and sleep_millisecs an hour. A workload's write to either is really
 *   written, so the kernel parses it and reports its errno, then the stepper's
 *   value goes back. `counters()` reports, for those two files, the value the
 *   workload last set (Linux's defaults 100 and 20 after `start`), except
 *   pages_to_scan while the scan-time advisor owns it (then the kernel's).
 *   Every other file, run included, is reported as the kernel shows it.
 *
 * The host's settings are held by a `SysfsGuard` (one run per machine at a
 * time, settings restored on every exit path). Use `withKernelBackend`.
 */
import { type ChildProcess, spawn as spawnProcess } from 'node:child_process';
import { accessSync, existsSync, constants as fsConstants, readFileSync } from 'node:fs';
import { constants as osConstants, release } from 'node:os';
import { fileURLToPath } from 'node:url';
import { assertNever } from '../../host/assert.ts';
import { sysfsValue } from '../../surface/sysfs.ts';
import type {
  Backend,
  BackendInfo,
  CountersSnapshot,
  KsmCounters,
  MadviseAdvice,
  OpResult,
  ProcessCounters,
  ProcessIdentitySpec,
  RegionMapping,
  SysfsWriteResult,
} from '../backend.ts';
import { PAGE_SIZE_BYTES } from '../backend.ts';
import {
  AGENT_MAX_PAYLOAD_BYTES,
  AGENT_MMAP_HUGETLB,
  AGENT_MMAP_SHARED,
  AGENT_MMAP_THP,
  type AgentConnection,
  type AgentOp,
  type AgentReply,
  type AgentRequest,
  AgentServer,
} from './agent-protocol.ts';
import {
  errnoNameOf,
  KSM_DIR,
  listKsmFiles,
  readKsm,
  readKsmNumber,
  readProcessCounters,
  selectedWord,
  writeKsm,
} from './ksm-sysfs.ts';
import { KsmdStepper } from './ksmd-stepper.ts';
import { SysfsGuard, type SysfsGuardOptions, writeSettingsInOrder } from './sysfs-guard.ts';

/** Where scripts/build-agent.mjs puts the agent (the same from src/ and from dist/). */
export const DEFAULT_AGENT_PATH = fileURLToPath(
  new URL('../../../native/build/ksmkit-agent', import.meta.url),
);

/** Linux 6.18's settings, in an order the kernel accepts (see writeSettingsInOrder). */
export const LINUX_DEFAULTS: ReadonlyArray<readonly [string, string]> = [
  ['advisor_mode', 'none'],
  ['advisor_max_cpu', '70'],
  ['advisor_min_pages_to_scan', '500'],
  ['advisor_max_pages_to_scan', '30000'],
  ['advisor_target_scan_time', '200'],
  ['max_page_sharing', '256'],
  ['merge_across_nodes', '1'],
  ['pages_to_scan', '100'],
  ['sleep_millisecs', '20'],
  ['smart_scan', '1'],
  ['stable_node_chains_prune_millisecs', '2000'],
  ['use_zero_pages', '0'],
  ['run', '0'],
];

/** madvise(2) advice numbers (include/uapi/asm-generic/mman-common.h). */
const MADVICE: Record<MadviseAdvice, number> = {
  dontneed: 4,
  mergeable: 12,
  unmergeable: 13,
  hugepage: 14,
  nohugepage: 15,
};

export type KernelBackendAvailability =
  | { readonly ok: true }
  | { readonly ok: false; readonly reason: string };

/** Whether this machine can run the kernel backend, and if not, why (one line). */
export function kernelBackendAvailability(agentPath = agentPathFromEnv()): KernelBackendAvailability {
  if (process.platform !== 'linux')
    return { ok: false, reason: `the kernel backend needs Linux, not ${process.platform}` };
  if (process.getuid?.() !== 0)
    return { ok: false, reason: 'the kernel backend needs root (it writes /sys/kernel/mm/ksm)' };
  if (!existsSync(`${KSM_DIR}/run`))
    return { ok: false, reason: `${KSM_DIR} does not exist: kernel without CONFIG_KSM` };
  try {
    accessSync(`${KSM_DIR}/run`, fsConstants.W_OK);
  } catch {
    return { ok: false, reason: `${KSM_DIR}/run is not writable (read-only sysfs in a container?)` };
  }
  try {
    accessSync(agentPath, fsConstants.X_OK);
  } catch {
    return { ok: false, reason: `the agent ${agentPath} is not built: run node scripts/build-agent.mjs` };
  }
  return { ok: true };
}

function agentPathFromEnv(): string {
  const fromEnv = process.env.KSMKIT_AGENT;
  return fromEnv !== undefined && fromEnv !== '' ? fromEnv : DEFAULT_AGENT_PATH;
}

export interface KernelBackendOptions extends SysfsGuardOptions {
  readonly agentPath?: string;
  /** Longest one ksmd pass may take; default 120 s. */
  readonly passTimeoutMs?: number;
  /** Longest an agent may take to connect; default 10 s. */
  readonly connectTimeoutMs?: number;
}

interface KernelRegion {
  readonly address: number;
  readonly pageCount: number;
}

interface KernelProcess {
  readonly name: string;
  readonly connection: AgentConnection;
  readonly regions: Map<string, KernelRegion>;
}

const OK: OpResult = { ok: true };

/** Workload processes here are agents run by ksmkit as root: another identity is the simulated host's. */
const SIMULATOR_ONLY =
  'the kernel backend runs every workload process as root and writes sysfs itself: a process uid, cgroup, label or cap_sys_admin, and a set step with `as:`, are for the simulated host (ksmkit audit, simulate --policy)';

const ERRNO_BY_NUMBER: ReadonlyMap<number, string> = new Map(
  Object.entries(osConstants.errno).map(([name, n]) => [n, name] as const),
);

/** An agent's errno as the interface's refusal; an errno outside the closed set is a bug, not a refusal. */
function resultOf(op: string, process: string, reply: AgentReply): OpResult {
  if (reply.errno === 0) return OK;
  const code = ERRNO_BY_NUMBER.get(reply.errno) ?? `errno ${reply.errno}`;
  const errno = errnoNameOf(code);
  if (errno === undefined) throw new Error(`${op} in process "${process}" failed with ${code}`);
  return { ok: false, errno };
}

export class KernelBackend implements Backend {
  readonly name = 'kernel' as const;
  private guard: SysfsGuard | undefined;
  private server: AgentServer | undefined;
  private stepper: KsmdStepper | undefined;
  private readonly processes = new Map<string, KernelProcess>();
  /** The first agent of each spawn, our child: killed and reaped by pid. */
  private readonly children = new Map<number, ChildProcess>();
  private readonly stderrTail = new Map<number, string>();
  private ksmFiles: ReadonlyArray<{ readonly name: string; readonly writable: boolean }> = [];
  private scannedBase = 0;
  private skippedBase = 0;
  private logicalPagesToScan = 100;
  private logicalSleepMs = 20;
  private closed = false;
  private readonly agentPath: string;

  constructor(private readonly options: KernelBackendOptions = {}) {
    this.agentPath = options.agentPath ?? agentPathFromEnv();
  }

  info(): BackendInfo {
    return { backend: 'kernel', kernelVersion: release() };
  }

  /** The real pid of a workload process (for tests and tools that look at /proc). */
  pidOf(process: string): number {
    return this.proc(process).connection.pid;
  }

  async start(settings: ReadonlyArray<readonly [string, string]>): Promise<void> {
    if (this.closed) throw new Error('kernel backend: start() after close()');
    const availability = kernelBackendAvailability(this.agentPath);
    if (!availability.ok) throw new Error(`kernel backend unavailable: ${availability.reason}`);
    if (this.guard === undefined) {
      this.guard = await SysfsGuard.acquire(this.options);
      // Synchronous, so that it also runs on the signal and exit paths.
      this.guard.onBeforeRestore(() => this.endAllProcessesNow());
    }
    if (this.server === undefined) this.server = await AgentServer.listen((pid) => this.deathNote(pid));
    await this.endAllProcesses();
    this.ksmFiles = listKsmFiles();
    // Clean state: run=2 unmerges everything and restarts full_scans at 0, then
    // Linux's defaults (writeSettingsInOrder writes run=2 first and run=0 last).
    const defaults = new Map(LINUX_DEFAULTS.filter(([name]) => this.hasFile(name)));
    const failures = writeSettingsInOrder(defaults);
    if (failures.length > 0)
      throw new Error(`kernel backend: cannot reset ${KSM_DIR}: ${failures.join('; ')}`);
    if (readKsm('run') !== '0' || readKsmNumber('full_scans') !== 0) {
      throw new Error(
        `kernel backend: run=2 then run=0 left run ${readKsm('run')}, full_scans ${readKsm('full_scans')}`,
      );
    }
    this.logicalPagesToScan = 100;
    this.logicalSleepMs = 20;
    this.stepper ??= new KsmdStepper(
      this.options.passTimeoutMs === undefined ? {} : { passTimeoutMs: this.options.passTimeoutMs },
    );
    this.stepper.hold();
    for (const [name, value] of settings) {
      const r = await this.setSysfs(name, value);
      if (!r.ok) throw new Error(`${r.errno}: the kernel refused ${name}=${JSON.stringify(value)} at start`);
    }
    this.stepper.noteFullScans();
    this.scannedBase = readKsmNumber('pages_scanned');
    this.skippedBase = readKsmNumber('pages_skipped');
  }

  async spawn(
    process: string,
    options: { readonly memoryMerge: boolean; readonly identity?: ProcessIdentitySpec },
  ): Promise<OpResult> {
    if (options.identity !== undefined && Object.keys(options.identity).length > 0)
      throw new Error(SIMULATOR_ONLY);
    const server = this.started().server;
    if (this.processes.has(process)) throw new Error(`kernel backend: process "${process}" already exists`);
    const hello = server.expect(process, this.options.connectTimeoutMs ?? 10_000);
    const child = spawnProcess(this.agentPath, [server.socketPath, process], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { KSMKIT_PARENT_PID: String(globalThis.process.pid) },
    });
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (text: string) => {
      if (child.pid !== undefined)
        this.stderrTail.set(child.pid, `${this.stderrTail.get(child.pid) ?? ''}${text}`.slice(-2000));
    });
    child.once('exit', (code, signal) => {
      server.cancel(
        process,
        new Error(
          `agent "${process}" exited (${signal ?? code}) before connecting${this.deathNote(child.pid ?? -1)}`,
        ),
      );
    });
    child.once('error', (e) =>
      server.cancel(process, new Error(`cannot start ${this.agentPath}: ${e.message}`)),
    );
    const connection = await hello;
    if (connection.pid !== child.pid)
      throw new Error(`agent "${process}" says it is pid ${connection.pid}, not ${child.pid}`);
    this.children.set(connection.pid, child);
    this.processes.set(process, { name: process, connection, regions: new Map() });
    return options.memoryMerge ? this.prctl(process, true) : OK;
  }

  async mmap(process: string, region: RegionMapping): Promise<OpResult> {
    const p = this.proc(process);
    if (p.regions.has(region.name))
      throw new Error(`kernel backend: "${process}" already has region "${region.name}"`);
    if (!Number.isSafeInteger(region.pageCount) || region.pageCount < 1) {
      throw new Error(`kernel backend: region "${region.name}" has a bad page count ${region.pageCount}`);
    }
    if (!Number.isSafeInteger(region.address) || region.address % PAGE_SIZE_BYTES !== 0) {
      throw new Error(`kernel backend: region "${region.name}" has a bad address ${region.address}`);
    }
    const r = await this.call(p, 'mmap', {
      address: region.address,
      lengthBytes: region.pageCount * PAGE_SIZE_BYTES,
      arg:
        (region.shared ? AGENT_MMAP_SHARED : 0) |
        (region.thp ? AGENT_MMAP_THP : 0) |
        (region.hugetlb === true ? AGENT_MMAP_HUGETLB : 0),
    });
    if (r.ok) p.regions.set(region.name, { address: region.address, pageCount: region.pageCount });
    return r;
  }

  async munmap(process: string, region: string): Promise<OpResult> {
    const p = this.proc(process);
    const reg = this.region(p, region);
    const r = await this.call(p, 'munmap', {
      address: reg.address,
      lengthBytes: reg.pageCount * PAGE_SIZE_BYTES,
    });
    if (r.ok) p.regions.delete(region);
    return r;
  }

  async write(process: string, region: string, pageIndex: number, bytes: Uint8Array): Promise<OpResult> {
    const p = this.proc(process);
    const reg = this.region(p, region);
    if (bytes.length % PAGE_SIZE_BYTES !== 0)
      throw new Error(`write: ${bytes.length} bytes is not whole pages`);
    this.checkRange(reg, region, pageIndex, bytes.length / PAGE_SIZE_BYTES);
    // In chunks: the agent's buffers are static, sized for one message.
    for (let offset = 0; offset < bytes.length; offset += AGENT_MAX_PAYLOAD_BYTES) {
      const chunk = bytes.subarray(offset, offset + AGENT_MAX_PAYLOAD_BYTES);
      const r = await this.call(p, 'write', {
        address: reg.address + pageIndex * PAGE_SIZE_BYTES + offset,
        lengthBytes: chunk.length,
        payload: chunk,
      });
      if (!r.ok) return r;
    }
    return OK;
  }

  /**
   * Fills pages without sending their bytes: page k of the range becomes the
   * 64-bit value (hi, lo + k·loStep mod 2^32), big-endian, repeated 512 times
   * (the form `valuePage` makes). For gigabytes of workload (the benchmark).
   */
  async fillValues(
    process: string,
    region: string,
    range: { readonly pageIndex: number; readonly pageCount: number },
    value: { readonly hi: number; readonly lo: number; readonly loStep: number },
  ): Promise<OpResult> {
    const p = this.proc(process);
    const reg = this.region(p, region);
    this.checkRange(reg, region, range.pageIndex, range.pageCount);
    const payload = Buffer.alloc(12);
    payload.writeUInt32LE(value.hi >>> 0, 0);
    payload.writeUInt32LE(value.lo >>> 0, 4);
    payload.writeUInt32LE(value.loStep >>> 0, 8);
    return this.call(p, 'fill', {
      address: reg.address + range.pageIndex * PAGE_SIZE_BYTES,
      lengthBytes: range.pageCount * PAGE_SIZE_BYTES,
      payload,
    });
  }

  async read(process: string, region: string, pageIndex: number, pageCount: number): Promise<Uint8Array> {
    const p = this.proc(process);
    const reg = this.region(p, region);
    this.checkRange(reg, region, pageIndex, pageCount);
    const out = new Uint8Array(pageCount * PAGE_SIZE_BYTES);
    for (let offset = 0; offset < out.length; offset += AGENT_MAX_PAYLOAD_BYTES) {
      const lengthBytes = Math.min(AGENT_MAX_PAYLOAD_BYTES, out.length - offset);
      const reply = await p.connection.request('read', {
        address: reg.address + pageIndex * PAGE_SIZE_BYTES + offset,
        lengthBytes,
      });
      const r = resultOf('read', process, reply);
      if (!r.ok) throw new Error(`read of "${process}"/"${region}" failed: ${r.errno}`);
      out.set(reply.payload, offset);
    }
    return out;
  }

  async madvise(process: string, region: string, advice: MadviseAdvice): Promise<OpResult> {
    const p = this.proc(process);
    const reg = this.region(p, region);
    return this.call(p, 'madvise', {
      address: reg.address,
      lengthBytes: reg.pageCount * PAGE_SIZE_BYTES,
      arg: adviceNumber(advice),
    });
  }

  async mlock(process: string, region: string): Promise<OpResult> {
    const p = this.proc(process);
    const reg = this.region(p, region);
    return this.call(p, 'mlock', { address: reg.address, lengthBytes: reg.pageCount * PAGE_SIZE_BYTES });
  }

  async prctl(process: string, memoryMerge: boolean): Promise<OpResult> {
    return this.call(this.proc(process), 'prctl', { arg: memoryMerge ? 1 : 0 });
  }

  async fork(process: string, child: string): Promise<OpResult> {
    const p = this.proc(process);
    const server = this.started().server;
    if (this.processes.has(child)) throw new Error(`kernel backend: process "${child}" already exists`);
    const hello = server.expect(child, this.options.connectTimeoutMs ?? 10_000);
    const reply = await p.connection.request('fork', { payload: Buffer.from(child, 'utf8') });
    const r = resultOf('fork', process, reply);
    if (!r.ok) {
      server.cancel(child, new Error('fork failed'));
      await hello.catch(() => undefined);
      return r;
    }
    const connection = await hello;
    if (connection.pid !== reply.value) {
      throw new Error(
        `fork: child "${child}" says it is pid ${connection.pid}, the parent says ${reply.value}`,
      );
    }
    this.processes.set(child, { name: child, connection, regions: new Map(p.regions) });
    return OK;
  }

  /**
   * The agent replies, then exits; its end of the socket closes only after
   * do_exit() has run exit_mm() (exit_files() comes later), so when `exit`
   * returns the mm is gone and ksm_exit() has run, as in the simulator.
   */
  async exit(process: string): Promise<OpResult> {
    const p = this.proc(process);
    const r = await this.call(p, 'exit', {});
    await p.connection.closed;
    this.processes.delete(process);
    this.children.delete(p.connection.pid);
    return r;
  }

  async setSysfs(
    name: string,
    value: string,
    options: { readonly as?: string } = {},
  ): Promise<SysfsWriteResult> {
    if (options.as !== undefined) throw new Error(SIMULATOR_ONLY);
    const stepper = this.started().stepper;
    if (!this.hasFile(name)) throw new Error(`setSysfs: ${KSM_DIR} has no file "${name}"`);
    const modeBefore = selectedWord(readKsm('advisor_mode'));
    const r = writeKsm(name, value);
    if (r.ok) {
      // The kernel parsed the value; what it stored is what the workload set.
      if (name === 'pages_to_scan') this.logicalPagesToScan = readKsmNumber('pages_to_scan');
      if (name === 'sleep_millisecs') this.logicalSleepMs = readKsmNumber('sleep_millisecs');
      // Switching the advisor mode resets pages_to_scan (to 100, or advisor_min_pages_to_scan).
      if (name === 'advisor_mode' && selectedWord(readKsm('advisor_mode')) !== modeBefore) {
        this.logicalPagesToScan = readKsmNumber('pages_to_scan');
      }
    }
    // The stepper's pacing goes back in either case; a refused write changed nothing, but costs nothing.
    stepper.hold();
    // run=2 resets full_scans: the stepper must not take that for a pass behind its back.
    stepper.noteFullScans();
    return r;
  }

  async scan(passes: number): Promise<void> {
    await this.started().stepper.scan(passes);
  }

  async counters(): Promise<CountersSnapshot> {
    this.started();
    const ksm: Record<string, number | string> = {};
    for (const { name } of this.ksmFiles) {
      ksm[name] = sysfsValue(name, readKsm(name));
    }
    ksm.pages_scanned = (ksm.pages_scanned as number) - this.scannedBase;
    ksm.pages_skipped = (ksm.pages_skipped as number) - this.skippedBase;
    ksm.sleep_millisecs = this.logicalSleepMs;
    if (ksm.advisor_mode === 'none') ksm.pages_to_scan = this.logicalPagesToScan;
    const processes: Record<string, ProcessCounters> = {};
    for (const [name, p] of this.processes) {
      const c = readProcessCounters(p.connection.pid);
      if (c === undefined)
        throw new Error(
          `process "${name}" (pid ${p.connection.pid}) is gone${this.deathNote(p.connection.pid)}`,
        );
      processes[name] = c;
    }
    return { ksm: ksm as KsmCounters, processes };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    try {
      await this.endAllProcesses();
      await this.server?.close();
    } finally {
      this.server = undefined;
      this.guard?.release();
    }
  }

  /**
   * The guard's signal and exit paths, where nothing asynchronous gets to run:
   * SIGKILL to every agent, then wait until each has left exit_mm(). Only then
   * can the settings go back: run=2 does not unmerge an exiting mm's pages, and
   * while one of them still maps a KSM page its stable node cannot be freed, so
   * max_page_sharing and merge_across_nodes refuse a change (EBUSY).
   */
  private endAllProcessesNow(): void {
    this.killAgentsNow();
    waitUntilGone(
      [...this.processes.values()].map((p) => p.connection.pid),
      AGENT_EXIT_TIMEOUT_MS,
    );
    this.server?.removeSocketDirectory();
  }

  private killAgentsNow(): void {
    for (const p of this.processes.values()) {
      try {
        globalThis.process.kill(p.connection.pid, 'SIGKILL');
      } catch {
        // Already gone.
      }
    }
  }

  /** Kills every agent and waits until each connection is closed, i.e. each mm is torn down. */
  private async endAllProcesses(): Promise<void> {
    const all = [...this.processes.values()];
    this.killAgentsNow();
    await Promise.all(all.map((p) => p.connection.closed));
    await Promise.all(
      [...this.children.values()].map(
        (c) =>
          new Promise<void>((resolve) =>
            c.exitCode !== null || c.signalCode !== null ? resolve() : c.once('exit', () => resolve()),
          ),
      ),
    );
    this.processes.clear();
    this.children.clear();
  }

  private async call(p: KernelProcess, op: AgentOp, request: AgentRequest): Promise<OpResult> {
    return resultOf(op, p.name, await p.connection.request(op, request));
  }

  private started(): { server: AgentServer; stepper: KsmdStepper } {
    if (this.closed) throw new Error('kernel backend: used after close()');
    if (this.server === undefined || this.stepper === undefined)
      throw new Error('kernel backend: call start() first');
    return { server: this.server, stepper: this.stepper };
  }

  private hasFile(name: string): boolean {
    return this.ksmFiles.some((f) => f.name === name);
  }

  private proc(name: string): KernelProcess {
    const p = this.processes.get(name);
    if (p === undefined) throw new Error(`kernel backend: no process named ${JSON.stringify(name)}`);
    return p;
  }

  private region(p: KernelProcess, name: string): KernelRegion {
    const r = p.regions.get(name);
    if (r === undefined)
      throw new Error(`kernel backend: "${p.name}" has no region named ${JSON.stringify(name)}`);
    return r;
  }

  private checkRange(reg: KernelRegion, name: string, pageIndex: number, pageCount: number): void {
    if (
      !Number.isSafeInteger(pageIndex) ||
      !Number.isSafeInteger(pageCount) ||
      pageIndex < 0 ||
      pageCount < 0 ||
      pageIndex + pageCount > reg.pageCount
    ) {
      throw new Error(
        `kernel backend: pages [${pageIndex}, ${pageIndex + pageCount}) are outside region "${name}" of ${reg.pageCount} pages`,
      );
    }
  }

  private deathNote(pid: number): string {
    const tail = this.stderrTail.get(pid)?.trim();
    return tail === undefined || tail === '' ? '' : `; its stderr: ${tail}`;
  }
}

const AGENT_EXIT_TIMEOUT_MS = 3000;

/** Sleeps the whole thread (no event loop needed): for the exit and signal paths only. */
function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** True once the process is gone or a zombie (a zombie has already run exit_mm()). */
function hasExited(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    return stat.charAt(stat.lastIndexOf(')') + 2) === 'Z';
  } catch {
    return true;
  }
}

function waitUntilGone(pids: readonly number[], timeoutMs: number): void {
  const deadline = Date.now() + timeoutMs;
  while (pids.some((pid) => !hasExited(pid)) && Date.now() < deadline) sleepSync(5);
}

function adviceNumber(advice: MadviseAdvice): number {
  switch (advice) {
    case 'mergeable':
    case 'unmergeable':
    case 'hugepage':
    case 'nohugepage':
    case 'dontneed':
      return MADVICE[advice];
    default:
      return assertNever(advice, 'madvise advice');
  }
}

/**
 * Runs `fn` with a started kernel backend and closes it on every path (return,
 * throw; signals and exit are the guard's).
 */
export async function withKernelBackend<T>(
  fn: (backend: KernelBackend) => Promise<T>,
  options: KernelBackendOptions & { readonly settings?: ReadonlyArray<readonly [string, string]> } = {},
): Promise<T> {
  const backend = new KernelBackend(options);
  try {
    await backend.start(options.settings ?? []);
    return await fn(backend);
  } finally {
    await backend.close();
  }
}
