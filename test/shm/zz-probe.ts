import { newShared, runLoops } from './harness.js';
for (let k = 0; k < 4; k++) {
  const t = performance.now();
  const r = await runLoops('rwsem', [
      { role: 'rw-writer' as const, iterations: 1_500, maxDelay: 64 },
      { role: 'rw-reader' as const, iterations: 4_000, maxDelay: 128 },
      { role: 'rw-reader' as const, iterations: 4_000, maxDelay: 128 },
      { role: 'rw-reader' as const, iterations: 4_000, maxDelay: 128 },
    ], k, newShared());
  console.log((performance.now() - t).toFixed(0), 'ms', r.map((x) => `${x.contended}/${x.maxConcurrent}`).join(' '));
}
