import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { type Agent, request } from 'undici';

export { freePort } from '../../../test-support/ports.js';

/** The package's directory: `@loopsight/register` resolves from there to its build (self-reference). */
export const packageDir = fileURLToPath(new URL('..', import.meta.url));
export const fixture = (name: string) => fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url));

export type Preload = 'import' | 'require';

export interface RunningApp {
  url: string;
  /** Every stderr line so far. */
  lines(): string[];
  /** The JSON lines of stderr with `key` (`loopsight`: reports; `observed`: what observer.mjs heard). */
  json<T = Record<string, unknown>>(key: string): T[];
  /** Waits for a JSON line with `key` that satisfies `match`. */
  waitFor<T = Record<string, unknown>>(key: string, match: (line: T) => boolean, timeoutMs?: number): Promise<T>;
  /** Ends stdin (the app closes its servers); resolves with the exit code once it exited on its own. */
  close(): Promise<number | null>;
}

function parse(line: string): Record<string, unknown> | undefined {
  if (!line.startsWith('{')) return undefined;
  try {
    return JSON.parse(line) as Record<string, unknown>;
  } catch {
    return undefined;
  }
}

/**
 * Starts a fixture app with `node --import|--require @loopsight/register` (plus observer.mjs) and
 * the given LOOPSIGHT_* variables; the app prints its port on stdout.
 */
export async function startApp(preload: Preload, args: string[], env: Record<string, string> = {}): Promise<RunningApp> {
  const flag = preload === 'import' ? '--import' : '--require';
  const execArgv = [flag, '@loopsight/register', '--import', fixture('observer.mjs')];
  const clean = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith('LOOPSIGHT_') && key !== 'NODE_OPTIONS'));
  const child: ChildProcessWithoutNullStreams = spawn(process.execPath, [...execArgv, ...args], {
    cwd: packageDir,
    env: { ...clean, ...env },
  });
  const stderr: string[] = [];
  let partial = '';
  const waiters = new Set<() => void>();
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    const parts = (partial + chunk).split('\n');
    partial = parts.pop() ?? '';
    stderr.push(...parts);
    for (const wake of waiters) wake();
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      out += chunk;
      const line = out.split('\n')[0];
      if (out.includes('\n') && line) resolve((JSON.parse(line) as { port: number }).port);
    });
    void exited.then((code) => reject(new Error(`the app exited with ${code} before listening:\n${stderr.join('\n')}`)));
  });
  const json = <T>(key: string) =>
    stderr
      .map(parse)
      .filter((line) => line !== undefined && key in line)
      .map((line) => line as T);
  return {
    url: `http://127.0.0.1:${port}`,
    lines: () => [...stderr],
    json,
    waitFor<T>(key: string, match: (line: T) => boolean, timeoutMs = 10_000): Promise<T> {
      return new Promise((resolve, reject) => {
        const look = () => {
          const found = json<T>(key).find(match);
          if (found === undefined) return;
          waiters.delete(look);
          clearTimeout(timer);
          resolve(found);
        };
        const timer = setTimeout(() => {
          waiters.delete(look);
          reject(new Error(`no ${key} line matched within ${timeoutMs} ms; stderr:\n${stderr.slice(-20).join('\n')}`));
        }, timeoutMs);
        waiters.add(look);
        look();
      });
    },
    async close() {
      child.stdin.end();
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
}

export const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

export interface Observed {
  observed: string;
  id: string;
  route: string | null;
  status: number;
}

export async function getJson(url: string, id?: string, dispatcher?: Agent) {
  // Without an agent, a connection of its own: a kept-alive one the app closes after its idle
  // timeout can be reused at that moment on a loaded machine ('other side closed').
  const res = await request(url, {
    headers: id === undefined ? {} : { 'x-request-id': id },
    ...(dispatcher ? { dispatcher } : { reset: true }),
  });
  return { status: res.statusCode, echoed: res.headers['x-request-id'], body: (await res.body.json()) as Record<string, unknown> };
}

/** The 'request' event of a request can come after its response: waits until every id was heard. */
export function untilObserved(app: RunningApp, ids: string[]): Promise<unknown> {
  return app.waitFor('observed', () => {
    const heard = new Set(app.json<Observed>('observed').map((e) => e.id));
    return ids.every((id) => heard.has(id));
  });
}
