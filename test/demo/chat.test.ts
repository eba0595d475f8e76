import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { expect, it } from 'vitest';

// examples/chat in its short mode, as its README runs it: two ws servers over a private
// redis-server, against the packages' builds. It must print the blocking message's stall (its
// kind and its connection's id) and the floating promise (its kind, the id and the function).
const example = fileURLToPath(new URL('../../examples/chat/', import.meta.url));

it('the chat example prints the stall of the blocking message and the floating promise, with kind and connection id (2 runs)', {
  timeout: 90_000,
}, async () => {
  for (const run of [1, 2]) {
    const { stdout } = await promisify(execFile)(process.execPath, ['index.js', '--short'], { cwd: example, timeout: 30_000 });
    const section = (title: string) => stdout.split(`\n${title}`)[1]?.split('\n\n')[0] ?? '';
    const carol = /carol {2}on A {2}x-request-id: ([0-9a-f-]{36})/.exec(stdout)?.[1];
    expect(carol, `run ${run}:\n${stdout}`).toBeDefined();
    // The hostile id carol sent is replaced, never printed back.
    expect(stdout).not.toContain('<script>');
    expect(stdout, `run ${run}:\n${stdout}`).toMatch(
      /bob \(on B\) received "hello 0 from alice" via Redis from A, sent with id alice-7f3a/,
    );
    const stalls = section('Stall reports');
    expect(stalls, `run ${run}:\n${stdout}`).toMatch(
      new RegExp(`A {2}\\d+ ms {2}WS history {2}id ${carol} {2}\\(stack: (pause|late-pause)`),
    );
    expect(stalls, `run ${run}:\n${stdout}`).toMatch(/culprit renderHistory \(.*server\.js:\d+:\d+\)/);
    const promises = section('Promise reports');
    expect(promises, `run ${run}:\n${stdout}`).toMatch(/B {2}floating {2}WS typing {2}id bob-91c2/);
    expect(promises, `run ${run}:\n${stdout}`).toMatch(/culprit notifyTyping/);
    expect(section('Connections'), `run ${run}:\n${stdout}`).toMatch(/A {2}2 \/ 2 \/ 0\n {2}B {2}1 \/ 1 \/ 0/);
  }
});
