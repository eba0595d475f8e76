// The one stage that turns what the watchdog reported into the StallReport a monitor emits: the
// startup phase, the culprit, the stacks the monitor does not want, and `loopLag.expected`. The
// hub only routes a report to its monitor (hub.ts #onStall); the monitor only emits it.

import type { LoopsightCode } from '@loopsight/options';
import { culpritOf } from './culprit.js';
import type { ResolvedOptions, StallReport } from './types.js';

/** What the monitor a stall is for decides about it. */
export interface StallRules {
  readonly options: ResolvedOptions;
  /** When the process began to serve (its first HTTP `listen()`), when the monitor knows it. */
  readonly servingSince: (() => number) | undefined;
  /** Contains a throwing predicate or reader, warned once by its code and site: the report goes out regardless. */
  guard(what: string, problem: readonly [LoopsightCode, string], fn: () => void): void;
}

/** Shapes `report` in place for the monitor whose rules these are. */
export function shapeStall(report: StallReport, rules: StallRules): void {
  const { options, servingSince } = rules;
  const loopLag = options.loopLag;
  if (servingSince !== undefined)
    rules.guard('the startup phase could not be read', ['LOOPSIGHT_SHARED_PART_FAILED', 'phase'], () => {
      if (report.at < servingSince()) report.phase = 'startup';
    });
  // One watchdog serves every monitor of the process: one that asked for no stacks gets none.
  if (loopLag && !loopLag.captureStacks && report.stack.length > 0) withoutStack(report, 'disabled');
  if (report.culprit === undefined && report.stackSource !== 'none') {
    // A late pause's top frame may have run after the blocker; the frames below it had not returned.
    const stack = report.stackSource === 'late-pause' ? report.stack.slice(report.enteredAfter ?? 1) : report.stack;
    const culprit = culpritOf(stack, options.frameFilter);
    if (culprit) report.culprit = culprit;
  }
  // After the culprit is named: `loopLag.expected.when` decides from the finished report.
  if (!report.expected && loopLag && matchesExpected(report, loopLag.expected, rules)) {
    report.expected = true;
    withoutStack(report, 'expected');
    delete report.requestSource;
  }
}

/** The report keeps its timing and its request, not its stack. */
function withoutStack(report: StallReport, skipped: 'disabled' | 'expected'): void {
  report.stack = [];
  report.stackSource = 'none';
  report.stackSkipped = skipped;
  delete report.culprit;
  delete report.pauseDelayMs;
  delete report.enteredAfter;
}

/** Whether a stall matches `loopLag.expected`; a throwing predicate counts as false, said once. */
function matchesExpected(
  report: StallReport,
  expected: NonNullable<ResolvedOptions['loopLag'] & object>['expected'],
  rules: StallRules,
): boolean {
  if (!expected) return false;
  const route = report.request?.route;
  if (route !== undefined && expected.routes.has(route)) return true;
  const when = expected.when;
  if (!when) return false;
  let matched = false;
  rules.guard('loopLag.expected.when threw', ['LOOPSIGHT_CALLBACK_THREW', 'loopLag.expected.when'], () => {
    matched = when(report) === true;
  });
  return matched;
}
