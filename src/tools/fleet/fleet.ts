/**
 * `ksmkit fleet`: fingerprint files of many hosts in one analytic database,
 * and three answers: what KSM saves on each host now (the kernel's rules, as
 * `estimate` computes them), which sources overlap most, and a placement
 * that raises the fleet's saving.
 *
 * Tables (DuckDB):
 *   fp(host, source, fingerprint, pages, frame, mergeable, zero, …)  every file's rows
 *   sources(sid, host, source, total_pages, zero_pages, pinned)
 *   hosts(hid, host, max_page_sharing, use_zero_pages, memory_bytes, sample_one_in)
 *   place(sid, hid)                                                 a placement to evaluate
 * A host's saving is computed per (host, content) with the kernel's rules:
 * n pages of a content ksmd can merge make ⌈…⌉ KSM pages, one per up to
 * max_page_sharing sharers (sharingOf in estimate/model.ts, as SQL); the zero
 * page counts as ksm_zero_pages under use_zero_pages. With sampling each kept
 * content stands for N, and the error is that of a Horvitz–Thompson sum:
 * var = Σ over kept contents of N(N−1)·x², x its pages_sharing.
 */
import { PAGE_BYTES, RMAP_ITEM_BYTES } from '../estimate/model.ts';
import { Duck, type Row, sqlString } from './duck.ts';
import { type Plan, type PlanHost, type PlanSource, planPlacement } from './plan.ts';

export interface HostSaving {
  readonly host: string;
  readonly sources: number;
  readonly memoryBytes: number;
  readonly residentBytes: number;
  readonly pages_shared: number;
  readonly pages_sharing: number;
  readonly ksm_zero_pages: number;
  readonly rmap_items: number;
  readonly general_profit: number;
  /** Three standard deviations of general_profit from sampling (0 unsampled): a 99.7% bound. */
  readonly errorBytes: number;
}

export interface SimilarPair {
  readonly a: string;
  readonly b: string;
  /** Pages of a whose content b holds, and the converse (scaled by the sample). */
  readonly aPagesInB: number;
  readonly bPagesInA: number;
  /** Of the two sources' distinct contents, the share they hold in common. */
  readonly jaccard: number;
}

export interface Move {
  readonly source: string;
  readonly from: string;
  readonly to: string;
}

export interface FleetReport {
  readonly engine: string;
  readonly files: number;
  readonly sampleOneIn: number;
  readonly hosts: readonly {
    readonly host: string;
    readonly before: HostSaving;
    readonly after: HostSaving;
  }[];
  readonly total: { readonly before: number; readonly after: number; readonly errorBytes: number };
  readonly similar: readonly SimilarPair[];
  /** For each source, the other host where it would share most pages. */
  readonly bestElsewhere: readonly {
    readonly source: string;
    readonly host: string;
    readonly pages: number;
  }[];
  readonly moves: readonly Move[];
  readonly method: string;
  readonly notes: readonly string[];
}

export interface FleetRequest {
  readonly files: readonly string[];
  /** Sources that stay where they are: matched against `host/source` and `source`. */
  readonly pin?: RegExp;
  readonly similarLimit?: number;
  readonly rounds?: number;
}

/** The SQL of sharingOf(n, m): [pages_shared, pages_sharing] of n mergeable pages. */
/** The overlap tables' sample of contents (fleet-wide, counting the files' own). */
const OVERLAP_SAMPLE_ONE_IN = 64;

const SHARED = `CASE WHEN n < 2 THEN 0 WHEN n - (n // m) * m <= 1 THEN n // m ELSE n // m + 1 END`;
const SHARING = `CASE WHEN n < 2 THEN 0 WHEN n - (n // m) * m <= 1 THEN (n // m) * (m - 1) ELSE n - n // m - 1 END`;

export async function runFleet(request: FleetRequest): Promise<FleetReport> {
  if (request.files.length === 0) throw new Error('fleet: no fingerprint files given');
  const duck = await Duck.open();
  try {
    await load(duck, request);
    const sampleOneIn = await checkFleet(duck);
    const before = await evaluate(duck);
    const beforeError = await totalError(duck);
    const { hosts, sources, names } = await planInput(duck);
    const plan = planPlacement(
      hosts,
      sources,
      request.rounds !== undefined ? { rounds: request.rounds } : {},
    );
    await setPlacement(duck, plan);
    const after = await evaluate(duck);
    const moves: Move[] = [];
    plan.placement.forEach((h, i) => {
      if (h !== sources[i]!.host)
        moves.push({ source: names[i]!, from: hosts[sources[i]!.host]!.name, to: hosts[h]!.name });
    });
    const byHost = new Map(after.map((a) => [a.host, a]));
    const total = (list: readonly HostSaving[]): number => list.reduce((s, h) => s + h.general_profit, 0);
    const notes = [
      'saving = general_profit: (pages_sharing + ksm_zero_pages) × 4096 − rmap_items × 64, per host with its own settings',
      "capacity: a host's resident pages (every source's pages before KSM) stay within its memory; KSM's saving is not counted on",
    ];
    // The overlap tables join every pair of sources holding a content: on a sample of contents, at most 1 in 64.
    const overlapSample = Math.max(1, OVERLAP_SAMPLE_ONE_IN / sampleOneIn);
    notes.push(
      `similarity and best other host: from 1 in ${overlapSample * sampleOneIn} contents, scaled (a MinHash-style sample)`,
    );
    if (sampleOneIn > 1)
      notes.push(
        `sampled 1 in ${sampleOneIn} fingerprints: pages_sharing is estimated; the error shown is 3 standard deviations (99.7%)`,
      );
    return {
      engine: 'duckdb',
      files: request.files.length,
      sampleOneIn,
      hosts: before.map((b) => ({ host: b.host, before: b, after: byHost.get(b.host)! })),
      total: {
        before: total(before),
        after: total(after),
        errorBytes: beforeError,
      },
      similar: await similarity(duck, request.similarLimit ?? 20, overlapSample),
      bestElsewhere: await bestElsewhere(duck, overlapSample),
      moves,
      method: plan.method,
      notes,
    };
  } finally {
    duck.close();
  }
}

async function load(duck: Duck, request: FleetRequest): Promise<void> {
  const list = `[${request.files.map(sqlString).join(', ')}]`;
  await duck.run(`CREATE TABLE fp AS SELECT * FROM read_parquet(${list})`);
  await duck.run(`CREATE TABLE hosts AS
    SELECT row_number() OVER (ORDER BY host) - 1 AS hid, host, any_value(max_page_sharing) AS max_page_sharing,
      any_value(use_zero_pages) AS use_zero_pages, any_value(memory_bytes) AS memory_bytes,
      any_value(sample_one_in) AS sample_one_in,
      count(DISTINCT (max_page_sharing, use_zero_pages, memory_bytes, sample_one_in)) AS variants
    FROM fp GROUP BY host`);
  await duck.run(`CREATE TABLE sources AS
    SELECT row_number() OVER (ORDER BY f.host, f.source) - 1 AS sid, h.hid, f.host, f.source,
      f.total_pages, f.zero_pages
    FROM fp f JOIN hosts h USING (host) WHERE f.fingerprint IS NULL`);
  const pin = request.pin;
  await duck.run('ALTER TABLE sources ADD COLUMN pinned BOOLEAN DEFAULT false');
  if (pin !== undefined) {
    const rows = await duck.rows('SELECT sid, host, source FROM sources');
    const pinned = rows.filter((r) => pin.test(`${r.host}/${r.source}`) || pin.test(String(r.source)));
    if (pinned.length > 0)
      await duck.run(
        `UPDATE sources SET pinned = true WHERE sid IN (${pinned.map((r) => String(r.sid)).join(',')})`,
      );
  }
  // Page rows by source id: the evaluation joins on integers.
  await duck.run(`CREATE TABLE pages AS
    SELECT s.sid, s.hid AS origin, f.fingerprint, f.pages, f.frame, f.mergeable, f.zero
    FROM fp f JOIN sources s USING (host, source) WHERE f.fingerprint IS NOT NULL`);
  await duck.run('CREATE TABLE place AS SELECT sid, hid FROM sources');
}

/** Fails on files that cannot go together; returns the fleet's 1-in-N. */
async function checkFleet(duck: Duck): Promise<number> {
  const mixed = await duck.rows('SELECT host FROM hosts WHERE variants > 1 ORDER BY host LIMIT 1');
  if (mixed.length > 0)
    throw new Error(
      `fleet: host ${String(mixed[0]!.host)} appears with different settings (two files of one host?)`,
    );
  const dup = await duck.rows(
    'SELECT host, source FROM sources GROUP BY host, source HAVING count(*) > 1 ORDER BY 1, 2 LIMIT 1',
  );
  if (dup.length > 0)
    throw new Error(
      `fleet: source ${String(dup[0]!.source)} of host ${String(dup[0]!.host)} is in two files`,
    );
  const n = await duck.rows('SELECT DISTINCT sample_one_in AS n FROM hosts ORDER BY n');
  if (n.length !== 1)
    throw new Error(
      `fleet: the files are sampled differently (1 in ${n.map((r) => String(r.n)).join(', 1 in ')}): fingerprint every host with one --sample`,
    );
  return Number(n[0]!.n);
}

async function setPlacement(duck: Duck, plan: Plan): Promise<void> {
  await duck.run('DELETE FROM place');
  const appender = await duck.appender('place');
  plan.placement.forEach((h, sid) => {
    appender.appendBigInt(BigInt(sid));
    appender.appendBigInt(BigInt(h));
    appender.endRow();
  });
  appender.closeSync();
}

/** Every host's figures under the placement in `place`. */
export async function evaluate(duck: Duck): Promise<HostSaving[]> {
  const rows = await duck.rows(`
    WITH c AS (
      SELECT p.hid, bool_or(g.zero) AS zero, sum(g.pages) AS n,
        bool_or(g.mergeable) OR count(DISTINCT (g.origin, g.frame)) > 1 AS can
      FROM pages g JOIN place p USING (sid)
      GROUP BY p.hid, g.fingerprint),
    k AS (
      SELECT c.hid, c.n, h.max_page_sharing AS m,
        CASE WHEN c.zero THEN 1 ELSE h.sample_one_in END AS w
      FROM c JOIN hosts h USING (hid)
      WHERE c.can AND NOT (c.zero AND h.use_zero_pages)),
    s AS (
      SELECT hid, sum(w * (${SHARED})) AS shared, sum(w * (${SHARING})) AS sharing,
        sum(w * (w - 1) * (${SHARING}) * (${SHARING})) AS variance
      FROM k GROUP BY hid),
    r AS (
      SELECT p.hid, count(*) AS n_sources, sum(src.total_pages) AS total, sum(src.zero_pages) AS zero
      FROM place p JOIN sources src USING (sid) GROUP BY p.hid)
    SELECT h.host, h.memory_bytes, h.use_zero_pages, coalesce(r.n_sources, 0) AS n_sources,
      coalesce(r.total, 0) AS total, coalesce(r.zero, 0) AS zero,
      coalesce(s.shared, 0) AS shared, coalesce(s.sharing, 0) AS sharing, coalesce(s.variance, 0) AS variance
    FROM hosts h LEFT JOIN r USING (hid) LEFT JOIN s USING (hid) ORDER BY h.host`);
  return rows.map((r) => {
    const total = Number(r.total);
    const zero = r.use_zero_pages === true ? Number(r.zero) : 0;
    const sharing = Number(r.sharing);
    const items = total - zero;
    return {
      host: String(r.host),
      sources: Number(r.n_sources),
      memoryBytes: Number(r.memory_bytes),
      residentBytes: total * PAGE_BYTES,
      pages_shared: Number(r.shared),
      pages_sharing: sharing,
      ksm_zero_pages: zero,
      rmap_items: items,
      general_profit: (sharing + zero) * PAGE_BYTES - items * RMAP_ITEM_BYTES,
      errorBytes: 3 * Math.sqrt(Number(r.variance)) * PAGE_BYTES,
    };
  });
}

/**
 * Three standard deviations of the fleet's total general_profit from
 * sampling: one content is kept or dropped on every host at once, so the
 * variance sums over contents of the fleet, not over hosts.
 */
async function totalError(duck: Duck): Promise<number> {
  const rows = await duck.rows(`
    WITH c AS (
      SELECT p.hid, g.fingerprint, bool_or(g.zero) AS zero, sum(g.pages) AS n,
        bool_or(g.mergeable) OR count(DISTINCT (g.origin, g.frame)) > 1 AS can
      FROM pages g JOIN place p USING (sid) GROUP BY p.hid, g.fingerprint),
    k AS (
      SELECT c.fingerprint, c.n, h.max_page_sharing AS m, h.sample_one_in AS w
      FROM c JOIN hosts h USING (hid) WHERE c.can AND NOT c.zero),
    x AS (SELECT fingerprint, any_value(w) AS w, sum(${SHARING}) AS x FROM k GROUP BY fingerprint)
    SELECT coalesce(sum(w * (w - 1) * x * x), 0) AS variance FROM x`);
  return 3 * Math.sqrt(Number(rows[0]!.variance)) * PAGE_BYTES;
}

async function planInput(duck: Duck): Promise<{ hosts: PlanHost[]; sources: PlanSource[]; names: string[] }> {
  const hostRows = await duck.rows('SELECT * FROM hosts ORDER BY hid');
  const hosts: PlanHost[] = hostRows.map((h) => ({
    name: String(h.host),
    memoryPages: Math.floor(Number(h.memory_bytes) / PAGE_BYTES),
    maxPageSharing: Number(h.max_page_sharing),
    useZeroPages: h.use_zero_pages === true,
  }));
  const srcRows = await duck.rows('SELECT * FROM sources ORDER BY sid');
  const pageRows = await duck.rows(`
    SELECT g.sid, dense_rank() OVER (ORDER BY g.fingerprint) - 1 AS content, g.pages, g.mergeable, g.zero,
      CASE WHEN g.zero THEN 1 ELSE h.sample_one_in END AS w
    FROM pages g JOIN hosts h ON h.hid = g.origin ORDER BY g.sid, content`);
  const bySource = new Map<number, Row[]>();
  for (const r of pageRows) {
    const sid = Number(r.sid);
    let list = bySource.get(sid);
    if (list === undefined) {
      list = [];
      bySource.set(sid, list);
    }
    list.push(r);
  }
  const sources: PlanSource[] = srcRows.map((s) => {
    const rows = bySource.get(Number(s.sid)) ?? [];
    return {
      host: Number(s.hid),
      pinned: s.pinned === true,
      totalPages: Number(s.total_pages),
      zeroPages: Number(s.zero_pages),
      contents: Int32Array.from(rows, (r) => Number(r.content)),
      pages: Float64Array.from(rows, (r) => Number(r.pages)),
      mergeable: Uint8Array.from(rows, (r) => (r.mergeable === true ? 1 : 0)),
      weight: Float64Array.from(rows, (r) => Number(r.w)),
      zeroAt: rows.findIndex((r) => r.zero === true),
    };
  });
  return { hosts, sources, names: srcRows.map((s) => `${String(s.host)}/${String(s.source)}`) };
}

/** The SQL condition keeping 1 in k more of the files' contents, and the weight each kept one stands for. */
function overlapFilter(k: number, alias: string): string {
  return `(${alias}.fingerprint & 4294967295) * ${k} < (4294967296 // h.sample_one_in)`;
}

async function similarity(duck: Duck, limit: number, k: number): Promise<SimilarPair[]> {
  // Distinct contents per source first: the self-join is over (source, content) pairs, not pages.
  const rows = await duck.rows(`
    WITH d AS (
      SELECT g.sid, g.fingerprint, sum(g.pages) AS pages, any_value(h.sample_one_in) * ${k} AS w
      FROM pages g JOIN hosts h ON h.hid = g.origin
      WHERE NOT g.zero AND ${overlapFilter(k, 'g')} GROUP BY g.sid, g.fingerprint),
    n AS (SELECT sid, count(*) AS contents FROM d GROUP BY sid),
    j AS (
      SELECT a.sid AS sa, b.sid AS sb, sum(a.pages * a.w) AS ab, sum(b.pages * b.w) AS ba, count(*) AS common
      FROM d a JOIN d b ON a.fingerprint = b.fingerprint AND a.sid < b.sid GROUP BY a.sid, b.sid)
    SELECT sa.host || '/' || sa.source AS a, sb.host || '/' || sb.source AS b, j.ab, j.ba,
      j.common / (na.contents + nb.contents - j.common) AS jaccard
    FROM j JOIN sources sa ON sa.sid = j.sa JOIN sources sb ON sb.sid = j.sb
      JOIN n na ON na.sid = j.sa JOIN n nb ON nb.sid = j.sb
    ORDER BY j.ab + j.ba DESC, a, b LIMIT ${limit}`);
  return rows.map((r) => ({
    a: String(r.a),
    b: String(r.b),
    aPagesInB: Number(r.ab),
    bPagesInA: Number(r.ba),
    jaccard: Number(r.jaccard),
  }));
}

async function bestElsewhere(
  duck: Duck,
  k: number,
): Promise<{ source: string; host: string; pages: number }[]> {
  const rows = await duck.rows(`
    WITH kept AS (
      SELECT g.*, h.sample_one_in * ${k} AS w FROM pages g JOIN hosts h ON h.hid = g.origin
      WHERE NOT g.zero AND ${overlapFilter(k, 'g')}),
    hc AS (SELECT DISTINCT origin AS hid, fingerprint FROM kept),
    o AS (
      SELECT g.sid, hc.hid, sum(g.pages * g.w) AS pages
      FROM kept g JOIN hc ON hc.fingerprint = g.fingerprint AND hc.hid <> g.origin
      GROUP BY g.sid, hc.hid),
    best AS (SELECT sid, arg_max(hid, pages) AS hid, max(pages) AS pages FROM o GROUP BY sid)
    SELECT s.host || '/' || s.source AS source, h.host, best.pages
    FROM best JOIN sources s USING (sid) JOIN hosts h ON h.hid = best.hid ORDER BY best.pages DESC, source`);
  return rows.map((r) => ({ source: String(r.source), host: String(r.host), pages: Number(r.pages) }));
}
