/**
 * The benchmark's JSON file (bench-results.json), declared once: the harness
 * builds values of these types, and `parseBenchResults` checks a file read
 * back (the README's table is made from one).
 */
import { z } from 'zod';

const count = z.number().int().min(0);
const nonNegative = z.number().min(0);

const passCountersSchema = z.strictObject({
  pages_shared: count,
  pages_sharing: count,
  pages_unshared: count,
  pages_volatile: count,
  ksm_zero_pages: count,
  stable_node_chains: count,
  stable_node_dups: count,
});

export const passMeasureSchema = z.strictObject({
  pass: z.number().int().min(1),
  role: z.enum(['first', 'merge', 'settle', 'steady']),
  pagesScanned: count,
  cpuNs: nonNegative,
  pagesPerCpuSecond: nonNegative,
  counters: passCountersSchema,
});

const kernelSideSchema = z.discriminatedUnion('ok', [
  z.strictObject({
    ok: z.literal(true),
    passes: z.array(passMeasureSchema).readonly(),
    buildMs: nonNegative,
  }),
  z.strictObject({ ok: z.literal(false), reason: z.string().min(1) }),
]);

const hashCeilingSchema = z.strictObject({
  perPagePagesPerSecond: nonNegative,
  bulkPagesPerSecond: nonNegative,
});

const engineSideSchema = z.strictObject({
  passes: z.array(passMeasureSchema).min(1).readonly(),
  buildCpuNs: nonNegative,
  hashCeiling: hashCeilingSchema.nullable(),
  metadata: z.strictObject({
    ksmArrayBytes: count,
    measuredBytes: z.number(),
    afterGc: z.boolean(),
    allocatedBytes: count,
    liveBytes: count,
    reportedBytes: count.nullable(),
    scannedPages: count,
    mergedPages: count,
    ksmArrayPerScannedPage: nonNegative,
    rmapItemsPerScannedPage: nonNegative,
    ksmArrayPerMergedPage: nonNegative,
    measuredPerScannedPage: z.number(),
    measuredPerMergedPage: z.number(),
    allocatedPerScannedPage: nonNegative,
  }),
  peakRssBytes: count,
});

const roleRatiosSchema = z.strictObject({
  first: nonNegative.nullable(),
  merge: nonNegative.nullable(),
  steady: nonNegative.nullable(),
});

export const workloadResultSchema = z.strictObject({
  name: z.string(),
  mix: z.string(),
  description: z.string(),
  sizeBytes: count,
  processCount: count,
  pagesPerProcess: count,
  settings: z.record(z.string(), z.string()),
  kernel: kernelSideSchema,
  engine: z.union([engineSideSchema, z.strictObject({ error: z.string() })]),
  /** engine ÷ kernel, pages per CPU-second, per pass role; null where a side has no such pass. */
  ratio: roleRatiosSchema,
  /** The engine's rate as a fraction of the hashing ceiling (per-page calls). */
  ofHashCeiling: roleRatiosSchema,
  /** The two sides' counters after every pass both ran: equal, or the first difference. */
  countersMatch: z.boolean().nullable(),
  counterDifference: z.string().nullable(),
});

const scaleSchema = z.strictObject({
  workload: z.string(),
  guests: count,
  guestMemoryBytes: count,
  contentMode: z.literal('fingerprint'),
  buildWallMs: nonNegative,
  buildCpuNs: nonNegative,
  mergeWallMs: nonNegative,
  mergeCpuNs: nonNegative,
  passes: z.array(passMeasureSchema).readonly(),
  peakRssBytes: count,
  pagesSwappedOut: count,
  fullyMerged: z.boolean(),
});

const sweepSpeedSchema = z.strictObject({
  scenario: z.string(),
  fastForward: z.boolean(),
  simulatedMs: nonNegative,
  steadyAtMs: nonNegative.nullable(),
  cpuNs: nonNegative,
  wallMs: nonNegative,
  cpuSecondsPerSimulatedHour: nonNegative,
});

export const benchResultsSchema = z.strictObject({
  version: z.literal(1),
  command: z.string(),
  startedAt: z.string(),
  finishedAt: z.string(),
  machine: z.strictObject({
    kernel: z.string(),
    cpuModel: z.string(),
    cpus: count,
    memoryBytes: count,
    node: z.string(),
  }),
  kernelSide: z.strictObject({
    available: z.boolean(),
    reason: z.string().nullable(),
    method: z.string(),
    otherMergeableProcesses: z.array(z.strictObject({ pid: count, command: z.string() })),
  }),
  targets: z.strictObject({ ratio: nonNegative, metadataBytesPerScannedPage: nonNegative }),
  workloads: z.array(workloadResultSchema),
  scale: z.union([scaleSchema, z.strictObject({ error: z.string() })]).nullable(),
  defaultScenario: z.array(z.union([sweepSpeedSchema, z.strictObject({ error: z.string() })])),
});

export type BenchResults = z.infer<typeof benchResultsSchema>;
export type WorkloadResult = z.infer<typeof workloadResultSchema>;

/** A results file read back; throws naming the first field that is wrong. */
export function parseBenchResults(json: unknown, source = 'bench results'): BenchResults {
  const parsed = benchResultsSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new Error(`${source}: not a ksmkit bench result (${issue.path.join('.')}: ${issue.message})`);
  }
  return parsed.data;
}
