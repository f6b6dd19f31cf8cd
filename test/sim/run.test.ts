/**
 * Bounded runs of the whole simulation: the correct protocol gives zero violations over every
 * mutation kind; each mutant of spec/checking.md is caught within a bounded number of mutator
 * operations (with jitter), and the results name the first oracle and the operation counts.
 * Bounds are in operations; durationMs is only a guard. CI total: well under 3 minutes.
 */
import { describe, expect, it } from 'vitest';
import { MUTATION_KINDS } from '../../src/sim/scenario.js';
import { boundedScenario, describeRun, run, testSeed } from './helpers.js';

/** The mutants of the table in spec/checking.md. */
const MUTANT_TABLE = [
  'skip-read-retry',
  'retry-outside-lock',
  'no-set-seq',
  'invalidate-no-lock',
  'invalidate-noop',
  'begin-no-wait',
  'free-before-start',
  'seq-not-odd',
  'no-access-drain',
] as const;

describe('hmmsim run, correct protocol', () => {
  it('a bounded stress run of every mutation kind gives zero violations', { timeout: 90_000 }, async () => {
    const seed = testSeed();
    // Device migration is left out here: the test below covers it.
    const r = await run(
      boundedScenario({
        seed,
        ops: 3000,
        jitter: true,
        durationMs: 60_000,
        workload: { migrateFraction: 0 },
      }),
    );
    const msg = describeRun(r);
    expect(r.outcome.verdict, msg).toBe('clean');
    expect(r.outcome.exitCode, msg).toBe(0);
    expect(r.outcome.mutatorOps, msg).toBe(3000);
    expect(r.counters.lostUpdate?.difference, msg).toBe(0);
    const unavailable = (r.config as { unavailableKinds: string[] }).unavailableKinds;
    for (const k of MUTATION_KINDS) {
      if (unavailable.includes(k)) continue;
      expect(r.counters.mutations[k]!.ops, `${k}: ${msg}`).toBeGreaterThan(0);
    }
    expect(r.counters.merged.ops, msg).toBeGreaterThan(0);
    expect(r.counters.merged.hmmRangeFaultCalls, msg).toBeGreaterThan(0);
    // every retry of the v5.10 devices has one cause
    for (const c of [...r.counters.devices, r.counters.merged]) {
      expect(c.retriesByProcess + c.retriesByOtherDevice + c.retriesByOwnFault, msg).toBe(
        c.hmmRangeFaultBusy + c.readRetryCollisions,
      );
    }
    expect(r.histograms.rangeFaultLatencyUs.merged.count, msg).toBeGreaterThan(0);
    expect(r.counters.audits, msg).toBeGreaterThan(1);
    // THP split and collapse really happen (not only "nothing to do")
    for (const k of ['thp-split', 'thp-collapse']) {
      const m = r.counters.mutations[k]!;
      expect(m.ops - m.failed, `${k} successes: ${msg}`).toBeGreaterThan(0);
    }
  });

  // Device migration in the default mix (migrateFraction 0.05): once reported stale accesses of
  // frames freed by a completed migration; test/driver/migrate-race.test.ts replays both windows.
  it('with device migration too, zero violations', { timeout: 90_000 }, async () => {
    const seed = testSeed();
    const r = await run(boundedScenario({ seed, ops: 3000, jitter: true, durationMs: 60_000 }));
    expect(r.outcome.verdict, describeRun(r)).toBe('clean');
  });
});

describe('hmmsim run, mutants', () => {
  it.each(MUTANT_TABLE)(
    '%s is caught within a bounded number of operations',
    { timeout: 60_000 },
    async (mutant) => {
      const seed = testSeed();
      const r = await run(
        boundedScenario({
          seed,
          mutant,
          jitter: true,
          ops: 20_000,
          durationMs: 40_000,
          stopOnViolation: true,
        }),
      );
      const msg = `${mutant}: ${describeRun(r)}`;
      expect(r.outcome.verdict, msg).toBe('violations');
      expect(r.outcome.exitCode, msg).toBe(1);
      expect(r.outcome.firstViolation, msg).not.toBeNull();
      expect(r.outcome.firstViolation!.oracle, msg).toMatch(
        /stale-access|lost-update|mirror-incoherent|protocol/,
      );
      expect(r.outcome.firstViolation!.mutatorOps, msg).toBeLessThanOrEqual(20_000);
      expect(r.violations.length, msg).toBeGreaterThan(0);
    },
  );
});
