/**
 * The piscina task of one device: runs until the stop flag in shared memory is set, then returns
 * its counters and encoded histograms. One long-running task per device (the pool has exactly one
 * thread per device).
 */
import { type DeviceResult, type DeviceTask, runDevice } from '../src/sim/device-loop.js';

export default function deviceTask(task: DeviceTask): DeviceResult {
  return runDevice(task);
}
