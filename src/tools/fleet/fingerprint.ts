/**
 * `ksmkit fingerprint`: one host's pages as a Parquet file that `ksmkit fleet`
 * loads with every other host's. The pages are read and hashed by `estimate`'s
 * readers (exactly what ksmd would scan), then written one row per source and
 * content (its 64-bit fingerprint, its page count, its page frame and whether
 * ksmd could merge it), one row per source (total and zero pages), each row
 * carrying the host's KSM settings and memory.
 *
 * Sampling (Memory Buddies' trick, made unbiased): with --sample N a content
 * is kept when the low 32 bits of its fingerprint (the kernel's own checksum,
 * an XXH64 word) fall in the first 1/N of their range, the same rule on every
 * host, so a content is kept on all hosts or on none. The zero page is always
 * kept: it is the one content whose count matters most and it is exact.
 */

import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { EntryList } from '../estimate/content-table.ts';
import {
  type Counted,
  type EstimateReport,
  type EstimateRequest,
  runEstimate,
  type SourceReport,
} from '../estimate/estimate.ts';
import { Duck, sqlString } from './duck.ts';

/** The columns of a fingerprint file (one table: source rows have no fingerprint). */
export const FINGERPRINT_SCHEMA = `
  host VARCHAR NOT NULL,
  source VARCHAR NOT NULL,
  fingerprint UBIGINT,
  pages BIGINT,
  frame BIGINT,
  mergeable BOOLEAN,
  zero BOOLEAN,
  total_pages BIGINT,
  zero_pages BIGINT,
  max_page_sharing INTEGER NOT NULL,
  use_zero_pages BOOLEAN NOT NULL,
  memory_bytes BIGINT NOT NULL,
  sample_one_in INTEGER NOT NULL`;

export const MAX_SAMPLE_ONE_IN = 65536;

export interface FingerprintRequest extends Omit<EstimateRequest, 'onCounted' | 'compare' | 'onPage'> {
  readonly output: string;
  /** Default: this machine's name. */
  readonly host?: string;
  /** The host's memory; default MemTotal of /proc/meminfo. */
  readonly memoryBytes?: number;
  /** Keep 1 fingerprint in N (a power of two); 1 keeps all. */
  readonly sampleOneIn?: number;
}

export interface FingerprintResult {
  readonly host: string;
  readonly output: string;
  readonly sources: number;
  readonly rows: number;
  readonly pages: number;
  readonly memoryBytes: number;
  readonly sampleOneIn: number;
  readonly estimate: EstimateReport;
}

export function checkSampleOneIn(n: number): void {
  if (!Number.isInteger(n) || n < 1 || n > MAX_SAMPLE_ONE_IN || (n & (n - 1)) !== 0)
    throw new Error(
      `--sample ${n}: must be a power of two from 1 to ${MAX_SAMPLE_ONE_IN} (1 in N fingerprints kept)`,
    );
}

/** Whether a content of low fingerprint word `lo` is in the sample: lo < 2³²/N. */
export function sampled(lo: number, sampleOneIn: number): boolean {
  return lo < 2 ** 32 / sampleOneIn;
}

export function fingerprintOf(lo: number, hi: number): bigint {
  return (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0);
}

export function memTotalBytes(): number {
  const m = /^MemTotal:\s+(\d+) kB/m.exec(readFileSync('/proc/meminfo', 'utf8'));
  if (m === null) throw new Error('/proc/meminfo has no MemTotal line');
  return Number(m[1]) * 1024;
}

export async function runFingerprint(request: FingerprintRequest): Promise<FingerprintResult> {
  const sampleOneIn = request.sampleOneIn ?? 1;
  checkSampleOneIn(sampleOneIn);
  const host = request.host ?? hostname();
  const memoryBytes = request.memoryBytes ?? memTotalBytes();
  let counted: Counted | undefined;
  const estimate = await runEstimate({
    ...request,
    onCounted: (c) => {
      counted = c;
    },
  });
  if (counted === undefined) throw new Error('fingerprint: the estimate counted nothing');
  const duck = await Duck.open();
  try {
    await duck.run(`CREATE TABLE fingerprints (${FINGERPRINT_SCHEMA})`);
    const rows = await appendRows(duck, counted, estimate, { host, memoryBytes, sampleOneIn });
    await duck.run(`COPY fingerprints TO ${sqlString(request.output)} (FORMAT parquet, COMPRESSION zstd)`);
    return {
      host,
      output: request.output,
      sources: estimate.sources.length,
      rows,
      pages: estimate.total.examined,
      memoryBytes,
      sampleOneIn,
      estimate,
    };
  } finally {
    duck.close();
  }
}

async function appendRows(
  duck: Duck,
  counted: Counted,
  estimate: EstimateReport,
  hostInfo: { host: string; memoryBytes: number; sampleOneIn: number },
): Promise<number> {
  const { table, zeroContent, isKsmFrame } = counted;
  const labels = uniqueLabels(estimate.sources.map(sourceName));
  const appender = await duck.appender('fingerprints');
  const settings = estimate.settings;
  const tail = (): void => {
    appender.appendInteger(settings.maxPageSharing);
    appender.appendBoolean(settings.useZeroPages);
    appender.appendBigInt(BigInt(hostInfo.memoryBytes));
    appender.appendInteger(hostInfo.sampleOneIn);
    appender.endRow();
  };
  let rows = 0;
  estimate.sources.forEach((s, i) => {
    appender.appendVarchar(hostInfo.host);
    appender.appendVarchar(labels[i]!);
    for (let c = 0; c < 5; c++) appender.appendNull();
    appender.appendBigInt(BigInt(s.summary.examined));
    appender.appendBigInt(BigInt(s.summary.zeroPages));
    tail();
    rows++;
  });
  const list = new EntryList();
  for (let id = 0; id < table.contentCount; id++) {
    const { lo, hi } = table.keyOf(id);
    const zero = id === zeroContent;
    if (!zero && !sampled(lo, hostInfo.sampleOneIn)) continue;
    const fingerprint = fingerprintOf(lo, hi);
    const k = table.entriesOf(id, list);
    for (let i = 0; i < k; i++) {
      const frame = list.frame[i]!;
      appender.appendVarchar(hostInfo.host);
      appender.appendVarchar(labels[list.source[i]!]!);
      appender.appendUBigInt(fingerprint);
      appender.appendBigInt(BigInt(list.count[i]!));
      appender.appendBigInt(BigInt(frame));
      // What summarize() asks of a content: two frames, an unknown frame, or a page that is already a KSM page.
      appender.appendBoolean(list.multi[i] === 1 || frame < 0 || isKsmFrame(frame));
      appender.appendBoolean(zero);
      appender.appendNull();
      appender.appendNull();
      tail();
      rows++;
    }
  }
  appender.closeSync();
  return rows;
}

/**
 * A name that stays when the process restarts, so that a plan can name it:
 * a QEMU guest by its `-name` (`qemu:web1`), a process in a container by its
 * cgroup (`cgroup:/system.slice/docker-….scope`), anything else by pid and
 * command as estimate shows it.
 */
export function sourceName(s: SourceReport): string {
  if (s.kind !== 'process') return s.label;
  const qemu = /(?:^|\s)-name\s+(?:guest=)?([^,\s]+)/.exec(s.scan.command);
  if (qemu !== null && /qemu/.test(s.scan.command)) return `qemu:${qemu[1]}`;
  const cgroup = cgroupOf(s.scan.pid);
  if (cgroup !== undefined && /\.(scope|slice)$|docker|containerd|libpod|kubepods/.test(cgroup))
    return `cgroup:${cgroup}`;
  return s.label;
}

function cgroupOf(pid: number): string | undefined {
  try {
    const line = readFileSync(`/proc/${pid}/cgroup`, 'utf8')
      .split('\n')
      .find((l) => l.startsWith('0::'));
    return line === undefined ? undefined : line.slice(3);
  } catch {
    return undefined;
  }
}

/** Source labels made unique on the host (two processes may have one command): `label#2`, `label#3`. */
function uniqueLabels(labels: readonly string[]): string[] {
  const seen = new Map<string, number>();
  return labels.map((l) => {
    const n = (seen.get(l) ?? 0) + 1;
    seen.set(l, n);
    return n === 1 ? l : `${l}#${n}`;
  });
}
