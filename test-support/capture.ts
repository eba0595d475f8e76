// Which stall capture backend a test run exercises. On Node 24 and later the default ('auto')
// is the native addon and before it the inspector; LOOPSIGHT_TEST_CAPTURE=inspector (or native)
// pins one for a run. Read by tests and their fixtures only, never by the packages.

/** The backend pinned for this run, if any. */
const testCapture = (): 'native' | 'inspector' | undefined => {
  const pinned = process.env.LOOPSIGHT_TEST_CAPTURE;
  return pinned === 'native' || pinned === 'inspector' ? pinned : undefined;
};

/** Node 24 and later: AsyncContextFrame, where the native backend names the request. */
export const nativeNode = Number(process.versions.node.split('.')[0]) >= 24;

/** The backend a monitor with default options uses in this run. */
export const expectedCapture = (): 'native' | 'inspector' => testCapture() ?? (nativeNode ? 'native' : 'inspector');
