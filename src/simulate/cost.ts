/**
 * The time cost model of a simulation, in real units: the engine's CostModel
 * (ksmd's CPU time per batch, page visited, checksum, unstable and stable tree
 * step, and merge) plus
 * the cost of a COW break (the guest's write fault on a merged page), which is
 * the guests' CPU, not ksmd's.
 *
 * Figures come from `ksmkit calibrate` on the machine (it writes
 * calibration.json; see `defaultCalibrationPath`), or from the set shipped
 * here, measured on the project's reference machine.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { z } from 'zod';
import type { CostModel } from '../ksm/cost-model.ts';
import { fileReadProblem } from '../workload/parse.ts';

export interface CostFigures extends CostModel {
  /** A write fault on a KSM page: allocate, copy 4 KiB, remap (do_wp_page → wp_page_copy). */
  readonly cowBreakNs: number;
}

export interface Calibration {
  /** 2 since stable and unstable tree steps are measured apart (version 1 files are refused). */
  readonly version: 2;
  readonly figures: CostFigures;
  /** Where the figures were measured: kernel release, CPU model, date. */
  readonly measuredOn: string;
  /** How: `ksmkit calibrate` with its sample sizes, or "shipped defaults". */
  readonly method: string;
  /** Where they were read from (not stored in the file). */
  readonly origin?: string;
}

/**
 * Measured by `ksmkit calibrate` on the reference machine (Linux 6.18.44,
 * 2-vCPU Xeon VM, shared with other work: median of 5 rounds): the figures a
 * machine uses when it cannot calibrate.
 */
export const SHIPPED_CALIBRATION: Calibration = {
  version: 2,
  figures: {
    batchNs: 11_134,
    visitPageNs: 432,
    checksumNs: 593,
    compareNs: 100,
    stableCompareNs: 37,
    mergeNs: 1_307,
    cowBreakNs: 1_752,
  },
  measuredOn: 'Linux 6.18.44-fc-v1252, Intel Xeon ×2 (the project’s reference machine), 2026-12-06',
  method: 'shipped defaults (ksmkit calibrate, 4×16384 pages, median of 5 rounds)',
  origin: 'built in',
};

const figuresSchema = z.strictObject({
  batchNs: z.number().min(0),
  visitPageNs: z.number().min(0),
  checksumNs: z.number().min(0),
  compareNs: z.number().min(0),
  stableCompareNs: z.number().min(0),
  mergeNs: z.number().min(0),
  cowBreakNs: z.number().min(0),
});

const calibrationSchema = z.object({
  version: z.literal(2),
  figures: figuresSchema,
  measuredOn: z.string(),
  method: z.string(),
});

/** $KSMKIT_CALIBRATION, else $XDG_CONFIG_HOME/ksmkit/calibration.json (~/.config/...). */
export function defaultCalibrationPath(): string {
  const fromEnv = process.env.KSMKIT_CALIBRATION;
  if (fromEnv !== undefined && fromEnv !== '') return fromEnv;
  const base = process.env.XDG_CONFIG_HOME || join(homedir(), '.config');
  return join(base, 'ksmkit', 'calibration.json');
}

/** Reads a calibration file; throws with the file name and the problem. */
export function readCalibration(path: string): Calibration {
  let raw: unknown;
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new Error(`calibration file ${path}: ${fileReadProblem(e)} (\`ksmkit calibrate\` writes one)`);
  }
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new Error(`calibration file ${path}: not JSON (${(e as Error).message})`);
  }
  if (typeof raw === 'object' && raw !== null && (raw as { version?: unknown }).version === 1) {
    throw new Error(
      `${path}: a version 1 calibration, from before stable tree steps were measured apart from unstable ones: run ksmkit calibrate again`,
    );
  }
  const parsed = calibrationSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new Error(
      `calibration file ${path}: not a ksmkit calibration (${issue.path.join('.') || 'the whole file'}: ${issue.message})`,
    );
  }
  return { ...parsed.data, origin: path };
}

/** The explicit file, else the default file when it exists, else the shipped figures. */
export function loadCalibration(path?: string): Calibration {
  if (path !== undefined) return readCalibration(path);
  const fallback = defaultCalibrationPath();
  return existsSync(fallback) ? readCalibration(fallback) : SHIPPED_CALIBRATION;
}

export function writeCalibration(path: string, calibration: Calibration): void {
  mkdirSync(dirname(path), { recursive: true });
  const { origin: _origin, ...stored } = calibration;
  writeFileSync(path, `${JSON.stringify(stored, null, 2)}\n`);
}

/**
 * A CostModel that also counts what the engine charges: each read of a figure
 * is one event (ksm.ts adds `costModel.X` once per batch, visit, checksum,
 * memcmp, merge). The engine reads the model through its CostModel interface,
 * so getters are all it takes.
 */
export class CountingCostModel implements CostModel {
  batches = 0;
  visits = 0;
  checksums = 0;
  /** Unstable tree steps. */
  compares = 0;
  stableCompares = 0;
  merges = 0;

  constructor(private readonly figures: CostModel) {}

  get batchNs(): number {
    this.batches++;
    return this.figures.batchNs;
  }
  get visitPageNs(): number {
    this.visits++;
    return this.figures.visitPageNs;
  }
  get checksumNs(): number {
    this.checksums++;
    return this.figures.checksumNs;
  }
  get compareNs(): number {
    this.compares++;
    return this.figures.compareNs;
  }
  get stableCompareNs(): number {
    this.stableCompares++;
    return this.figures.stableCompareNs;
  }
  get mergeNs(): number {
    this.merges++;
    return this.figures.mergeNs;
  }

  reset(): void {
    this.batches = 0;
    this.visits = 0;
    this.checksums = 0;
    this.compares = 0;
    this.stableCompares = 0;
    this.merges = 0;
  }
}

/** One-line description of the figures. */
export function describeFigures(f: CostFigures): string {
  return (
    `batch ${f.batchNs} ns, page visit ${f.visitPageNs} ns, checksum ${f.checksumNs} ns, ` +
    `unstable tree step ${f.compareNs} ns, stable tree step ${f.stableCompareNs} ns, merge ${f.mergeNs} ns, COW break ${f.cowBreakNs} ns`
  );
}
