// The page's script, bundled with uPlot into dist/client/dashboard.js. Every value from the server
// (ids, routes, function names, file paths) goes into the page through textContent, never as HTML.
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import './style.css';
import type { BackpressureView, FrameView, Point, PromiseView, ScopeView, StallView, TickView } from '../feed.js';

interface Snapshot {
  stalls: StallView[];
  promises: PromiseView[];
  backpressure: BackpressureView[];
  points: Point[];
  tick: TickView;
}

const MAX_LISTED = 50;
const MAX_POINTS = 3600;
// Points are a second apart; further apart than this, nothing was measured in between (the loop was
// blocked, the service restarted): the line breaks there rather than drawing a slope nobody saw.
const GAP_S = 2.5;

type Child = Node | string | null | undefined | false;

function el<K extends keyof HTMLElementTagNameMap>(tag: K, cls?: string, ...children: Child[]): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    node.append(typeof child === 'string' ? document.createTextNode(child) : child);
  }
  return node;
}

const time = (epochMs: number) => new Date(epochMs).toLocaleTimeString();
const ms = (v: number) => (v >= 1000 ? `${(v / 1000).toFixed(2)} s` : `${v.toFixed(v < 10 ? 1 : 0)} ms`);

function shortUrl(url: string): string {
  const noScheme = url.replace(/^file:\/\//, '');
  const nm = noScheme.lastIndexOf('/node_modules/');
  if (nm !== -1) return noScheme.slice(nm + 1);
  const parts = noScheme.split('/');
  return parts.length > 3 ? `…/${parts.slice(-3).join('/')}` : noScheme;
}

function frameText(f: FrameView): string {
  return `${f.fn || '(anonymous)'} (${shortUrl(f.url)}:${f.line}:${f.col})`;
}

function scopeBits(s: ScopeView | null): Child[] {
  if (!s) return [el('span', 'muted', 'no request')];
  return [el('span', 'route', `${s.method} ${s.route || '(no route)'}`.trim()), el('span', 'cid', s.id)];
}

function stackList(stack: FrameView[], culprit: FrameView | null): HTMLElement {
  const list = el('ol', 'stack');
  for (const f of stack) {
    const same = culprit && f.fn === culprit.fn && f.url === culprit.url && f.line === culprit.line && f.col === culprit.col;
    const library = f.url.startsWith('node:') || f.url.includes('/node_modules/');
    const li = el('li', same ? 'culprit-frame' : library ? 'library' : '', frameText(f));
    li.title = f.url;
    list.append(li);
  }
  if (stack.length === 0) list.append(el('li', 'muted', 'no stack'));
  return list;
}

function stallItem(s: StallView): HTMLElement {
  const head = el(
    'summary',
    '',
    el('span', 'dur', ms(s.durationMs)),
    s.phase && el('span', 'phase', s.phase),
    el('span', 'culprit', s.culprit ? frameText(s.culprit) : 'no culprit'),
    ...scopeBits(s.request),
    el('span', 'when', time(s.at)),
  );
  const extra = `stack: ${s.stackSource}, ${s.inflight} in flight${s.request ? '' : `, ${s.candidates} candidate requests`}`;
  // Why the culprit or the request is missing, shown without a click: the row alone would say nothing.
  const why = s.why && el('p', 'why', s.why);
  const item = el('li', 'report', el('details', '', head, el('p', 'muted', extra), stackList(s.stack, s.culprit)), why);
  item.dataset.kind = 'stall';
  item.dataset.key = `${s.at}|${s.durationMs}|${s.request?.id ?? ''}`;
  return item;
}

function promiseItem(p: PromiseView): HTMLElement {
  const head = el(
    'summary',
    '',
    el('span', `kind kind-${p.kind}`, p.kind),
    el('span', 'culprit', p.culprit ? frameText(p.culprit) : 'no application frame'),
    ...scopeBits(p.request),
    el('span', 'when', `${ms(p.ageMs)} old`),
  );
  const notes = [p.reason && `reason: ${p.reason}`, p.suppressed > 0 && `${p.suppressed} more like it suppressed`, `seen ${time(p.at)}`]
    .filter(Boolean)
    .join(' · ');
  const item = el('li', 'report', el('details', '', head, el('p', 'muted', notes), stackList(p.stack, p.culprit)));
  item.dataset.kind = p.kind;
  item.dataset.key = `${p.at}|${p.kind}|${p.request?.id ?? ''}|${p.ageMs}`;
  return item;
}

const bytes = (n: number) => (n >= 1 << 20 ? `${(n / (1 << 20)).toFixed(1)} MiB` : n >= 1024 ? `${(n / 1024).toFixed(0)} KiB` : `${n} B`);

function pressureItem(b: BackpressureView): HTMLElement {
  const head = el(
    'summary',
    '',
    el('span', `kind kind-${b.kind}`, b.kind),
    el('span', 'dur', bytes(b.bufferedBytes)),
    el(
      'span',
      'culprit',
      b.culprit ? frameText(b.culprit) : b.kind === 'slow-consumer' ? `above the bound for ${ms(b.durationMs)}` : 'no application frame',
    ),
    ...scopeBits(b.request),
    el('span', 'when', time(b.at)),
  );
  const notes = [`high-water mark ${bytes(b.highWaterMark)}`, b.suppressed > 0 && `${b.suppressed} more like it suppressed`]
    .filter(Boolean)
    .join(' · ');
  const item = el('li', 'report', el('details', '', head, el('p', 'muted', notes), stackList(b.stack, b.culprit)));
  item.dataset.kind = b.kind;
  item.dataset.key = `${b.at}|${b.kind}|${b.request?.id ?? ''}`;
  return item;
}

/** Replaces a list's items, keeping open the reports that were open (a reconnect sends them all again). */
function refill(list: HTMLElement, items: HTMLElement[]): void {
  const open = new Set(
    [...list.querySelectorAll<HTMLElement>('li.report')].filter((li) => li.querySelector('details')?.open).map((li) => li.dataset.key),
  );
  for (const item of items) {
    const details = item.querySelector('details');
    if (details && open.has(item.dataset.key)) details.open = true;
  }
  list.replaceChildren(...items);
  if (items.length === 0) list.append(el('li', 'empty muted', 'none yet'));
}

/** The indexes of points with no neighbour (between two gaps): a line cannot show them, a dot does. */
function isolated(u: uPlot, seriesIdx: number, show: boolean): number[] | null {
  if (show) return null;
  const ys = u.data[seriesIdx] as (number | null)[];
  const found: number[] = [];
  for (let i = 0; i < ys.length; i++) {
    if (ys[i] == null) continue;
    if ((i === 0 || ys[i - 1] == null) && (i === ys.length - 1 || ys[i + 1] == null)) found.push(i);
  }
  return found.length > 0 ? found : null;
}

function prepend(list: HTMLElement, item: HTMLElement): void {
  list.querySelector('.empty')?.remove();
  list.prepend(item);
  while (list.children.length > MAX_LISTED) list.lastElementChild?.remove();
}

function section(title: string, id: string, hint: string): { box: HTMLElement; body: HTMLElement } {
  const body = el('ol', 'reports');
  body.id = id;
  body.append(el('li', 'empty muted', 'none yet'));
  const box = el('section', 'panel', el('h2', '', title), el('p', 'hint', hint), body);
  return { box, body };
}

function chart(target: HTMLElement, title: string, series: { label: string; stroke: string }[], unit: string): uPlot {
  const opts: uPlot.Options = {
    title,
    width: Math.max(280, target.clientWidth),
    height: 220,
    series: [{}, ...series.map((s) => ({ label: s.label, stroke: s.stroke, width: 1.5, points: { show: false, filter: isolated } }))],
    legend: { live: false },
    axes: [
      { space: 90, values: (_u, ticks) => ticks.map((t) => new Date(t * 1000).toLocaleTimeString()) },
      { values: (_u, ticks) => ticks.map((t) => `${t} ${unit}`), size: 60 },
    ],
    scales: { y: { range: (_u, _min, max) => [0, Math.max(unit === '%' ? 100 : 1, max)] } },
  };
  return new uPlot(opts, [[]], target);
}

function main(): void {
  const feedUrl = document.body.dataset.feed;
  if (!feedUrl) return;

  const status = el('span', 'status', 'connecting…');
  const health = el('span', 'health', '');
  const header = el('header', '', el('h1', '', 'loopsight'), status, health);

  const delayBox = el('div', 'chart');
  delayBox.id = 'delay-chart';
  const utilBox = el('div', 'chart');
  utilBox.id = 'utilization-chart';
  const windowNote = el('p', 'hint', '');
  const charts = el('section', 'panel charts', el('h2', '', 'Event loop'), windowNote, delayBox, utilBox);

  const stalls = section(
    'Stalls',
    'stalls',
    'The loop was blocked: by which function (culprit), in which request. Newest first; open one for its stack.',
  );
  const promises = section(
    'Promises',
    'promises',
    'floating: never awaited; leaked: outlived its request; unhandled: rejected with no handler. Newest first.',
  );
  const pressure = section(
    'Backpressure',
    'backpressure',
    'ignored: kept writing after write() said to wait; slow-consumer: a reader that cannot keep up. Newest first; see docs/backpressure.md.',
  );
  const bufferedNow = el('p', 'buffered', '');
  bufferedNow.id = 'buffered-now';
  pressure.box.insertBefore(bufferedNow, pressure.body);
  const inflightBody = el('tbody');
  inflightBody.id = 'inflight';
  const inflightTotal = el('span', 'muted', '');
  const inflight = el(
    'section',
    'panel',
    el('h2', '', 'In flight ', inflightTotal),
    el('p', 'hint', 'Requests and jobs running now, oldest first.'),
    el('table', '', el('thead', '', el('tr', '', el('th', '', 'age'), el('th', '', 'request'), el('th', '', 'id'))), inflightBody),
  );
  const counterList = el('dl', 'counters');
  counterList.id = 'counters';
  const counters = el(
    'section',
    'panel',
    el('h2', '', 'Counters'),
    el('p', 'hint', 'Since the service started (stalls: since the dashboard was mounted).'),
    counterList,
  );

  const grid = el('main', '', charts, stalls.box, promises.box, pressure.box, inflight, counters);
  document.body.append(header, grid);

  const delay = chart(
    delayBox,
    'Loop delay (ms, beyond the sampling resolution)',
    [
      { label: 'p50', stroke: '#2b8a3e' },
      { label: 'p90', stroke: '#e67700' },
      { label: 'p99', stroke: '#c92a2a' },
      { label: 'max', stroke: '#5f3dc4' },
    ],
    'ms',
  );
  const util = chart(utilBox, 'Loop utilization (%)', [{ label: 'utilization', stroke: '#1971c2' }], '%');
  new ResizeObserver(() => {
    delay.setSize({ width: Math.max(280, delayBox.clientWidth), height: 220 });
    util.setSize({ width: Math.max(280, utilBox.clientWidth), height: 180 });
  }).observe(charts);

  let points: Point[] = [];
  const draw = () => {
    // A row of nulls one second after the last point before each gap breaks the lines there.
    const rows: (number | null)[][] = [];
    let gaps = 0;
    for (const p of points) {
      const last = rows.at(-1);
      if (last && p[0] - (last[0] as number) > GAP_S) {
        rows.push([(last[0] as number) + 1, null, null, null, null, null]);
        gaps++;
      }
      rows.push(p);
    }
    const cols = [0, 1, 2, 3, 4, 5].map((i) => rows.map((r) => r[i] as number | null));
    delay.setData([cols[0], cols[1], cols[2], cols[3], cols[4]] as uPlot.AlignedData);
    util.setData([cols[0], cols[5]] as uPlot.AlignedData);
    // What the charts hold, for the browser test (and anyone reading the DOM).
    delayBox.dataset.points = String(points.length);
    delayBox.dataset.gaps = String(gaps);
    delayBox.dataset.peakMs = String(points.reduce((peak, p) => Math.max(peak, p[4]), 0));
  };
  const addPoint = (p: Point) => {
    if (points.length > 0 && (points.at(-1) as Point)[0] >= p[0]) points.pop();
    points.push(p);
    if (points.length > MAX_POINTS) points.shift();
  };

  const renderTick = (t: TickView) => {
    windowNote.textContent = `Delay percentiles cover the monitor's last ${ms(t.windowMs)} window (loopLag.windowMs), sampled every second; utilization is per second.`;
    health.textContent = t.health.status === 'ok' ? 'healthy' : `overloaded: ${t.health.reasons.join(', ')}`;
    health.className = `health ${t.health.status}`;
    inflightTotal.textContent = `(${t.inflight.total})`;
    inflightBody.replaceChildren(
      ...t.inflight.oldest.map((s) =>
        el(
          'tr',
          '',
          el('td', 'dur', ms(s.ageMs)),
          el('td', 'route', `${s.method} ${s.route || '(no route)'}`.trim()),
          el('td', 'cid', s.id),
        ),
      ),
    );
    if (t.inflight.oldest.length === 0) inflightBody.append(el('tr', '', el('td', 'muted', 'none')));
    const c = t.counters;
    const bp = c.backpressure;
    bufferedNow.textContent = bp
      ? `Buffered now: ${bytes(bp.bufferedBytes)} by ${bp.waiting} writer${bp.waiting === 1 ? '' : 's'} waiting for 'drain'`
      : 'Off (backpressure: false)';
    bufferedNow.dataset.bytes = String(bp?.bufferedBytes ?? 0);
    const rows: [string, string][] = [
      ['stalls', String(c.stalls)],
      [
        'promises reported',
        Object.entries(c.promises)
          .map(([k, v]) => `${k} ${v}`)
          .join(', '),
      ],
      [
        'promises suppressed',
        Object.entries(c.promisesSuppressed)
          .map(([k, v]) => `${k} ${v}`)
          .join(', '),
      ],
      [
        'ids refused',
        Object.entries(c.idsRejected)
          .map(([k, v]) => `${k} ${v}`)
          .join(', '),
      ],
      [
        'shed (503)',
        c.shed
          ? Object.entries(c.shed)
              .map(([k, v]) => `${k} ${v}`)
              .join(', ')
          : 'off',
      ],
      ['backpressure reported', bp ? `ignored ${bp.ignored}, slow-consumer ${bp.slowConsumer}` : 'off'],
      ['not tracked (registry full)', String(c.inflightDropped)],
      ['loopsight internal errors', String(c.internalErrors)],
    ];
    counterList.replaceChildren(...rows.flatMap(([k, v]) => [el('dt', '', k), el('dd', '', v)]));
  };

  let source: EventSource;
  let streams = 0;
  const open = () => {
    source = new EventSource(feedUrl);
    // How many streams this page has opened, for the browser test.
    document.body.dataset.streams = String(++streams);
    source.addEventListener('open', () => {
      status.textContent = 'live';
      status.className = 'status live';
    });
    source.addEventListener('error', () => {
      status.textContent = 'disconnected, retrying…';
      status.className = 'status down';
    });
    // The server ends each stream after a while (feedSeconds): the next one starts with a snapshot.
    source.addEventListener('bye', () => {
      source.close();
      open();
    });
    source.addEventListener('snapshot', (e) => {
      const s = JSON.parse((e as MessageEvent<string>).data) as Snapshot;
      points = [];
      for (const p of s.points) addPoint(p);
      draw();
      refill(stalls.body, s.stalls.slice(0, MAX_LISTED).map(stallItem));
      refill(promises.body, s.promises.slice(0, MAX_LISTED).map(promiseItem));
      refill(pressure.body, (s.backpressure ?? []).slice(0, MAX_LISTED).map(pressureItem));
      renderTick(s.tick);
    });
    source.addEventListener('tick', (e) => {
      const t = JSON.parse((e as MessageEvent<string>).data) as TickView;
      addPoint(t.point);
      draw();
      renderTick(t);
    });
    source.addEventListener('stall', (e) => prepend(stalls.body, stallItem(JSON.parse((e as MessageEvent<string>).data) as StallView)));
    source.addEventListener('backpressure', (e) =>
      prepend(pressure.body, pressureItem(JSON.parse((e as MessageEvent<string>).data) as BackpressureView)),
    );
    source.addEventListener('promise', (e) =>
      prepend(promises.body, promiseItem(JSON.parse((e as MessageEvent<string>).data) as PromiseView)),
    );
  };
  open();
}

main();
