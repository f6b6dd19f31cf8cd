// The backstop watchdog: a plain worker (no TypeScript, nothing to compile) that watches the main
// thread's heartbeat in the control block. The main thread's own watchdog reports stuck devices;
// this one covers the case it cannot: the main thread itself stuck in a wait (a deadlock in the
// mm under a mutant). It then writes a dump of the lock words and seqs straight to fd 2 (the main
// thread's stdio relay is blocked too) and ends the process: a worker cannot set the process's
// exit status, so it is killed (status 137), and the dump's last line says so.
import { writeSync } from 'node:fs';
import { workerData } from 'node:worker_threads';

const d = workerData;
const c = new Int32Array(d.control);
const mmCtl = new Int32Array(d.mmCtl);
const mn = new Int32Array(d.notifierWords);
const files = d.files.map((f) => ({ id: f.id, ctl: new Int32Array(f.ctl) }));
const nowUs = () => Math.round((performance.timeOrigin + performance.now() - d.epoch) * 1000) | 0;

function dump(staleMs) {
  const L = d.layout;
  const lines = [
    `hmmsim run: HUNG: the main thread made no progress for ${staleMs} ms (watchdog bound ${d.boundMs} ms)`,
    `main: op ${['idle', 'mutating', 'audit', 'pacing'][Atomics.load(c, L.CTL_MAIN_OP)] ?? '?'}, mutation kind ${d.kinds[Atomics.load(c, L.CTL_MAIN_KIND)] ?? '-'}, ${Atomics.load(c, L.CTL_MAIN_OPS)} mutations`,
    `mmap lock state ${Atomics.load(mmCtl, L.MM_MMAP_LOCK)} (-1 writer, n readers), writers waiting ${Atomics.load(mmCtl, L.MM_MMAP_LOCK + 1)}; page-table lock owner thread ${Atomics.load(mmCtl, L.MM_PTL + 1) - 1}`,
    `interval notifier: invalidate_seq ${Atomics.load(mn, L.MN_SEQ)}, active ranges ${Atomics.load(mn, L.MN_ACTIVE)}, lock owner thread ${Atomics.load(mn, L.MN_LOCK + 1) - 1}`,
  ];
  for (const f of files) {
    lines.push(
      `file ${f.id}: update lock ${Atomics.load(f.ctl, 0)} (0 free), owner thread ${Atomics.load(f.ctl, 1) - 1}`,
    );
  }
  for (let i = 0; i < d.devices; i++) {
    const b = L.devBase0 + i * L.DEV_WORDS;
    lines.push(
      `device ${i} thread ${Atomics.load(c, b + L.D_THREAD)}: state ${d.states[Atomics.load(c, b + L.D_STATE)] ?? '?'}, op ${d.ops[Atomics.load(c, b + L.D_OP)] ?? '?'} at 0x${(Atomics.load(c, b + L.D_ADDR) * 4096).toString(16)}, ${Atomics.load(c, b + L.D_OPS)} ops`,
    );
  }
  lines.push('hmmsim run: the process is killed (a hung main thread cannot return exit code 3)');
  writeSync(2, `${lines.join('\n')}\n`);
}

const tick = () => {
  if (Atomics.load(c, d.layout.CTL_WATCHDOG_OFF) !== 0) return;
  const beat = Atomics.load(c, d.layout.CTL_MAIN_BEAT);
  const stale = (nowUs() - beat) / 1000;
  if (beat !== 0 && stale > d.boundMs) {
    dump(Math.round(stale));
    process.kill(process.pid, 'SIGKILL');
    return;
  }
  setTimeout(tick, Math.min(500, d.boundMs / 4));
};
setTimeout(tick, 500);
