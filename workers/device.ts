/**
 * The piscina task of one device: loads the run's driver modules in this thread (a user's driver
 * is imported here again), then runs until the stop flag in shared memory is set and returns its
 * counters and encoded histograms. One long-running task per device (the pool has exactly one
 * thread per device).
 */
import { type DeviceResult, type DeviceTask, runDevice } from '../src/sim/device-loop.js';
import { loadDrivers } from '../src/sim/drivers.js';

export default async function deviceTask(task: DeviceTask): Promise<DeviceResult> {
  const drivers = await loadDrivers(task.world.modules ?? ['builtin:dmirror'], task.world.labels);
  return runDevice(task, drivers);
}
