/**
 * `ksmkit estimate`: what KSM would save on a set of processes and dump files,
 * without enabling it. Reads every page KSM could scan, counts contents, and
 * applies the kernel's rules (max_page_sharing chains, use_zero_pages, rmap
 * item cost, the two-pass merge and ksmd's batching).
 */
import { basename } from 'node:path';
import { offeredAlgorithms } from '../../backend/kernel/zram-guard.ts';
import { ContentCompression, DEFAULT_COMPRESSIBILITY } from '../../simulate/compression.ts';
import type { ContentSpace } from '../../simulate/content.ts';
import { loadCalibration } from '../../simulate/cost.ts';
import type { Scenario } from '../../simulate/scenario.ts';
import { fileReadProblem } from '../../workload/parse.ts';
import { type CompareReport, compareCompression } from '../compress/compare.ts';
import { compressorUnavailable } from '../compress/native.ts';
import type { ContentTable } from './content-table.ts';
import { type DumpFormat, type DumpScan, layoutDump, scanDump } from './dump-source.ts';
import { estimateTime, PAGE_BYTES, type TimeEstimate } from './model.ts';
import { PageCounter } from './page-counter.ts';
import {
  comm,
  commandLine,
  KPageFlags,
  listPids,
  type ProcessPlan,
  type ProcessScan,
  planProcess,
  scanProcess,
  type VmaMode,
} from './proc-source.ts';
import { NO_PROGRESS, type Progress, ProgressLine } from './progress.ts';
import { DEFAULT_READ_BYTES, defaultThreads, InlineReader, openReader } from './reader.ts';
import { type GuestScan, scanScenario, scenarioBytes } from './scenario-source.ts';
import { type ResolvedSettings, resolveSettings, type SettingOverrides } from './settings.ts';
import { type PairSummary, type SourceSummary, type Summary, summarize } from './summary.ts';

export interface EstimateRequest {
  readonly pids?: readonly number[];
  readonly all?: boolean;
  /** Processes whose command line (or comm) matches. */
  readonly match?: RegExp;
  readonly files?: readonly string[];
  /** An engine scenario: its guests' pages as they start, one source per guest. */
  readonly scenario?: Scenario;
  /** The scenario's value space, when several estimates must agree on it (a synthetic fleet, one host each). */
  readonly scenarioContent?: ContentSpace;
  readonly vmaMode?: VmaMode;
  readonly format?: DumpFormat;
  /** Raw images: bytes to skip at the start. */
  readonly offset?: number;
  readonly dumpZeroPages?: 'present' | 'absent';
  readonly settings?: SettingOverrides;
  /** true: a progress line on stderr; or a Progress of the caller's. */
  readonly progress?: boolean | Progress;
  /** Bytes per read of /proc/PID/mem or a dump file; default 4 MiB. */
  readonly readBytes?: number;
  /** Reader threads (0: read in this thread); default one per core for large inputs. */
  readonly threads?: number;
  /** Settings directory (tests); default /sys/kernel/mm/ksm. */
  readonly sysfsDir?: string;
  /** Also compress every page as zram and zswap would (estimate --compare). */
  readonly compare?: boolean;
  /** Every page counted, with its page frame (−1 when unknown): the zram test writes exactly these to /dev/zram0. Reads in this thread. */
  readonly onPage?: (page: Uint8Array, frame: number) => void;
  /** compare: the calibration giving ksmd's and the COW break's cost (default: ksmkit calibrate's file, else shipped). */
  readonly calibrationPath?: string;
  /** Called once every page is counted, before the summary (`ksmkit fingerprint` writes the table out). */
  readonly onCounted?: (counted: Counted) => void;
}

/** Every page counted, per content and source, as the summary gets it. */
export interface Counted {
  readonly table: ContentTable;
  /** The content id of the zero page, or −1. */
  readonly zeroContent: number;
  /** Whether a page frame is already a KSM page (false when frames are unknown). */
  readonly isKsmFrame: (frame: number) => boolean;
}

export type SourceReport =
  | {
      readonly kind: 'process';
      readonly label: string;
      readonly scan: ProcessScan;
      readonly summary: SourceSummary;
    }
  | {
      readonly kind: 'dump';
      readonly label: string;
      readonly scan: DumpScan;
      readonly summary: SourceSummary;
    }
  | {
      readonly kind: 'guest';
      readonly label: string;
      readonly scan: GuestScan;
      readonly summary: SourceSummary;
    };

export interface UnreadableSource {
  readonly what: string;
  readonly error: string;
  /** Named by the user (--pid, a file): a failure the command reports with its exit code. */
  readonly explicit: boolean;
}

export interface EstimateReport {
  readonly settings: ResolvedSettings;
  readonly sources: readonly SourceReport[];
  readonly unreadable: readonly UnreadableSource[];
  readonly total: Omit<Summary, 'sources' | 'pairs'>;
  readonly pairs: readonly PairSummary[];
  readonly time: TimeEstimate;
  readonly speed: {
    readonly bytes: number;
    readonly seconds: number;
    readonly gbPerSecond: number;
    /** Reader threads used (0: the main thread read). */
    readonly threads: number;
  };
  /** Page frame numbers were visible (root): fork-shared pages and the zero page are recognised exactly. */
  readonly framesKnown: boolean;
  /** estimate --compare: the same pages under zram, zswap, and KSM then zram. */
  readonly compare?: CompareReport;
  readonly notes: readonly string[];
}

function errorText(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  if (err.code === 'EACCES' || err.code === 'EPERM')
    return `${err.code}: permission denied${process.getuid?.() === 0 ? '' : ' (run as root)'}`;
  if (err.code === 'ENOENT' || err.code === 'ESRCH') return 'no such process (it exited)';
  return err.message ?? String(e);
}

/** Why a dump file cannot be read, without repeating its path (the caller names it). */
export function dumpErrorText(path: string, e: unknown): string {
  if ((e as NodeJS.ErrnoException).code === 'EISDIR') return 'is a directory, not a dump file';
  const message = fileReadProblem(e);
  return message.startsWith(`${path}: `) ? message.slice(path.length + 2) : message;
}

/**
 * The dump files' problems found before anything is read (missing, a folder,
 * empty, not the format asked for): one line each, `FILE: what is wrong`.
 */
export function checkDumpFiles(files: readonly string[], format: DumpFormat = 'auto', offset = 0): string[] {
  const problems: string[] = [];
  for (const path of files) {
    try {
      const layout = layoutDump(path, format, offset);
      if (layout.segments.length === 0)
        problems.push(
          `${path}: ${layout.fileBytes === 0 ? 'is empty' : `holds no whole page (${layout.fileBytes} bytes${offset > 0 ? ` after --offset ${offset}` : ''})`}; a dump file holds pages of ${PAGE_BYTES} bytes`,
        );
    } catch (e) {
      problems.push(`${path}: ${dumpErrorText(path, e)}`);
    }
  }
  return problems;
}

/** The processes an estimate covers, in pid order, without this process. */
export function selectProcesses(request: EstimateRequest): number[] {
  const chosen = new Set<number>(request.pids ?? []);
  if (request.all === true || request.match !== undefined) {
    for (const pid of listPids()) {
      if (pid === process.pid) continue;
      if (request.all !== true) {
        const re = request.match!;
        if (!re.test(commandLine(pid)) && !re.test(comm(pid))) continue;
      }
      chosen.add(pid);
    }
  }
  return [...chosen].sort((a, b) => a - b);
}

export async function runEstimate(request: EstimateRequest): Promise<EstimateReport> {
  const settings = resolveSettings(request.settings ?? {}, request.sysfsDir);
  const mode = request.vmaMode ?? 'auto';
  const explicitPids = new Set(request.pids ?? []);
  const files = request.files ?? [];
  const notes: string[] = [];
  const unreadable: UnreadableSource[] = [];

  const plans: ProcessPlan[] = [];
  for (const pid of selectProcesses(request)) {
    try {
      const plan = planProcess(pid, mode);
      // Kernel threads have no address space (an empty smaps): nothing to say unless asked for by pid.
      if (plan.scan.length === 0 && plan.skipped.length === 0) {
        if (explicitPids.has(pid))
          unreadable.push({
            what: `pid ${pid} (${plan.command})`,
            error: 'no user memory (kernel thread)',
            explicit: true,
          });
        continue;
      }
      plans.push(plan);
    } catch (e) {
      unreadable.push({
        what: `pid ${pid} (${commandLine(pid)})`,
        error: errorText(e),
        explicit: explicitPids.has(pid),
      });
    }
  }
  // Dump layouts before reading anything: a bad file fails before minutes of reading.
  const layouts = [];
  for (const path of files) {
    try {
      layouts.push(layoutDump(path, request.format ?? 'auto', request.offset ?? 0));
    } catch (e) {
      unreadable.push({ what: path, error: dumpErrorText(path, e), explicit: true });
    }
  }
  const expectedBytes =
    (request.scenario === undefined ? 0 : scenarioBytes(request.scenario)) +
    plans.reduce((sum, p) => sum + p.expectedBytes, 0) +
    layouts.reduce((sum, l) => sum + l.segments.reduce((a, s) => a + s.bytes, 0), 0);

  let progress: Progress = NO_PROGRESS;
  if (request.progress === true) {
    progress = new ProgressLine({ total: expectedBytes, tty: process.stderr.isTTY === true });
  } else if (request.progress !== undefined && request.progress !== false) {
    progress = request.progress;
  }

  const compare = request.compare === true;
  if (compare) {
    const why = compressorUnavailable();
    if (why !== undefined) throw new Error(`estimate --compare: the compressors are unavailable: ${why}`);
  }
  // Read before minutes of work: a bad calibration file fails now.
  const calibration = compare ? loadCalibration(request.calibrationPath) : undefined;
  const counter = new PageCounter(compare);
  const kpageflags = KPageFlags.open();
  const framesKnown = kpageflags !== undefined;
  if (!framesKnown && plans.length > 0) {
    notes.push(
      'page frame numbers are not visible (not root): pages shared after fork count as separate copies, and ' +
        'zero-filled pages mapped more than once count as the shared zero page',
    );
  }
  const readBytes = request.readBytes ?? DEFAULT_READ_BYTES;
  if (readBytes % PAGE_BYTES !== 0 || readBytes <= 0)
    throw new Error(`read size ${readBytes} is not a positive multiple of ${PAGE_BYTES}`);
  const threads = request.onPage !== undefined ? 0 : (request.threads ?? defaultThreads(expectedBytes));
  const scans: Array<
    | { kind: 'process'; scan: ProcessScan }
    | { kind: 'dump'; scan: DumpScan }
    | { kind: 'guest'; scan: GuestScan }
  > = [];
  let bytes = 0;
  const reader = await openReader(readBytes / PAGE_BYTES, threads, compare);
  // Read and hash time only: starting the reader threads is not reading.
  const started = performance.now();
  const usedThreads = reader instanceof InlineReader ? 0 : threads;
  try {
    for (const plan of plans) {
      counter.beginSource(scans.length);
      progress.stage(`pid ${plan.pid}`);
      try {
        const scan = scanProcess(plan, {
          counter,
          reader,
          kpageflags,
          progress,
          ...(request.onPage !== undefined ? { onPage: request.onPage } : {}),
        });
        scans.push({ kind: 'process', scan });
        bytes += scan.bytesRead;
      } catch (e) {
        // scanProcess throws only before it counts a page (opening pagemap and mem).
        unreadable.push({
          what: `pid ${plan.pid} (${plan.command})`,
          error: errorText(e),
          explicit: explicitPids.has(plan.pid),
        });
      }
    }
    for (const layout of layouts) {
      counter.beginSource(scans.length);
      progress.stage(basename(layout.path));
      const scan = scanDump(layout, {
        counter,
        reader,
        progress,
        zeroPages: request.dumpZeroPages ?? 'present',
        ...(request.onPage !== undefined ? { onPage: request.onPage } : {}),
      });
      scans.push({ kind: 'dump', scan });
      bytes += scan.bytesRead;
    }
    if (request.scenario !== undefined) {
      const guests = scanScenario(request.scenario, {
        counter,
        progress,
        firstSource: scans.length,
        ...(request.scenarioContent !== undefined ? { content: request.scenarioContent } : {}),
        ...(compare
          ? { compression: new ContentCompression(request.scenario.compression ?? DEFAULT_COMPRESSIBILITY) }
          : {}),
      });
      for (const scan of guests) {
        scans.push({ kind: 'guest', scan });
        bytes += scan.examinedPages * PAGE_BYTES;
      }
    }
  } finally {
    reader.close();
    progress.done();
  }
  const seconds = (performance.now() - started) / 1000;

  const isKsmFrame = (frame: number): boolean => kpageflags?.isKsm(frame) ?? false;
  request.onCounted?.({ table: counter.table, zeroContent: counter.zeroContent, isKsmFrame });
  const freedMappings = new Float64Array(counter.table.contentCount);
  const summary = summarize({
    onContent: (id, freed) => {
      freedMappings[id] = freed;
    },
    table: counter.table,
    sourceCount: scans.length,
    zeroContent: counter.zeroContent,
    maxPageSharing: settings.maxPageSharing,
    useZeroPages: settings.useZeroPages,
    isKsmFrame,
  });
  kpageflags?.close();

  const sources: SourceReport[] = scans.map((s, i) => {
    const sourceSummary = summary.sources[i]!;
    if (s.kind === 'process') {
      return {
        kind: 'process',
        label: `${s.scan.pid} ${shortCommand(s.scan.command)}`,
        scan: s.scan,
        summary: sourceSummary,
      };
    }
    if (s.kind === 'guest')
      return {
        kind: 'guest',
        label: `${s.scan.group}-${s.scan.index}`,
        scan: s.scan,
        summary: sourceSummary,
      };
    return { kind: 'dump', label: basename(s.scan.path), scan: s.scan, summary: sourceSummary };
  });

  for (const s of sources) {
    if (s.kind === 'process' && s.scan.incomplete !== undefined)
      notes.push(`pid ${s.scan.pid}: read stopped early (${s.scan.incomplete}): its figures are partial`);
  }
  if (request.scenario !== undefined) {
    const c = request.scenario.compression ?? DEFAULT_COMPRESSIBILITY;
    notes.push(
      `scenario ${request.scenario.name}: its guests' pages as they start, each guest a source; its writes in time ` +
        'are for ksmkit simulate' +
        (compare
          ? `; compression assumed, not measured: image pages to ${c.image}, tag pages to ${c.tag}, ` +
            `unique pages to ${c.unique} of a page (its compression: block)`
          : ''),
    );
  }
  if (sources.some((s) => s.kind === 'dump')) {
    notes.push(
      'dump files: every page counts as a present anonymous page of its own' +
        (request.dumpZeroPages === 'absent' ? ', except zero pages (--dump-zero-pages absent)' : ''),
    );
  }
  const { sources: _s, pairs, ...total } = summary;
  const compareReport =
    counter.compression !== undefined && calibration !== undefined
      ? compareCompression({
          tally: counter.compression,
          table: counter.table,
          freedMappings,
          ksm: summary.total,
          ksmd: {
            ...calibration.figures,
            source: `${calibration.method}, ${calibration.measuredOn}`,
          },
          ...zramOffers(),
        })
      : undefined;
  const time = estimateTime({
    pagesPerPass: summary.examined,
    zeroPageMerges: summary.total.ksm_zero_pages,
    anythingMerges: summary.total.pages_sharing > 0 || summary.total.ksm_zero_pages > 0,
    pagesToScan: settings.pagesToScan,
    sleepMillisecs: settings.sleepMillisecs,
    hz: settings.hz,
  });
  return {
    settings,
    sources,
    unreadable,
    total,
    pairs,
    time,
    speed: { bytes, seconds, gbPerSecond: seconds > 0 ? bytes / seconds / 1e9 : 0, threads: usedThreads },
    framesKnown,
    ...(compareReport !== undefined ? { compare: compareReport } : {}),
    notes: [...settings.notes, ...notes],
  };
}

/** The algorithms /sys/block/zram0/comp_algorithm lists, when this machine has zram. */
function zramOffers(): { offered?: string[] } {
  try {
    return { offered: offeredAlgorithms() };
  } catch {
    return {};
  }
}

/** The program name and its first arguments, short enough for a table. */
export function shortCommand(command: string, max = 40): string {
  const parts = command.replace(/\s+/g, ' ').trim().split(' ');
  const first = parts[0] ?? '';
  const name = first.startsWith('[') ? first : basename(first);
  const text = [name, ...parts.slice(1)].join(' ');
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}
