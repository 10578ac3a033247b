/**
 * A synthetic fleet for testing the planner and the sampling: guests made
 * from the scenario library's guest groups (each group's content runs, its
 * images shared across groups as the scenario has them), scaled to a small
 * guest, dealt at random onto hosts, one fingerprint file per host.
 *
 * Every host holds exactly `guestsPerHost` guests of one size and has memory
 * for no more, and each template has a multiple of `guestsPerHost` guests.
 * Then the best placement is known: every host runs guests of one template
 * (with max_page_sharing ≥ guestsPerHost, a host saves its pages minus its
 * distinct contents, and a host of one template has the fewest distinct
 * contents any host of its guests can have).
 */
import { join } from 'node:path';
import { Rng } from '../../fuzz/rng.ts';
import { ContentSpace } from '../../simulate/content.ts';
import { builtIn } from '../../simulate/library.ts';
import type { GroupModel, Scenario } from '../../simulate/scenario.ts';
import { PAGE_BYTES } from '../estimate/model.ts';
import type { SettingOverrides } from '../estimate/settings.ts';
import { runFingerprint } from './fingerprint.ts';

/** The templates: guest groups of the library whose images overlap (ubuntu and debian across tenants). */
export const TEMPLATE_GROUPS: readonly { readonly scenario: string; readonly group: string }[] = [
  { scenario: 'multi-tenant', group: 'acme-vm' },
  { scenario: 'multi-tenant', group: 'globex-vm' },
  { scenario: 'multi-tenant', group: 'initech-vm' },
  { scenario: 'multi-tenant', group: 'umbrella-vm' },
  { scenario: 'kvm-clones', group: 'guest' },
];

/** Guests per host in `ksmkit fleet --synthetic` and the tests. */
export const SYNTHETIC_GUESTS_PER_HOST = 16;

export const SYNTHETIC_SETTINGS: SettingOverrides = {
  maxPageSharing: 256,
  useZeroPages: false,
  pagesToScan: 100,
  sleepMillisecs: 20,
  hz: 250,
};

export interface SyntheticFleetOptions {
  readonly dir: string;
  readonly hosts: number;
  readonly guestsPerHost: number;
  readonly guestPages: number;
  readonly seed: number;
  /** Fingerprint files at these samplings (1: unsampled), each in its own sub-directory. */
  readonly samplings: readonly number[];
}

export interface SyntheticFleet {
  /** Per sampling, the files. */
  readonly files: ReadonlyMap<number, readonly string[]>;
  /** Template index of every guest, host by host. */
  readonly guests: readonly (readonly number[])[];
  readonly templates: readonly GroupModel[];
  readonly hostMemoryBytes: number;
}

/** A library group as one guest of `pages` pages: every run scaled, image offsets with it. */
function scaledGroup(group: GroupModel, pages: number, name: string): GroupModel {
  const factor = pages / group.pageCount;
  const content = group.content.map((run) => ({
    ...run,
    pageCount: Math.max(1, Math.round(run.pageCount * factor)),
    source:
      run.source.kind === 'image'
        ? { ...run.source, offsetPages: Math.round(run.source.offsetPages * factor) }
        : run.source,
  }));
  const total = content.reduce((s, r) => s + r.pageCount, 0);
  return { ...group, name, count: 1, pageCount: total, content };
}

export function templates(guestPages: number): GroupModel[] {
  return TEMPLATE_GROUPS.map((t) => {
    const group = builtIn(t.scenario).groups.find((g) => g.name === t.group);
    if (group === undefined)
      throw new Error(`synthetic fleet: scenario ${t.scenario} has no group ${t.group}`);
    return scaledGroup(group, guestPages, t.group);
  });
}

export async function makeSyntheticFleet(options: SyntheticFleetOptions): Promise<SyntheticFleet> {
  const { hosts, guestsPerHost } = options;
  const tpl = templates(options.guestPages);
  const guestCount = hosts * guestsPerHost;
  if (guestCount % (tpl.length * guestsPerHost) !== 0)
    throw new Error(`synthetic fleet: ${hosts} hosts must be a multiple of ${tpl.length} (one per template)`);
  const deck = Array.from({ length: guestCount }, (_, i) => i % tpl.length);
  const rng = new Rng(options.seed);
  for (let i = deck.length - 1; i > 0; i--) {
    const j = rng.int(0, i);
    [deck[i], deck[j]] = [deck[j]!, deck[i]!];
  }
  const guests = Array.from({ length: hosts }, (_, h) =>
    deck.slice(h * guestsPerHost, (h + 1) * guestsPerHost),
  );
  const pagesPerGuest = Math.max(...tpl.map((t) => t.pageCount));
  const hostMemoryBytes = guestsPerHost * pagesPerGuest * PAGE_BYTES;
  const files = new Map<number, string[]>();
  for (const n of options.samplings) {
    // One value space for the whole fleet: an image page is the same page on every host, a unique page on none.
    const content = new ContentSpace();
    const list: string[] = [];
    for (let h = 0; h < hosts; h++) {
      const host = `host${String(h).padStart(3, '0')}`;
      const output = join(options.dir, `${host}.1in${n}.parquet`);
      await runFingerprint({
        scenario: hostScenario(host, guests[h]!, tpl),
        scenarioContent: content,
        settings: SYNTHETIC_SETTINGS,
        host,
        memoryBytes: hostMemoryBytes,
        sampleOneIn: n,
        output,
        threads: 0,
      });
      list.push(output);
    }
    files.set(n, list);
  }
  return { files, guests, templates: tpl, hostMemoryBytes };
}

/** One host's guests as a scenario: guest g of template t is group `t-name-g`. */
export function hostScenario(
  host: string,
  guestTemplates: readonly number[],
  tpl: readonly GroupModel[],
): Scenario {
  const base = builtIn('multi-tenant');
  return {
    ...base,
    name: host,
    groups: guestTemplates.map((t, g) => ({ ...tpl[t]!, name: `${tpl[t]!.name}.${g}` })),
  };
}
