import { spawn } from 'node:child_process';

export interface ChildRun {
  code: number | null;
  /** The signal that ended it, if one did. */
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** Epoch ms at which the process was seen to exit (before its pipes finished draining). */
  exitedAt: number;
  /** stdout's lines that are JSON objects, parsed. */
  events: Record<string, unknown>[];
}

/**
 * Runs `node ...args` to its end. A process that does not exit on its own is killed at `timeoutMs`
 * and rejects, so a scenario that hangs fails its test instead of hanging the run.
 */
export function runNode(args: readonly string[], options: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs: number }): Promise<ChildRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { cwd: options.cwd, env: options.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => {
      stdout += d;
    });
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`the process did not exit within ${options.timeoutMs} ms: ${stdout}\n${stderr}`));
    }, options.timeoutMs);
    child.on('exit', (code, signal) => {
      const exitedAt = Date.now();
      clearTimeout(timer);
      // stdout may still be draining after 'exit'.
      child.on('close', () => {
        const events = stdout
          .split('\n')
          .filter((l) => l.startsWith('{'))
          .map((l) => JSON.parse(l) as Record<string, unknown>);
        resolve({ code, signal, stdout, stderr, exitedAt, events });
      });
    });
  });
}
