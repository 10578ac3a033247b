/** The kernel backend refuses the simulated host's identity fields instead of replaying something else. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { KernelBackend } from './kernel-backend.ts';

test('a process identity or a set step with as: is refused, saying why', async () => {
  const k = new KernelBackend({ agentPath: '/nonexistent' });
  const simulatorOnly = /runs every workload process as root.*for the simulated host/;
  await assert.rejects(k.spawn('p', { memoryMerge: false, identity: { uid: 1000 } }), simulatorOnly);
  await assert.rejects(k.setSysfs('run', '1', { as: 'p' }), simulatorOnly);
});
