// The smallest driver module `hmmsim run --driver` accepts: a MirrorDriver (src/driver/types.ts)
// as the default export. createDevice runs on the main thread; attachDevice in every device
// worker, from the device's descriptor. This one hands both to the v5.10 reference device;
// a real driver returns its own devices and files (see dmirror-no-retry.ts for a complete one).
import { dmirrorDriver } from '../../src/driver/dmirror.js';
import type { MirrorDriver } from '../../src/driver/types.js';

const driver: MirrorDriver = {
  name: 'my-driver',
  createDevice: (env) => dmirrorDriver.createDevice(env),
  attachDevice: (env, d) => dmirrorDriver.attachDevice(env, d),
};
export default driver;
