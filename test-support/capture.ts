// Which stall capture backend a test run exercises. The default ('auto') is the inspector on every
// Node; LOOPSIGHT_TEST_CAPTURE=native (or inspector) pins one for a run (native reports name no
// request). Read by tests and their fixtures only, never by the packages.

/** The backend pinned for this run, if any. */
const testCapture = (): 'native' | 'inspector' | undefined => {
  const pinned = process.env.LOOPSIGHT_TEST_CAPTURE;
  return pinned === 'native' || pinned === 'inspector' ? pinned : undefined;
};

/** Node 24 and later: where the native backend's own tests run (it also loads on 20 and 22). */
export const nativeNode = Number(process.versions.node.split('.')[0]) >= 24;

/** The backend a monitor with default options uses in this run. */
export const expectedCapture = (): 'native' | 'inspector' => testCapture() ?? 'inspector';
