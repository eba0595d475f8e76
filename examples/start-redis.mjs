// Starts Debian's redis-server on loopback for the examples and the tests that need a real Redis:
// no persistence, a free port, stopped by close() (and killed with the process that started it).
import { execFileSync, spawn } from 'node:child_process';
import { connect, createServer } from 'node:net';

/** The redis-server binary, or undefined (`apt-get install redis-server`; .ci/run does it). */
export function redisBinary() {
  try {
    return execFileSync('sh', ['-c', 'command -v redis-server'], { encoding: 'utf8' }).trim() || undefined;
  } catch {
    return undefined;
  }
}

function tryListen(port) {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

// Below Linux's ephemeral range, so no outgoing connection takes the port between check and listen.
async function freePort() {
  for (let attempt = 0; attempt < 100; attempt++) {
    const port = 20_000 + Math.floor(Math.random() * 12_000);
    if (await tryListen(port)) return port;
  }
  throw new Error('no free port in 100 tries');
}

/**
 * Starts a private redis-server and resolves when it accepts connections.
 * @returns {Promise<{ url: string, host: string, port: number, close(): Promise<void> }>}
 */
export async function startRedis({ timeoutMs = 15_000 } = {}) {
  const binary = redisBinary();
  if (!binary) throw new Error('redis-server is not installed: apt-get install -y redis-server (.ci/run does it)');
  for (let attempt = 0; ; attempt++) {
    const port = await freePort();
    try {
      return await startOn(binary, port, timeoutMs);
    } catch (error) {
      // Another process took the port between the check and redis' bind: try another one.
      if (attempt >= 3 || !String(error.message).includes('Address already in use')) throw error;
    }
  }
}

function startOn(binary, port, timeoutMs) {
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--loglevel', 'warning'];
  const child = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  const exited = new Promise((resolve) => child.once('exit', resolve));
  const close = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  };
  const killWithUs = () => child.kill('SIGKILL');
  process.once('exit', killWithUs);
  child.once('exit', () => process.off('exit', killWithUs));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      close().then(() => reject(new Error(`redis-server did not start in ${timeoutMs} ms: ${log}`)));
    }, timeoutMs);
    const ready = async () => {
      // The log says "Ready to accept connections" only at loglevel notice; ask the server instead.
      for (;;) {
        if (child.exitCode !== null) return;
        if (await ping(port)) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      clearTimeout(timer);
      resolve({ url: `redis://127.0.0.1:${port}`, host: '127.0.0.1', port, close });
    };
    const collect = (chunk) => {
      log = (log + chunk.toString()).slice(-2000);
    };
    child.stdout.on('data', collect);
    child.stderr.on('data', collect);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`redis-server exited (${code}): ${log}`));
    });
    ready();
  });
}

function ping(port) {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    let reply = '';
    socket.setTimeout(1000, () => socket.destroy());
    socket.once('error', () => resolve(false));
    socket.once('close', () => resolve(reply.startsWith('+PONG')));
    socket.on('data', (chunk) => {
      reply += chunk.toString();
      socket.end();
    });
    socket.once('connect', () => socket.write('PING\r\n'));
  });
}
