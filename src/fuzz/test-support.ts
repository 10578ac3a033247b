/**
 * What the fuzzer's tests share.
 *
 * `TEST_SIM_CONFIG`: the simulator with 32 MiB of memory. Generated
 * workloads map at most 16 MiB (a fork's copy counted), so this holds any of
 * them, and it builds in about half the time of the default 4 GiB host, whose
 * construction (per-frame tables for a million frames, a 64 MiB content chunk)
 * is most of the cost of replaying a small workload. The tests assert that no
 * step fails with ENOMEM, so a host too small would not go unnoticed.
 */
import type { SimulatedHostConfig } from '../surface/simulated-host.ts';

export const TEST_SIM_CONFIG: SimulatedHostConfig = { memoryBytes: 32 * 2 ** 20 };
