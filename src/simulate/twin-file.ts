/**
 * A twin as a file (`simulate --save-twin FILE`, replayed by `simulate --twin
 * FILE`): what it takes to run the twin again, on another machine or in a
 * bug report, and nothing of anyone's memory.
 *
 * Layout, gzip-compressed:
 *
 * | part    | bytes        | what                                                          |
 * |---------|--------------|---------------------------------------------------------------|
 * | magic   | 12           | "KSMKIT-TWIN\n"                                               |
 * | header  | up to "\n"   | JSON: format version, host, settings, sampling, per process its VMAs, regions and page count |
 * | keys    | 8 per page   | the processes' fingerprints in header order, (low, high) as little-endian u32 |
 *
 * Fingerprints are salted on the way out: each one not of an all-zero page is
 * replaced by XXH64 of it under a random 64-bit seed that is not kept, so
 * equal pages stay equal (all the engine needs) while nobody holding the file
 * can test it for a page they know. Zero pages stay (0, 0): the kernel treats
 * them apart (use_zero_pages). Command lines are not stored (they may hold
 * secrets): only each process's comm.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { gunzipSync, gzipSync } from 'node:zlib';
import { xxh64 } from '@node-rs/xxhash';
import { z } from 'zod';
import { TWIN_VERSION, type Twin, type TwinProcess } from './twin.ts';

const MAGIC = 'KSMKIT-TWIN\n';

const vmaSchema = z.strictObject({
  start: z.number().int().min(0),
  pageCount: z.number().int().min(0),
  presentPages: z.number().int().min(0),
  name: z.string(),
});

const regionSchema = z.strictObject({
  firstPage: z.number().int().min(0),
  pageCount: z.number().int().min(1),
  writesPerSecond: z.number().min(0),
  saturated: z.boolean(),
});

const headerSchema = z.strictObject({
  version: z.literal(TWIN_VERSION),
  source: z.enum(['host', 'dumps']),
  capturedAt: z.string(),
  hostName: z.string(),
  kernel: z.string(),
  memoryBytes: z.number().min(0),
  otherUseBytes: z.number().min(0),
  numaNodes: z.number().int().min(1),
  ksmdWakeDelay: z.strictObject({
    ns: z.number().min(0),
    cpuPerPreemptionNs: z.number().min(0),
    basis: z.enum(['capture', 'boot', 'unknown']),
  }),
  settings: z.array(z.strictObject({ name: z.string(), value: z.string() })),
  settingsSource: z.enum(['sysfs', 'defaults']),
  sampling: z.strictObject({ samples: z.number().int().min(1), intervalMs: z.number().min(0) }),
  salted: z.literal(true),
  vmaMode: z.enum(['mergeable', 'compatible']),
  notes: z.array(z.string()),
  processes: z.array(
    z.strictObject({
      pid: z.number().int().min(0),
      name: z.string(),
      orderKey: z.number(),
      pages: z.number().int().min(0),
      vmas: z.array(vmaSchema),
      regions: z.array(regionSchema),
    }),
  ),
});

/** A twin file that cannot be read: the message names the file and what is wrong. */
export class TwinFileError extends Error {
  override name = 'TwinFileError';
}

/** The keys with every fingerprint but the zero page's replaced by XXH64 of it under `seed`. */
export function saltKeys(keys: Uint32Array, seed: bigint): Uint32Array {
  const out = new Uint32Array(keys.length);
  const word = new Uint32Array(2);
  const bytes = Buffer.from(word.buffer);
  const result = new BigUint64Array(1);
  const halves = new Uint32Array(result.buffer);
  for (let i = 0; i < keys.length; i += 2) {
    const lo = keys[i]!;
    const hi = keys[i + 1]!;
    if (lo === 0 && hi === 0) continue;
    word[0] = lo;
    word[1] = hi;
    result[0] = xxh64(bytes, seed);
    out[i] = halves[0]!;
    // Never (0, 0): that is the zero page's.
    out[i + 1] = halves[0] === 0 && halves[1] === 0 ? 1 : halves[1]!;
  }
  return out;
}

/** Writes the twin to `path`, salted (a twin already salted keeps its fingerprints). */
export function saveTwin(twin: Twin, path: string): void {
  const seed = randomBytes(8).readBigUInt64LE(0);
  const processes = twin.processes.map((p) => ({
    ...p,
    keys: twin.salted ? p.keys : saltKeys(p.keys, seed),
  }));
  const header = {
    version: TWIN_VERSION,
    source: twin.source,
    capturedAt: twin.capturedAt,
    hostName: twin.hostName,
    kernel: twin.kernel,
    memoryBytes: twin.memoryBytes,
    otherUseBytes: twin.otherUseBytes,
    numaNodes: twin.numaNodes,
    ksmdWakeDelay: twin.ksmdWakeDelay,
    settings: twin.settings,
    settingsSource: twin.settingsSource,
    sampling: twin.sampling,
    salted: true,
    vmaMode: twin.vmaMode,
    notes: twin.notes,
    processes: processes.map((p) => ({
      pid: p.pid,
      name: p.name,
      orderKey: p.orderKey,
      pages: p.keys.length / 2,
      vmas: p.vmas,
      regions: p.regions,
    })),
  };
  const parts: Buffer[] = [Buffer.from(MAGIC, 'latin1'), Buffer.from(`${JSON.stringify(header)}\n`, 'utf8')];
  for (const p of processes) parts.push(littleEndian(p.keys));
  writeFileSync(path, gzipSync(Buffer.concat(parts), { level: 1 }));
}

/** Reads a twin file; throws TwinFileError naming the file and the problem. */
export function loadTwin(path: string): Twin {
  let raw: Buffer;
  try {
    raw = readFileSync(path);
  } catch (e) {
    throw new TwinFileError(`${path}: cannot read: ${(e as Error).message}`);
  }
  let data: Buffer;
  try {
    data = gunzipSync(raw);
  } catch {
    throw new TwinFileError(`${path}: not a ksmkit twin file (not gzip data)`);
  }
  if (data.subarray(0, MAGIC.length).toString('latin1') !== MAGIC)
    throw new TwinFileError(`${path}: not a ksmkit twin file (no KSMKIT-TWIN header)`);
  const end = data.indexOf(0x0a, MAGIC.length);
  if (end < 0) throw new TwinFileError(`${path}: truncated twin file (no end to its header)`);
  let json: unknown;
  try {
    json = JSON.parse(data.subarray(MAGIC.length, end).toString('utf8'));
  } catch (e) {
    throw new TwinFileError(`${path}: damaged twin header: ${(e as Error).message}`);
  }
  const version = (json as { version?: unknown } | null)?.version;
  if (version !== TWIN_VERSION)
    throw new TwinFileError(
      `${path}: a twin of format version ${JSON.stringify(version)}; this ksmkit reads version ${TWIN_VERSION} only (capture it again with this version)`,
    );
  const parsed = headerSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new TwinFileError(`${path}: damaged twin header (${issue.path.join('.')}: ${issue.message})`);
  }
  const h = parsed.data;
  const pageBytes = h.processes.reduce((s, p) => s + p.pages * 8, 0);
  if (data.length - (end + 1) !== pageBytes)
    throw new TwinFileError(
      `${path}: truncated twin file (${data.length - (end + 1)} bytes of fingerprints, the header says ${pageBytes})`,
    );
  let at = end + 1;
  const processes: TwinProcess[] = h.processes.map((p) => {
    const keys = new Uint32Array(2 * p.pages);
    const view = new DataView(data.buffer, data.byteOffset + at, p.pages * 8);
    for (let i = 0; i < keys.length; i++) keys[i] = view.getUint32(4 * i, true);
    at += p.pages * 8;
    for (const r of p.regions)
      if (r.firstPage + r.pageCount > p.pages)
        throw new TwinFileError(
          `${path}: damaged twin (a region of ${p.name} ends past its ${p.pages} pages)`,
        );
    return {
      pid: p.pid,
      name: p.name,
      command: p.name,
      orderKey: p.orderKey,
      vmas: p.vmas,
      keys,
      regions: p.regions,
    };
  });
  return {
    version: TWIN_VERSION,
    source: h.source,
    capturedAt: h.capturedAt,
    hostName: h.hostName,
    kernel: h.kernel,
    memoryBytes: h.memoryBytes,
    otherUseBytes: h.otherUseBytes,
    numaNodes: h.numaNodes,
    ksmdWakeDelay: h.ksmdWakeDelay,
    settings: h.settings,
    settingsSource: h.settingsSource,
    sampling: h.sampling,
    salted: true,
    vmaMode: h.vmaMode,
    processes,
    notes: h.notes,
  };
}

function littleEndian(keys: Uint32Array): Buffer {
  const out = Buffer.alloc(keys.length * 4);
  for (let i = 0; i < keys.length; i++) out.writeUInt32LE(keys[i]!, 4 * i);
  return out;
}
