/**
 * A first simple measure of the engine's speed (issue 3): a 1 GiB simulated
 * host whose mergeable memory has half its pages duplicated in pairs, scanned
 * unthrottled; pages scanned per second of CPU of this process, per pass.
 * The full benchmark against the real ksmd is `npm run bench` (a later issue).
 */
import { pageChecksumNative } from '../src/backend/sim/native-checksum.ts';
import { pageCompareNative } from '../src/backend/sim/native-compare.ts';
import { SimulatedHost } from '../src/surface/simulated-host.ts';

const GiB = 2 ** 30;
const pages = 2 * Math.floor(((GiB / 4096) * 0.9) / 2);
const sim = new SimulatedHost({
  memoryBytes: GiB + 64 * 2 ** 20,
  checksum: pageChecksumNative,
  pageCompare: pageCompareNative,
});
const { host, ksm } = sim;
const procs = [host.spawn(), host.spawn()];
const perProc = pages / 2;
const buf = new Uint8Array(4096);
const view = new DataView(buf.buffer);
for (const [k, p] of procs.entries()) {
  const addr = host.mmap(p.pid, { lengthBytes: perProc * 4096 });
  for (let i = 0; i < perProc; i++) {
    // Half the pages are the same in both processes (pairs), half are unique.
    const unique = i % 2 === 1;
    for (let w = 0; w < 4096; w += 512) view.setUint32(w, unique ? (k + 1) * 0x10000000 + i : i);
    view.setUint32(4092, unique ? k : 7);
    host.write(p.pid, addr + i * 4096, buf);
  }
  host.madvise(p.pid, addr, perProc * 4096, 'mergeable');
}
sim.sysfs.write('run', '1');
const cpu = () => process.cpuUsage().user + process.cpuUsage().system;
const rows: string[] = [];
for (let pass = 1; pass <= 4; pass++) {
  const scanned0 = ksm.pagesScanned;
  const c0 = cpu();
  ksm.fullScans(1);
  const cpuS = (cpu() - c0) / 1e6;
  const scanned = ksm.pagesScanned - scanned0;
  const c = ksm.counters();
  rows.push(
    `pass ${pass}: ${scanned} pages in ${cpuS.toFixed(2)} s CPU = ${Math.round(scanned / cpuS).toLocaleString('en')} pages/s` +
      ` (shared ${c.pages_shared}, sharing ${c.pages_sharing}, unshared ${c.pages_unshared}, volatile ${c.pages_volatile})`,
  );
}
console.log(`1 GiB host, ${pages} mergeable pages, half of them duplicated in pairs across two processes`);
for (const r of rows) console.log(r);
console.log(`peak RSS ${(process.memoryUsage().rss / 2 ** 20).toFixed(0)} MiB`);
