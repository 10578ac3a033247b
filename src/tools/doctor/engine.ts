/**
 * `ksmkit doctor WORKLOAD`: the workload run on the engine, then the same
 * verdicts as on a real host, from what the engine knows exactly: each page's
 * state as ksmd last left it (`Ksm.explainPage`, with the rmap item's last
 * decline reason), each VMA's flags, and the settings through the same host
 * checks.
 */
import { PAGE_SIZE_BYTES as BACKEND_PAGE_BYTES, type RegionMapping } from '../../backend/backend.ts';
import { SimBackend } from '../../backend/sim/sim-backend.ts';
import { assertNever } from '../../host/assert.ts';
import {
  MMF_VM_MERGE_ANY,
  type Mm,
  type Process,
  PTE_NONE,
  VM_DROPPABLE,
  VM_HUGETLB,
  VM_MAYSHARE,
  VM_MERGEABLE,
  VM_SHARED,
  VM_SPECIAL,
  type Vma,
} from '../../host/mm.ts';
import type { DeclineReason } from '../../ksm/events.ts';
import type { Ksm, PageState } from '../../ksm/ksm.ts';
import type { EngineEnd } from '../../simulate/engine-run.ts';
import type { SimulatedHost } from '../../surface/simulated-host.ts';
import { KSM_SYSFS, selectedWord } from '../../surface/sysfs.ts';
import { loadWorkload, WorkloadError } from '../../workload/parse.ts';
import { runReplay } from '../../workload/replay.ts';
import { DOCTOR_SCHEMA, type DoctorReport, pageFix } from './doctor.ts';
import { DEFAULT_TARGET_SCAN_SECONDS, type HostReading, type HostSettings, hostFindings } from './host.ts';
import { PAGE_VERDICTS, type PageVerdict } from './pages.ts';
import {
  type Finding,
  hasFindings,
  PAGE_SIZE_BYTES,
  type Subject,
  sortFindings,
  type Verdict,
} from './verdicts.ts';

/** The workload cannot be read or run: doctor cannot run (exit 2). */
export class WorkloadDoctorError extends Error {}

/** The engine's reason for a page ksmd looked at and did not merge, in doctor's words. */
export function declineVerdict(reason: DeclineReason | null, state: 'unshared' | 'volatile'): Verdict {
  if (reason === null) return state === 'volatile' ? 'volatile' : 'unique';
  switch (reason) {
    case 'checksum_changed':
    case 'merge_failed':
      return 'volatile';
    case 'no_twin_yet':
    case 'same_page_after_fork':
    case 'smart_scan_skipped':
      return 'unique';
    case 'unstable_tree_page_gone':
      return 'twin-waiting';
    case 'chain_full':
      return 'chain-full';
    case 'thp_not_yet_split':
      return 'thp-split';
    case 'other_numa_node':
      return 'numa-apart';
    case 'policy':
      return 'policy';
    default:
      return assertNever(reason, 'decline reason');
  }
}

/** One page's verdict from `explainPage`; undefined for a page that is not mapped at all. */
export function pageStateVerdict(s: PageState): Verdict | undefined {
  switch (s.state) {
    case 'not_mapped':
      return undefined;
    case 'merged':
    case 'ksm_zero_page':
      return 'merged';
    case 'not_yet_scanned':
      return 'not-yet-scanned';
    case 'unshared':
    case 'volatile':
      return declineVerdict(s.reason, s.state);
    case 'not_mergeable':
      switch (s.why) {
        case 'vma_not_mergeable':
          return 'not-advised';
        case 'not_registered':
          return 'not-registered';
        case 'no_anonymous_page':
        case 'zero_page':
          return 'not-present';
        default:
          return assertNever(s.why, 'not mergeable why');
      }
    default:
      return assertNever(s, 'page state');
  }
}

interface RegionName {
  readonly process: string;
  readonly address: number;
  readonly end: number;
  readonly name: string;
}

/** The sim backend, remembering each region's name by address (the engine's VMAs carry none). */
class NamingSimBackend extends SimBackend {
  readonly regions: RegionName[] = [];

  override async mmap(process: string, region: RegionMapping) {
    this.regions.push({
      process,
      address: region.address,
      end: region.address + region.pageCount * BACKEND_PAGE_BYTES,
      name: region.name,
    });
    return super.mmap(process, region);
  }
}

function vmaVerdict(vma: Vma, mm: Mm): Verdict | undefined {
  if (vma.flags & (VM_SHARED | VM_MAYSHARE)) return 'shared-mapping';
  if (vma.flags & VM_HUGETLB) return 'hugetlb';
  if (vma.flags & (VM_SPECIAL | VM_DROPPABLE)) return 'special-mapping';
  if (!(vma.flags & VM_MERGEABLE)) {
    const registered =
      (mm.flags & MMF_VM_MERGE_ANY) !== 0 || mm.vmas.some((v) => (v.flags & VM_MERGEABLE) !== 0);
    return registered ? 'not-advised' : 'not-registered';
  }
  return undefined;
}

const REGION_FIX: Partial<Record<Verdict, string>> = {
  'shared-mapping': 'map the region private (shared: false)',
  hugetlb: 'use THP (thp: true) instead of hugetlb',
  'not-advised': 'mergeable: true on the region',
  'not-registered': 'mergeable: true on its regions, or memory_merge: true on the process',
};

/** Per region verdict counts, as findings. */
function regionFindings(
  ksm: Ksm,
  p: Process,
  regionName: (p: Process, address: number) => string,
  settingsFix: (v: PageVerdict) => string,
): Finding[] {
  const out: Finding[] = [];
  for (const vma of p.mm.vmas) {
    const start = vma.startVpn * PAGE_SIZE_BYTES;
    const end = vma.endVpn * PAGE_SIZE_BYTES;
    const subject: Subject = { pid: p.pid, command: p.comm, start, end, name: regionName(p, start) };
    const counts = new Map<Verdict, number>();
    const whole = vmaVerdict(vma, p.mm);
    const states = whole === undefined ? ksm.explainPages(p.mm, vma, vma.startVpn, vma.endVpn) : undefined;
    for (let i = 0; i < vma.pageCount; i++) {
      const v =
        states === undefined ? (vma.pte[i] === PTE_NONE ? undefined : whole) : pageStateVerdict(states[i]!);
      if (v !== undefined) counts.set(v, (counts.get(v) ?? 0) + 1);
    }
    const present = [...counts.values()].reduce((s, n) => s + n, 0);
    for (const [verdict, n] of counts) {
      const isPage = (PAGE_VERDICTS as readonly string[]).includes(verdict);
      out.push({
        verdict,
        subject,
        pages: n,
        bytes: n * PAGE_SIZE_BYTES,
        evidence: `${n} of ${present} pages (explainPage)`,
        fix: isPage ? settingsFix(verdict as PageVerdict) : (REGION_FIX[verdict] ?? ''),
      });
    }
  }
  return out;
}

/** The settings doctor checks, read through the sysfs table as a real host's are read. */
function engineSettings(ksm: Ksm): HostSettings {
  const text = (name: string): string | null => {
    const attr = KSM_SYSFS.find((a) => a.name === name);
    return attr === undefined ? null : attr.show(ksm).trim();
  };
  const n = (name: string): number | null => {
    const t = text(name);
    return t === null ? null : Number(t);
  };
  const mode = text('advisor_mode');
  return {
    run: n('run'),
    pagesToScan: n('pages_to_scan'),
    sleepMillisecs: n('sleep_millisecs'),
    advisorMode: mode === null ? null : selectedWord(mode),
    advisorTargetScanTime: n('advisor_target_scan_time'),
    useZeroPages: n('use_zero_pages'),
    smartScan: n('smart_scan'),
    mergeAcrossNodes: n('merge_across_nodes'),
    maxPageSharing: n('max_page_sharing'),
  };
}

export interface EngineReportInput {
  readonly sim: SimulatedHost;
  readonly description: string;
  readonly kernel: string;
  readonly targetScanSeconds: number;
  /** The processes to judge, and the name of the region at an address of one. */
  readonly processes: readonly Process[];
  readonly regionName: (p: Process, address: number) => string;
  /** Rows per process (false), or summed per group of processes named by `groupOf` (simulate's guests). */
  readonly groupOf?: (p: Process) => string;
}

/** Sums rows of one group and verdict (a scenario's guests are alike: one row per group, not per guest). */
function groupRows(
  rows: readonly Finding[],
  groupOf: (pid: number) => string,
  guests: Map<string, number>,
): Finding[] {
  const sums = new Map<string, Finding>();
  for (const f of rows) {
    if (f.subject.pid === undefined) {
      sums.set(`host ${sums.size}`, f);
      continue;
    }
    const group = groupOf(f.subject.pid);
    const key = `${group}\0${f.subject.name ?? ''}\0${f.verdict}`;
    const prev = sums.get(key);
    const pages = (prev?.pages ?? 0) + f.pages;
    sums.set(key, {
      verdict: f.verdict,
      subject: { command: `${group} (${guests.get(group) ?? 0} guests)`, name: f.subject.name ?? '' },
      pages,
      bytes: pages * PAGE_SIZE_BYTES,
      evidence: `${pages} pages over the group's guests (explainPage)`,
      fix: f.fix,
    });
  }
  return [...sums.values()];
}

/** The engine as a run left it, judged as doctor judges a host. */
export function engineReport(input: EngineReportInput): DoctorReport {
  const { sim } = input;
  const settings = engineSettings(sim.ksm);
  let pagesToVisit = 0;
  for (const p of sim.host.liveProcesses()) {
    for (const v of p.mm.vmas) {
      if (!(v.flags & VM_MERGEABLE)) continue;
      for (const pte of v.pte) if (pte !== PTE_NONE) pagesToVisit++;
    }
  }
  const reading: HostReading = {
    available: true,
    kernel: input.kernel,
    settings,
    missingFiles: [],
    numaNodes: sim.host.frames.numaNodes,
    pagesToVisit,
    windowSeconds: 0,
    ksmdCpuPercent: null,
    pagesScannedInWindow: null,
    thpSplitsInWindow: null,
    tuners: [],
  };
  const { findings: hostRows, assessment } = hostFindings(reading, {
    targetScanSeconds: input.targetScanSeconds,
  });
  const host = {
    settings,
    numaNodes: reading.numaNodes,
    pagesToVisit,
    fullScanSeconds: assessment.fullScanSeconds,
    fullScanBasis: assessment.fullScanBasis,
    suggestedPagesToScan: assessment.suggestedPagesToScan,
    targetScanSeconds: input.targetScanSeconds,
    ksmdCpuPercent: null,
    windowSeconds: 0,
    thpSplitsInWindow: null,
    tuners: [],
  };
  let rows: Finding[] = [];
  for (const p of input.processes) {
    rows.push(...regionFindings(sim.ksm, p, input.regionName, (v) => pageFix(v, host)));
  }
  const groupOf = input.groupOf;
  if (groupOf !== undefined) {
    const byPid = new Map(input.processes.map((p) => [p.pid, groupOf(p)]));
    const guests = new Map<string, number>();
    for (const g of byPid.values()) guests.set(g, (guests.get(g) ?? 0) + 1);
    rows = groupRows(rows, (pid) => byPid.get(pid) ?? '?', guests);
  }
  const findings = [...hostRows, ...rows];
  const pageTotals = Object.fromEntries(PAGE_VERDICTS.map((v) => [v, 0])) as Record<PageVerdict, number>;
  for (const f of findings) {
    if ((PAGE_VERDICTS as readonly string[]).includes(f.verdict))
      pageTotals[f.verdict as PageVerdict] += f.pages;
  }
  const sorted = sortFindings(findings);
  return {
    schema: DOCTOR_SCHEMA,
    source: 'engine',
    time: new Date().toISOString(),
    kernel: input.kernel,
    root: true,
    target: { description: input.description, pids: input.processes.map((p) => p.pid) },
    host,
    pageAnalysis: true,
    pageTotals,
    findings: sorted,
    problems: [],
    notes: [],
    healthy: !hasFindings(sorted),
  };
}

/** `simulate --explain`: the guests of a scenario run, one row per group and verdict. */
export function explainEngineRun(
  end: EngineEnd,
  description: string,
  targetScanSeconds = DEFAULT_TARGET_SCAN_SECONDS,
): DoctorReport {
  const group = new Map(end.guests.map((g) => [g.pid, g.group]));
  return engineReport({
    sim: end.sim,
    description,
    kernel: '6.18.44 (simulated)',
    targetScanSeconds,
    processes: end.sim.host.liveProcesses().filter((p) => group.has(p.pid)),
    regionName: () => 'guest memory',
    groupOf: (p) => group.get(p.pid) ?? '?',
  });
}

/** Runs the workload on the engine and judges the state it ends in. */
export async function doctorWorkload(
  path: string,
  options: { readonly targetScanSeconds?: number } = {},
): Promise<DoctorReport> {
  let workload: Awaited<ReturnType<typeof loadWorkload>>;
  try {
    workload = await loadWorkload(path);
  } catch (e) {
    if (e instanceof WorkloadError) throw new WorkloadDoctorError(e.message);
    if ((e as NodeJS.ErrnoException).code === 'ENOENT')
      throw new WorkloadDoctorError(`no such file: ${path}`);
    throw e;
  }
  const backend = new NamingSimBackend();
  await runReplay(workload, backend);
  const sim = backend.simulated;
  return engineReport({
    sim,
    description: `workload ${workload.name}`,
    kernel: backend.info().kernelVersion,
    targetScanSeconds: options.targetScanSeconds ?? DEFAULT_TARGET_SCAN_SECONDS,
    processes: sim.host.liveProcesses(),
    regionName: (p, address) =>
      backend.regions.find((r) => r.process === p.comm && r.address <= address && address < r.end)?.name ??
      '',
  });
}
