/** Fingerprint files, the fleet's figures against `estimate`, the planner against the known best placement. */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { runEstimate, type SourceReport } from '../estimate/estimate.ts';
import { checkSampleOneIn, runFingerprint, sourceName } from './fingerprint.ts';
import { type FleetReport, runFleet } from './fleet.ts';
import {
  hostScenario,
  makeSyntheticFleet,
  SYNTHETIC_GUESTS_PER_HOST,
  SYNTHETIC_SETTINGS,
  type SyntheticFleet,
} from './synthetic.ts';

const GUESTS = SYNTHETIC_GUESTS_PER_HOST;

/** estimate's general_profit for one host running these guests (template indices). */
async function estimateHost(fleet: SyntheticFleet, guests: readonly number[]): Promise<number> {
  const report = await runEstimate({
    scenario: hostScenario('h', guests, fleet.templates),
    settings: SYNTHETIC_SETTINGS,
    threads: 0,
  });
  return report.total.total.general_profit;
}

/** The template of a source, from its label (`<template>.<g>-1`). */
function templateOf(fleet: SyntheticFleet, source: string): number {
  const name = source.slice(source.indexOf('/') + 1).replace(/\.\d+-1$/, '');
  const t = fleet.templates.findIndex((g) => g.name === name);
  assert.ok(t >= 0, `no template for ${source}`);
  return t;
}

function placedGuests(fleet: SyntheticFleet, report: FleetReport): Map<string, number[]> {
  const byHost = new Map<string, number[]>();
  fleet.guests.forEach((guests, h) => {
    byHost.set(`host${String(h).padStart(3, '0')}`, [...guests]);
  });
  for (const m of report.moves) {
    const t = templateOf(fleet, m.source);
    const from = byHost.get(m.from)!;
    from.splice(from.indexOf(t), 1);
    byHost.get(m.to)!.push(t);
  }
  return byHost;
}

describe('fleet: a small fleet, unsampled', () => {
  let dir = '';
  let fleet: SyntheticFleet;
  let report: FleetReport;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ksmkit-fleet-'));
    fleet = await makeSyntheticFleet({
      dir,
      hosts: 10,
      guestsPerHost: GUESTS,
      guestPages: 256,
      seed: 7,
      samplings: [1],
    });
    report = await runFleet({ files: fleet.files.get(1)! });
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test("each host's saving now equals estimate on its sources, exactly", async () => {
    for (const [h, guests] of fleet.guests.entries()) {
      const host = report.hosts[h]!;
      assert.equal(host.before.general_profit, await estimateHost(fleet, guests), host.host);
      assert.equal(host.before.errorBytes, 0);
    }
  });

  test("after the plan, each host's predicted saving equals estimate on its new sources", async () => {
    assert.ok(report.moves.length > 0);
    const placed = placedGuests(fleet, report);
    for (const host of report.hosts) {
      const guests = placed.get(host.host)!;
      assert.equal(guests.length, host.after.sources, host.host);
      assert.ok(host.after.residentBytes <= host.after.memoryBytes, `${host.host} over its memory`);
      assert.equal(host.after.general_profit, await estimateHost(fleet, guests), host.host);
    }
    assert.ok(report.total.after > report.total.before);
  });

  test('the similarity table puts guests of one template first', () => {
    assert.ok(report.similar.length > 0);
    const top = report.similar[0]!;
    assert.equal(templateOf(fleet, top.a), templateOf(fleet, top.b));
  });

  test('pinned sources stay on their host', async () => {
    const pinned = await runFleet({ files: fleet.files.get(1)!, pin: /^host000\// });
    assert.ok(pinned.moves.every((m) => m.from !== 'host000'));
    assert.ok(pinned.total.after >= pinned.total.before);
  });
});

describe('fleet: 200 hosts × 16 guests from 5 templates, shuffled', () => {
  let dir = '';
  let fleet: SyntheticFleet;
  let exact: FleetReport;
  let sampled: FleetReport;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ksmkit-fleet-'));
    fleet = await makeSyntheticFleet({
      dir,
      hosts: 200,
      guestsPerHost: GUESTS,
      guestPages: 512,
      seed: 1,
      samplings: [1, 64],
    });
    exact = await runFleet({ files: fleet.files.get(1)! });
    sampled = await runFleet({ files: fleet.files.get(64)! });
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test("the plan reaches 95% of the known best placement's saving", async () => {
    let best = 0;
    const hostsPerTemplate = (fleet.guests.length * GUESTS) / fleet.templates.length / GUESTS;
    for (let t = 0; t < fleet.templates.length; t++)
      best += hostsPerTemplate * (await estimateHost(fleet, Array(GUESTS).fill(t)));
    assert.ok(exact.total.after >= 0.95 * best, `plan ${exact.total.after} < 95% of best ${best}`);
    assert.ok(
      exact.total.after <= best,
      `plan ${exact.total.after} > best ${best}: the best is not the best`,
    );
  });

  test('sampled at 1/64, the predicted savings are within the stated error', () => {
    const exactBefore = new Map(exact.hosts.map((h) => [h.host, h.before.general_profit]));
    let outside = 0;
    for (const h of sampled.hosts) {
      assert.ok(h.before.errorBytes > 0, `${h.host}: no error stated`);
      if (Math.abs(h.before.general_profit - exactBefore.get(h.host)!) > h.before.errorBytes) outside++;
    }
    // 3 standard deviations: about 0.3% of hosts may fall outside by chance (the sample is fixed: this is deterministic).
    assert.ok(outside <= 2, `${outside} of 200 hosts outside the stated error`);
    assert.ok(Math.abs(sampled.total.before - exact.total.before) <= sampled.total.errorBytes);
  });
});

test('fingerprint --sample takes powers of two only', () => {
  assert.throws(() => checkSampleOneIn(3), /power of two/);
  assert.doesNotThrow(() => checkSampleOneIn(64));
});

/** A raw dump of pages given by content number (0 = zeroes). */
function dump(path: string, pages: readonly number[]): void {
  const buf = Buffer.alloc(pages.length * 4096);
  pages.forEach((c, i) => {
    if (c !== 0) buf.fill(c, i * 4096, (i + 1) * 4096);
  });
  writeFileSync(path, buf);
}

test('dump files on two hosts: each host equals estimate on its files, under its own settings', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ksmkit-fleet-'));
  try {
    // Host a: 5 copies of content 1 with max_page_sharing 2 (chains of 2), zero pages as KSM zero pages.
    dump(join(dir, 'a1'), [1, 1, 1, 2, 0, 0, 3]);
    dump(join(dir, 'a2'), [1, 1, 2, 0, 4]);
    dump(join(dir, 'b1'), [2, 2, 4, 4, 0, 5]);
    const hosts = [
      { host: 'a', files: ['a1', 'a2'], settings: { maxPageSharing: 2, useZeroPages: true } },
      { host: 'b', files: ['b1'], settings: { maxPageSharing: 256, useZeroPages: false } },
    ];
    const files: string[] = [];
    const expected: number[] = [];
    for (const h of hosts) {
      const paths = h.files.map((f) => join(dir, f));
      const output = join(dir, `${h.host}.parquet`);
      await runFingerprint({
        files: paths,
        settings: h.settings,
        host: h.host,
        memoryBytes: 64 * 4096,
        output,
        threads: 0,
      });
      files.push(output);
      expected.push(
        (await runEstimate({ files: paths, settings: h.settings, threads: 0 })).total.total.general_profit,
      );
    }
    const report = await runFleet({ files });
    assert.deepEqual(
      report.hosts.map((h) => h.before.general_profit),
      expected,
    );
    assert.equal(report.hosts[0]!.before.ksm_zero_pages, 3);
    // Content 1: 5 pages in chains of 2 → 2 KSM pages (the fifth page finds no partner); content 2: 1.
    assert.equal(report.hosts[0]!.before.pages_shared, 2 + 1);
    await assert.rejects(runFleet({ files: [files[0]!, files[0]!] }), /in two files/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a QEMU guest is named by its -name, other processes as estimate labels them', () => {
  const process = (command: string): SourceReport =>
    ({
      kind: 'process',
      label: `4242 ${command.split(' ')[0]}`,
      scan: { pid: 2 ** 30, command },
    }) as unknown as SourceReport;
  assert.equal(
    sourceName(process('qemu-system-x86_64 -m 4G -name guest=web1,debug-threads=on')),
    'qemu:web1',
  );
  assert.equal(sourceName(process('/usr/bin/qemu-system-x86_64 -name db2 -smp 4')), 'qemu:db2');
  // No such pid: no cgroup to name it by.
  assert.equal(sourceName(process('python3 app.py -name x')), '4242 python3');
});
