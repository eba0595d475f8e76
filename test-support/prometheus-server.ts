import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** One series of an instant vector from Prometheus' HTTP API. */
export interface PromSample {
  metric: Record<string, string>;
  value: [number, string];
}

export interface PrometheusServer {
  url: string;
  /** An instant query through `/api/v1/query`. */
  query(promql: string): Promise<PromSample[]>;
  /** Repeats `query` until `accept` likes the result, or throws after `timeoutMs` with the last one. */
  waitFor(promql: string, accept: (result: PromSample[]) => boolean, timeoutMs?: number): Promise<PromSample[]>;
  /** The rules loaded from `ruleFiles`, as `/api/v1/rules` lists them. */
  rules(): Promise<PromRule[]>;
  close(): Promise<void>;
}

/** An alerting rule as `/api/v1/rules` lists it, with its alerts now. */
interface PromRule {
  name: string;
  health: string;
  lastError?: string;
  state?: 'inactive' | 'pending' | 'firing';
  alerts?: { labels: Record<string, string>; state: string }[];
}

/** The Debian package's binary, or `undefined`: `.ci/run` installs it with apt-get. */
function prometheusBinary(): string | undefined {
  try {
    return execFileSync('sh', ['-c', 'command -v prometheus'], { encoding: 'utf8' }).trim() || undefined;
  } catch {
    return undefined;
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Starts a real Prometheus on loopback, with a temporary config and storage, scraping `targets`
 * (`host:port`, path /metrics) every `scrapeInterval`. Nothing of it survives close().
 */
export async function startPrometheus(
  targets: string[],
  { scrapeInterval = '1s', ruleFiles = [] as string[] } = {},
): Promise<PrometheusServer> {
  const binary = prometheusBinary();
  if (!binary) throw new Error('prometheus is not installed: apt-get install -y prometheus (.ci/run does it)');
  const dir = await mkdtemp(join(tmpdir(), 'loopsight-prometheus-'));
  const config = [
    'global:',
    `  scrape_interval: ${scrapeInterval}`,
    `  scrape_timeout: ${scrapeInterval}`,
    `  evaluation_interval: ${scrapeInterval}`,
    ...(ruleFiles.length > 0 ? ['rule_files:', ...ruleFiles.map((f) => `  - '${f}'`)] : []),
    'scrape_configs:',
    '  - job_name: loopsight-test',
    '    static_configs:',
    `      - targets: [${targets.map((t) => `'${t}'`).join(', ')}]`,
    '',
  ].join('\n');
  await writeFile(join(dir, 'prometheus.yml'), config);
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const child: ChildProcess = spawn(
    binary,
    [
      `--config.file=${join(dir, 'prometheus.yml')}`,
      `--storage.tsdb.path=${join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--log.level=warn',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let log = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    log = (log + chunk.toString()).slice(-4000);
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));

  const close = async () => {
    if (child.exitCode === null) child.kill('SIGTERM');
    await Promise.race([exited, sleep(5000).then(() => child.kill('SIGKILL'))]);
    await rm(dir, { recursive: true, force: true });
  };

  const deadline = Date.now() + 20_000;
  for (;;) {
    if (child.exitCode !== null) {
      await close();
      throw new Error(`prometheus exited (${child.exitCode}): ${log}`);
    }
    const ready = await fetch(`${url}/-/ready`).then(
      (res) => res.ok,
      () => false,
    );
    if (ready) break;
    if (Date.now() > deadline) {
      await close();
      throw new Error(`prometheus did not become ready: ${log}`);
    }
    await sleep(100);
  }

  const query = async (promql: string): Promise<PromSample[]> => {
    const res = await fetch(`${url}/api/v1/query?${new URLSearchParams({ query: promql })}`);
    const body = (await res.json()) as { status: string; error?: string; data?: { result: PromSample[] } };
    if (body.status !== 'success') throw new Error(`query ${promql} failed: ${body.error}`);
    return body.data?.result ?? [];
  };

  const waitFor = async (promql: string, accept: (result: PromSample[]) => boolean, timeoutMs = 20_000) => {
    const end = Date.now() + timeoutMs;
    let last: PromSample[] = [];
    for (;;) {
      last = await query(promql);
      if (accept(last)) return last;
      if (Date.now() > end) throw new Error(`timed out waiting for ${promql}; last result ${JSON.stringify(last)}`);
      await sleep(250);
    }
  };

  const rules = async (): Promise<PromRule[]> => {
    const res = await fetch(`${url}/api/v1/rules`);
    const body = (await res.json()) as { data?: { groups: { rules: PromRule[] }[] } };
    return (body.data?.groups ?? []).flatMap((g) => g.rules);
  };

  return { url, query, waitFor, rules, close };
}
