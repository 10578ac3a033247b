/**
 * `ksmkit doctor --json`: the report as one JSON object, schema
 * `ksmkit-doctor/1`. The zod schema below is the documentation and the
 * contract: a field is added only with a default-free optional, never renamed
 * or removed without a new schema string. Byte figures are bytes, times
 * seconds, page counts 4 KiB pages. Tests parse every report they make with it.
 */
import { z } from 'zod';
import { DOCTOR_SCHEMA, type DoctorReport } from './doctor.ts';
import { PAGE_VERDICTS } from './pages.ts';
import { VERDICTS } from './verdicts.ts';

const nullableNumber = z.number().nullable();

export const findingSchema = z.strictObject({
  /** One of VERDICTS (verdicts.ts), the same words for a host and the engine. */
  verdict: z.enum(VERDICTS),
  /** {} for the host; pid and command for a process; start, end (addresses) and name for a VMA or region. */
  subject: z.strictObject({
    pid: z.number().int().optional(),
    command: z.string().optional(),
    start: z.number().optional(),
    end: z.number().optional(),
    name: z.string().optional(),
  }),
  pages: z.number().nonnegative(),
  bytes: z.number(),
  evidence: z.string(),
  /** '' when there is nothing to fix. */
  fix: z.string(),
});

const ksmtunedConfigSchema = z.strictObject({
  monitorIntervalS: z.number(),
  sleepMsec: z.number(),
  npagesBoost: z.number(),
  npagesDecay: z.number(),
  npagesMin: z.number(),
  npagesMax: z.number(),
  thresCoef: z.number(),
  thresConstKb: z.number(),
});

export const doctorReportSchema = z.strictObject({
  schema: z.literal(DOCTOR_SCHEMA),
  source: z.enum(['host', 'engine']),
  /** ISO 8601. */
  time: z.string(),
  kernel: z.string(),
  root: z.boolean(),
  target: z.strictObject({
    description: z.string(),
    pids: z.array(z.number().int()),
    memoryKsm: z.string().optional(),
  }),
  host: z.strictObject({
    settings: z.strictObject({
      run: nullableNumber,
      pagesToScan: nullableNumber,
      sleepMillisecs: nullableNumber,
      advisorMode: z.string().nullable(),
      advisorTargetScanTime: nullableNumber,
      useZeroPages: nullableNumber,
      smartScan: nullableNumber,
      mergeAcrossNodes: nullableNumber,
      maxPageSharing: nullableNumber,
    }),
    numaNodes: z.number().int(),
    pagesToVisit: z.number(),
    fullScanSeconds: nullableNumber,
    fullScanBasis: z.enum(['measured', 'settings']).nullable(),
    suggestedPagesToScan: nullableNumber,
    targetScanSeconds: z.number(),
    ksmdCpuPercent: nullableNumber,
    windowSeconds: z.number(),
    thpSplitsInWindow: nullableNumber,
    tuners: z.array(
      z.strictObject({
        pid: z.number().int(),
        name: z.enum(['ksmtuned', 'ksmkit tune']),
        command: z.string(),
        configPath: z.string().optional(),
        config: ksmtunedConfigSchema.optional(),
        decision: z
          .strictObject({
            totalKb: z.number(),
            thresholdKb: z.number(),
            committedKb: z.number(),
            freeKb: z.number(),
            stopsKsm: z.boolean(),
          })
          .optional(),
      }),
    ),
  }),
  pageAnalysis: z.boolean(),
  pageTotals: z.strictObject(
    Object.fromEntries(PAGE_VERDICTS.map((v) => [v, z.number().int().nonnegative()])) as Record<
      (typeof PAGE_VERDICTS)[number],
      z.ZodNumber
    >,
  ),
  findings: z.array(findingSchema),
  problems: z.array(z.string()),
  notes: z.array(z.string()),
  healthy: z.boolean(),
});

export type DoctorJson = z.infer<typeof doctorReportSchema>;

/** The report as JSON, checked against the schema (a mismatch is a bug here, not the user's). */
export function toJson(report: DoctorReport): DoctorJson {
  return doctorReportSchema.parse(JSON.parse(JSON.stringify(report)));
}
