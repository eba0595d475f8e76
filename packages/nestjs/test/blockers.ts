// Named places a Nest request can block in: each spins itself, so that the stall report's culprit
// (the application's frame nearest the top) names the place.

const until = (value: unknown) => performance.now() + (Number(value) || 0);

export function blockInGuard(ms: unknown): void {
  for (const end = until(ms); performance.now() < end; );
}

export function blockInInterceptor(ms: unknown): void {
  for (const end = until(ms); performance.now() < end; );
}

export function blockInController(ms: unknown): void {
  for (const end = until(ms); performance.now() < end; );
}

export function blockInFilter(ms: unknown): void {
  for (const end = until(ms); performance.now() < end; );
}

/** An async function called without await: the promise floats. */
export async function audit(): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, 20));
}
