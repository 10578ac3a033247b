/**
 * `ksmkit doctor` on a real host: why memory is or is not merged, as a list
 * of verdicts with evidence and fixes. The library entry point is
 * `runDoctor` (the live page calls it too); the CLI only formats its report.
 *
 * The run: open a measuring window over ksmd (host-reading.ts), read the
 * processes' smaps and ksm_stat, read their VM_MERGEABLE pages once, wait out
 * the window, read the pages again (volatile pages differ), close the window,
 * then judge the host, the VMAs and the pages. A process that goes away or
 * cannot be read is one line in `problems`; the report goes on.
 */
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  DEFAULT_TARGET_SCAN_SECONDS,
  formatSeconds,
  type HostAssessment,
  type HostReading,
  type HostSettings,
  hostFindings,
  type TunerInfo,
} from './host.ts';
import { HostWindow, listProcesses } from './host-reading.ts';
import {
  classifyPages,
  closeFrameSources,
  countVerdicts,
  type FrameSources,
  openFrameSources,
  PAGE_VERDICTS,
  type PageVerdict,
  readContents,
  readVmaPages,
  type VmaPages,
  withProcessFiles,
} from './pages.ts';
import {
  isMergeable,
  type ProcessView,
  processFindings,
  profitFindings,
  readProcessView,
  type VmaProfit,
  vmaSubject,
} from './process.ts';
import { type DoctorTarget, resolveTarget } from './targets.ts';
import { type Finding, hasFindings, PAGE_SIZE_BYTES, sortFindings } from './verdicts.ts';

export const DOCTOR_SCHEMA = 'ksmkit-doctor/1' as const;

export interface DoctorHost {
  readonly settings: HostSettings;
  readonly numaNodes: number;
  readonly pagesToVisit: number;
  readonly fullScanSeconds: number | null;
  readonly fullScanBasis: HostAssessment['fullScanBasis'];
  readonly suggestedPagesToScan: number | null;
  readonly targetScanSeconds: number;
  readonly ksmdCpuPercent: number | null;
  readonly windowSeconds: number;
  readonly thpSplitsInWindow: number | null;
  readonly tuners: readonly TunerInfo[];
}

/** The report: what `--json` prints and what `runDoctor` returns. Schema: json.ts. */
export interface DoctorReport {
  readonly schema: typeof DOCTOR_SCHEMA;
  /** `host`: this machine; `engine`: a workload run on the engine. */
  readonly source: 'host' | 'engine';
  readonly time: string;
  readonly kernel: string;
  /** Whether it ran with root's view (page frames, other users' processes). */
  readonly root: boolean;
  readonly target: {
    readonly description: string;
    readonly pids: readonly number[];
    readonly memoryKsm?: string;
  };
  readonly host: DoctorHost;
  /** Whether per page verdicts were made (root, and not --no-pages). */
  readonly pageAnalysis: boolean;
  /** Pages per page verdict over every process looked at. */
  readonly pageTotals: Readonly<Record<PageVerdict, number>>;
  /** Grouped by verdict (findings first), biggest memory first. */
  readonly findings: readonly Finding[];
  /** Processes that went away, pids that do not exist, permissions: one line each. */
  readonly problems: readonly string[];
  /** What could not be seen and why (non-root, a kernel without a file). */
  readonly notes: readonly string[];
  /** No finding at level `finding`. */
  readonly healthy: boolean;
}

export interface DoctorOptions {
  readonly target: DoctorTarget;
  /** Longest acceptable full scan, s (default 180: Meta's 2-3 min). */
  readonly targetScanSeconds?: number;
  /** How long ksmd is watched (CPU, pages scanned) and pages are left to change between the reads, ms. */
  readonly windowMs?: number;
  /** Per page verdicts (root only); default true. */
  readonly pages?: boolean;
  /** Above this many VM_MERGEABLE pages the per page verdicts are skipped (a note says so); default 8 Mi (32 GiB). */
  readonly maxPages?: number;
}

export const DEFAULT_WINDOW_MS = 1000;
/** Each page costs two 4 KiB reads and about 40 bytes of bookkeeping: 32 GiB is about 30 s and 320 MiB here. */
export const DEFAULT_MAX_PAGES = 8 * 1024 * 1024;

/** What the agreement test needs besides the report: every page analysed, with its verdict. */
export interface DoctorRun {
  readonly report: DoctorReport;
  readonly pages: readonly VmaPages[];
}

function isRoot(): boolean {
  return process.getuid?.() === 0;
}

function errorLine(pid: number, what: string, e: unknown): string {
  const code = (e as NodeJS.ErrnoException).code;
  if (code === 'ENOENT' || code === 'ESRCH') return `pid ${pid}: exited while it was read`;
  if (code === 'EACCES' || code === 'EPERM')
    return `pid ${pid}: permission denied reading ${what} (run as root)`;
  return `pid ${pid}: cannot read ${what}: ${(e as Error).message}`;
}

function emptyTotals(): Record<PageVerdict, number> {
  return Object.fromEntries(PAGE_VERDICTS.map((v) => [v, 0])) as Record<PageVerdict, number>;
}

const KSM = '/sys/kernel/mm/ksm';

/** The fix beside a page verdict, from the host's pacing. */
export function pageFix(verdict: PageVerdict, host: DoctorHost): string {
  switch (verdict) {
    case 'merged':
    case 'unique':
      return '';
    case 'twin-waiting':
    case 'zero-candidate': {
      if (host.settings.run !== 1) return `echo 1 > ${KSM}/run (ksmd is not running)`;
      const wait =
        host.fullScanSeconds === null
          ? ''
          : `merges within about 2 full scans (~${formatSeconds(2 * host.fullScanSeconds)})`;
      if (host.suggestedPagesToScan !== null)
        return `${wait}; sooner: echo ${host.suggestedPagesToScan} > ${KSM}/pages_to_scan`;
      if (verdict === 'zero-candidate' && host.settings.useZeroPages === 0)
        return `${wait}; echo 1 > ${KSM}/use_zero_pages maps them to the zero page instead`;
      return wait;
    }
    case 'volatile':
      return 'none: it changes faster than ksmd visits; if it stays so, leave the region unadvised';
    case 'chain-full':
      return `echo 2 > ${KSM}/run; echo ${2 * (host.settings.maxPageSharing ?? 256)} > ${KSM}/max_page_sharing; echo 1 > ${KSM}/run`;
  }
}

function pageEvidence(verdict: PageVerdict, n: number, present: number): string {
  const of = `${n} of ${present} present pages`;
  switch (verdict) {
    case 'merged':
      return `${of} are KSM pages (KPF_KSM)`;
    case 'twin-waiting':
      return `${of} have a twin in the set, not merged yet`;
    case 'zero-candidate':
      return `${of} are all zeroes, not merged yet`;
    case 'volatile':
      return `${of} changed between two reads`;
    case 'unique':
      return `${of} have no twin in the set`;
    case 'chain-full':
      return `${of} are left alone with every KSM copy of their content at max_page_sharing`;
  }
}

/** The VMA-level findings the page analysis adds (not present, and one row per page verdict). */
function pageFindings(p: ProcessView, v: VmaPages, host: DoctorHost): Finding[] {
  const out: Finding[] = [];
  const subject = vmaSubject(p, v.vma);
  const idle = v.notPresent + v.zeroMapped;
  if (idle > 0) {
    out.push({
      verdict: 'not-present',
      subject,
      pages: idle,
      bytes: idle * PAGE_SIZE_BYTES,
      evidence: `${v.notPresent} pages never touched, ${v.zeroMapped} mapping the shared zero page`,
      fix: '',
    });
  }
  for (const [verdict, n] of countVerdicts(v)) {
    out.push({
      verdict,
      subject,
      pages: n,
      bytes: n * PAGE_SIZE_BYTES,
      evidence: pageEvidence(verdict, n, v.count),
      fix: pageFix(verdict, host),
    });
  }
  return out;
}

function doctorHost(r: HostReading, a: HostAssessment, targetScanSeconds: number): DoctorHost {
  return {
    settings: r.settings,
    numaNodes: r.numaNodes,
    pagesToVisit: r.pagesToVisit,
    fullScanSeconds: a.fullScanSeconds,
    fullScanBasis: a.fullScanBasis,
    suggestedPagesToScan: a.suggestedPagesToScan,
    targetScanSeconds,
    ksmdCpuPercent: r.ksmdCpuPercent,
    windowSeconds: r.windowSeconds,
    thpSplitsInWindow: r.thpSplitsInWindow,
    tuners: r.tuners,
  };
}

/** Runs doctor and keeps every analysed page (for tests that check predictions). */
export async function runDoctorPages(options: DoctorOptions): Promise<DoctorRun> {
  const windowMs = options.windowMs ?? DEFAULT_WINDOW_MS;
  const targetScanSeconds = options.targetScanSeconds ?? DEFAULT_TARGET_SCAN_SECONDS;
  const root = isRoot();
  const window = HostWindow.open();
  const processes = listProcesses();
  const target = resolveTarget(options.target, processes, process.pid);
  const problems = [...target.problems];
  const notes: string[] = [];
  const commands = new Map(processes.map((p) => [p.pid, p.cmdline]));

  const views: ProcessView[] = [];
  let unreadable = 0;
  for (const pid of target.pids) {
    try {
      views.push(
        readProcessView(pid, commands.get(pid) ?? '?', readFileSync(`/proc/${pid}/smaps`, 'latin1')),
      );
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (options.target.kind !== 'pids' && (code === 'EACCES' || code === 'EPERM')) unreadable++;
      else if (options.target.kind !== 'pids' && code === 'ENOENT') continue;
      else problems.push(errorLine(pid, `/proc/${pid}/smaps`, e));
    }
  }
  if (unreadable > 0) {
    notes.push(
      root
        ? `${unreadable} processes could not be read even as root (another namespace, or Yama ptrace_scope)`
        : `${unreadable} processes of other users could not be read: run as root to see them`,
    );
  }

  const maxPages = options.maxPages ?? DEFAULT_MAX_PAGES;
  const toRead = views.reduce(
    (sum, p) => sum + p.vmas.filter(isMergeable).reduce((s, v) => s + v.anonymousKb / 4, 0),
    0,
  );
  const tooMany = toRead > maxPages;
  if ((options.pages ?? true) && tooMany) {
    notes.push(
      `per page verdicts skipped: ${toRead} VM_MERGEABLE pages to read twice is over --max-pages ${maxPages}; look at fewer processes (--pid, --match) or raise it`,
    );
  }
  const wantPages = (options.pages ?? true) && !tooMany;
  const frames: FrameSources | undefined = wantPages ? openFrameSources() : undefined;
  if (wantPages && frames === undefined) {
    notes.push(
      'per page verdicts need root (/proc/kpageflags, /proc/kpagecount, page frames in pagemap): not made',
    );
  }
  const records = new Map<number, VmaPages[]>();
  try {
    if (frames !== undefined) {
      for (const p of views) {
        try {
          const recs = withProcessFiles(p.pid, (pagemapFd, memFd) =>
            p.vmas.filter(isMergeable).map((v) => {
              const r = readVmaPages(p.pid, v, frames, pagemapFd);
              readContents(r, memFd, 'first');
              return r;
            }),
          );
          records.set(p.pid, recs);
        } catch (e) {
          problems.push(errorLine(p.pid, `/proc/${p.pid}/pagemap or mem`, e));
        }
      }
    }
    const left = windowMs - window.elapsedMs();
    if (left > 0) await sleep(left);
    if (frames !== undefined) {
      for (const [pid, recs] of records) {
        try {
          withProcessFiles(pid, (_pagemapFd, memFd) => {
            for (const r of recs) readContents(r, memFd, 'second');
          });
        } catch (e) {
          problems.push(errorLine(pid, `/proc/${pid}/mem`, e));
          records.delete(pid);
        }
      }
    }
    const reading = window.close(processes);
    const allPages = [...records.values()].flat();
    if (frames !== undefined) {
      classifyPages(allPages, frames, {
        maxPageSharing: reading.settings.maxPageSharing,
        useZeroPages: reading.settings.useZeroPages === 1,
      });
    }
    const pageTotals = emptyTotals();
    for (const r of allPages) for (const [v, n] of countVerdicts(r)) pageTotals[v] += n;
    const { findings: hostRows, assessment } = hostFindings(reading, {
      targetScanSeconds,
      ...(frames === undefined
        ? {}
        : {
            zeroPagesUnmerged: pageTotals['zero-candidate'],
            pagesExamined: allPages.reduce((s, r) => s + r.count, 0),
          }),
    });
    const host = doctorHost(reading, assessment, targetScanSeconds);
    const findings: Finding[] = [...hostRows];
    for (const p of views) {
      findings.push(...processFindings(p, reading.thpSplitsInWindow));
      const recs = records.get(p.pid);
      const profits: VmaProfit[] = [];
      for (const v of p.vmas.filter(isMergeable)) {
        const r = recs?.find((x) => x.vma === v);
        if (r !== undefined) findings.push(...pageFindings(p, r, host));
        const counts = r === undefined ? undefined : countVerdicts(r);
        profits.push({
          vma: v,
          rmapItems: r === undefined ? v.anonymousKb / 4 : r.count,
          mergingPages:
            counts === undefined
              ? v.ksmKb / 4
              : (counts.get('merged') ?? 0) +
                (counts.get('twin-waiting') ?? 0) +
                (counts.get('zero-candidate') ?? 0),
          predicted: counts !== undefined,
        });
      }
      findings.push(...profitFindings(p, profits));
    }
    if (target.memoryKsm !== undefined && target.memoryKsm !== 'yes') {
      notes.push(
        `${target.description}: MemoryKSM=${target.memoryKsm}; to register its processes: systemctl set-property ${options.target.kind === 'unit' ? options.target.name : 'UNIT'} MemoryKSM=yes, then restart it`,
      );
    }
    if (!root) {
      notes.push(
        `running as uid ${process.getuid?.()}: only this user's processes are visible, and the full-scan time counts only their pages`,
      );
    }
    if (options.target.kind !== 'all' && frames !== undefined)
      notes.push('twins are looked for among the processes looked at only (--all looks everywhere)');
    const sorted = sortFindings(findings);
    const report: DoctorReport = {
      schema: DOCTOR_SCHEMA,
      source: 'host',
      time: new Date().toISOString(),
      kernel: reading.kernel,
      root,
      target: {
        description: target.description,
        pids: views.map((p) => p.pid),
        ...(target.memoryKsm === undefined ? {} : { memoryKsm: target.memoryKsm }),
      },
      host,
      pageAnalysis: frames !== undefined,
      pageTotals,
      findings: sorted,
      problems,
      notes,
      healthy: !hasFindings(sorted),
    };
    return { report, pages: allPages };
  } finally {
    if (frames !== undefined) closeFrameSources(frames);
  }
}

/** The library entry point: doctor's typed report for this host. */
export async function runDoctor(options: DoctorOptions): Promise<DoctorReport> {
  return (await runDoctorPages(options)).report;
}

/** 0 healthy, 1 findings. (2, cannot run, is the caller's: a thrown TargetError or bad options.) */
export function exitStatusOf(report: DoctorReport): 0 | 1 {
  return report.healthy ? 0 : 1;
}
