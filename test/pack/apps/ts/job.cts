// A CommonJS TypeScript module (a queue consumer): `import` compiles to require(), and the types
// come from the packages' .d.cts files.
import { getCorrelationId } from '@loopsight/context';
import { createMonitor, type RequestRecord } from '@loopsight/core';

async function main(): Promise<void> {
  const monitor = createMonitor();
  const events: RequestRecord[] = [];
  monitor.on('request', (r) => events.push(r));
  monitor.start();
  const seen = await monitor.run({ correlationId: 'ts-cjs-job', route: 'queue:orders' }, async () => {
    await new Promise((resolve) => setTimeout(resolve, 5));
    return getCorrelationId();
  });
  await monitor.stop();
  process.stdout.write(JSON.stringify({ seen, events: events.map((e) => ({ correlationId: e.correlationId, route: e.route })) }));
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
