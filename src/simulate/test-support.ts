/**
 * Scenarios several simulate tests share (not built into dist: see
 * tsconfig.build.json).
 */

/** 4 guests of 8 MiB: half one image, a quarter zero, a quarter their own. */
export const SMALL_SCENARIO = `
version: 1
name: small
host: { memory: 64MiB }
run: { duration: 8s, sample_every: 100ms }
groups:
  - name: guest
    count: 4
    memory: 8MiB
    content:
      - { share: 0.5, image: base }
      - { share: 0.25, zero: true }
      - { share: 0.25, unique: true }
`;
