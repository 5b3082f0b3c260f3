// The dashboard and the offline report: one script, plain browser JavaScript,
// no build step. Live mode polls the server; report mode reads window.ANVIL_DATA.
// Everything a model wrote is shown as text, never as markup.
'use strict';

const COLORS = {
  ok: '#2e9e5b',
  no_code: '#9aa3b2',
  static_violation: '#b36bd6',
  compile_error: '#e0a030',
  runtime_error: '#e36b4f',
  timeout: '#c44f8a',
  wrong_result: '#d9534f',
  hack_detected: '#7a3fd1',
  env_error: '#5b6b80',
  cancelled: '#aab4c3',
  invalid_action: '#8c6d4f',
};
const color = (o) => COLORS[o] || '#888';
const esc = (s) =>
  String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);
const fmt = (x, d = 2) => (x === null || x === undefined || Number.isNaN(x) ? '–' : Number(x).toFixed(d));
const params = new URLSearchParams(location.search);
const token = params.get('token');
const api = (path) =>
  fetch(path + (token ? `${path.includes('?') ? '&' : '?'}token=${encodeURIComponent(token)}` : '')).then((r) =>
    r.ok ? r.json() : Promise.reject(new Error(`${path}: ${r.status}`)),
  );

function section(id, title, wide) {
  let s = document.getElementById(id);
  if (!s) {
    s = document.createElement('section');
    s.id = id;
    if (wide) s.className = 'wide';
    document.getElementById('main').appendChild(s);
  }
  return (html) => (s.innerHTML = `<h2>${esc(title)}</h2>${html}`);
}

function legend(keys) {
  return `<div class="legend">${keys.map((k) => `<span><i style="background:${color(k)}"></i>${esc(k)}</span>`).join('')}</div>`;
}

// Stacked bars: one bar per item, segments by outcome.
function stacked(items, label) {
  if (!items.length) return '<p class="empty">nothing yet</p>';
  const keys = [...new Set(items.flatMap((i) => Object.keys(i.outcomes)))].sort();
  const W = 400,
    H = 150,
    pad = 18;
  const max = Math.max(...items.map((i) => Object.values(i.outcomes).reduce((a, b) => a + b, 0)));
  const bw = (W - pad) / items.length;
  let bars = '';
  items.forEach((it, k) => {
    let y = H - pad;
    for (const o of keys) {
      const h = ((it.outcomes[o] || 0) / max) * (H - pad - 4);
      if (h > 0)
        bars += `<rect class="bar" x="${pad + k * bw + 1}" y="${y - h}" width="${Math.max(1, bw - 2)}" height="${h}" fill="${color(o)}"><title>${esc(label(it))}: ${esc(o)} ${it.outcomes[o]}</title></rect>`;
      y -= h;
    }
    if (items.length <= 16 || k % Math.ceil(items.length / 8) === 0)
      bars += `<text x="${pad + k * bw + bw / 2}" y="${H - 4}" text-anchor="middle">${esc(label(it))}</text>`;
  });
  return `<svg viewBox="0 0 ${W} ${H}" width="100%" role="img"><text x="0" y="10">${max}</text>${bars}</svg>${legend(keys)}`;
}

function histogram(bins, label, fill) {
  const max = Math.max(0, ...bins.map((b) => b.n));
  if (!max) return '<p class="empty">nothing yet</p>';
  const W = 400,
    H = 120,
    pad = 14;
  const bw = (W - pad) / bins.length;
  const bars = bins
    .map((b, k) => {
      const h = (b.n / max) * (H - 2 * pad);
      return (
        `<rect class="bar" x="${pad + k * bw + 1}" y="${H - pad - h}" width="${bw - 2}" height="${h}" fill="${fill}"><title>${esc(label(b))}: ${b.n}</title></rect>` +
        (k % 2 === 0 ? `<text x="${pad + k * bw}" y="${H - 2}">${esc(label(b))}</text>` : '')
      );
    })
    .join('');
  return `<svg viewBox="0 0 ${W} ${H}" width="100%" role="img"><text x="0" y="10">${max}</text>${bars}</svg>`;
}

function table(head, rows) {
  if (!rows.length) return '<p class="empty">nothing yet</p>';
  return `<table><tr>${head.map((h) => `<th>${esc(h)}</th>`).join('')}</tr>${rows.join('')}</table>`;
}

const row = (cells, attrs = '') => `<tr ${attrs}>${cells.map((c) => `<td>${c}</td>`).join('')}</tr>`;
const pill = (o) => `<span class="pill" style="background:${color(o)}">${esc(o)}</span>`;

const cards = (entries) =>
  `<div class="cards">${entries.map(([k, v]) => `<div class="card"><b>${esc(v)}</b><span>${esc(k)}</span></div>`).join('')}</div>`;

// Sections are placed in the order they are first rendered: cards, charts, then tables.
function renderStats(st, status) {
  renderCards(st, status);
  renderCharts(st);
  renderTables(st);
}

// The headline figures: the server's state when live, the run's totals in a report.
function renderCards(st, status) {
  if (status)
    section(
      'status',
      'Server',
      true,
    )(
      cards([
        ['status', status.ok ? 'serving' : 'down'],
        ['sandbox', status.sandbox],
        ['connections', status.connections],
        ['open episodes', status.episodes],
        ...Object.entries(status.queues || {}).map(([b, n]) => [`queue (${b})`, n]),
        ['evaluations / min', st.evalsPerMinute],
        ['steps', st.steps],
      ]),
    );
  else
    section(
      'status',
      'Run',
      true,
    )(
      cards([
        ['steps', st.steps],
        ['episodes', st.episodes],
        ['correct turns', st.outcomes.ok || 0],
        ['hacks caught', st.outcomes.hack_detected || 0],
      ]),
    );
}

// Outcome mixes, distributions and the reward trend.
function renderCharts(st) {
  const clock = (t) => new Date(t).toISOString().slice(11, 19);
  section('timeline', 'Outcome mix over time')(stacked(st.timeline, (b) => clock(b.start)));
  section(
    'perturn',
    'Outcome mix and mean reward per turn',
  )(
    stacked(
      st.perTurn.map((t) => ({ ...t, label: `turn ${t.turn}` })),
      (t) => t.label,
    ) +
      `<div class="legend">${st.perTurn.map((t) => `<span>turn ${t.turn}: mean reward <b>${fmt(t.meanReward)}</b></span>`).join('')}</div>`,
  );
  section('rewards', 'Reward distribution')(histogram(st.rewardHistogram, (b) => fmt(b.lo, 1), '#2f6fde'));
  section(
    'speedups',
    'Speedup distribution (correct turns)',
  )(histogram(st.speedupHistogram, (b) => `${fmt(b.lo, b.lo < 1 ? 2 : 0)}×`, '#2e9e5b'));
  const meanRewards = st.timeline.filter((b) => b.meanReward !== null).map((b) => b.meanReward);
  section(
    'trend',
    'Mean reward over time',
  )(
    meanRewards.length
      ? sparkline(meanRewards) + `<p>last: <b>${fmt(meanRewards[meanRewards.length - 1])}</b></p>`
      : '<p class="empty">nothing yet</p>',
  );
}

// Hack flags, stage latencies and fast_p.
function renderTables(st) {
  section(
    'flags',
    'Hack flags by kind',
  )(
    table(
      ['flag', 'count'],
      Object.entries(st.flags)
        .sort((a, b) => b[1] - a[1])
        .map(([k, n]) => row([esc(k), n])),
    ),
  );
  section(
    'stages',
    'Stage latency (ms)',
  )(
    table(
      ['stage', 'n', 'p50', 'p90', 'max'],
      Object.entries(st.stages).map(([k, s]) => row([esc(k), s.n, fmt(s.p50, 1), fmt(s.p90, 1), fmt(s.max, 1)])),
    ),
  );
  section(
    'fastp',
    'fast_p: share of episodes correct and faster than p×',
  )(
    table(
      ['task set', 'p = 0', 'p = 1', 'p = 1.2', 'p = 2'],
      Object.entries(st.fastP).map(([set, f]) =>
        row([esc(set), ...['0', '1', '1.2', '2'].map((p) => `${fmt(100 * f[p], 0)}%`)]),
      ),
    ),
  );
}

function sparkline(values) {
  const W = 400,
    H = 80;
  const lo = Math.min(...values),
    hi = Math.max(...values),
    span = hi - lo || 1;
  const pts = values
    .map((v, k) => `${(k / Math.max(1, values.length - 1)) * (W - 10) + 5},${H - 8 - ((v - lo) / span) * (H - 16)}`)
    .join(' ');
  return `<svg viewBox="0 0 ${W} ${H}" width="100%" role="img"><polyline class="bar" points="${pts}" fill="none" stroke="#2f6fde" stroke-width="2"/><text x="0" y="10">${fmt(hi)}</text><text x="0" y="${H - 2}">${fmt(lo)}</text></svg>`;
}

function renderWorkers(workers) {
  section(
    'workers',
    'Workers and devices',
  )(
    table(
      ['worker', 'kind', 'state', 'detail'],
      workers.map((w) => row([esc(w.id), esc(w.kind), esc(w.state), esc(w.detail || '')])),
    ),
  );
}

function renderEpisodes(list, open) {
  section(
    'recent',
    'Recent episodes',
    true,
  )(
    table(
      ['time', 'task', 'group', 'episode', 'turns', 'last outcome', 'best speedup', 'total reward'],
      list.map((e) =>
        row(
          [
            esc(e.time.slice(11, 19)),
            esc(e.task),
            esc(e.group.slice(0, 8)),
            esc(e.episode.slice(0, 8)),
            e.turns,
            pill(e.lastOutcome),
            e.bestSpeedup === null ? '–' : `${fmt(e.bestSpeedup)}×`,
            fmt(e.totalReward, 3),
          ],
          `class="click" data-episode="${esc(e.episode)}"`,
        ),
      ),
    ),
  );
  document
    .querySelectorAll('#recent tr.click')
    .forEach((tr) => tr.addEventListener('click', () => open(tr.dataset.episode)));
}

// ---- the episode view: its conversation turn by turn ----

const C_KEYWORDS = new Set(
  'if else for while do return break continue switch case default goto sizeof static const volatile restrict inline extern register typedef struct union enum'.split(
    ' ',
  ),
);
const C_TYPES = new Set(
  'void int float double char long short unsigned signed size_t int32_t int64_t uint32_t uint64_t uintptr_t bool __m512 __m256 __m128 __m512i __m256i __mmask16'.split(
    ' ',
  ),
);

function highlight(code) {
  const re =
    /(\/\*[\s\S]*?\*\/|\/\/[^\n]*)|("(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*')|(^[ \t]*#[^\n]*)|(\b\d+(?:\.\d+)?(?:e[+-]?\d+)?f?\b)|([A-Za-z_]\w*)/gm;
  let out = '',
    last = 0,
    m;
  while ((m = re.exec(code))) {
    out += esc(code.slice(last, m.index));
    const t = m[0];
    if (m[1]) out += `<span class="cm">${esc(t)}</span>`;
    else if (m[2]) out += `<span class="st">${esc(t)}</span>`;
    else if (m[3]) out += `<span class="pp">${esc(t)}</span>`;
    else if (m[4]) out += `<span class="nu">${esc(t)}</span>`;
    else if (C_KEYWORDS.has(t)) out += `<span class="kw">${esc(t)}</span>`;
    else if (C_TYPES.has(t)) out += `<span class="ty">${esc(t)}</span>`;
    else out += esc(t);
    last = re.lastIndex;
  }
  return out + esc(code.slice(last));
}

function codeOf(reply) {
  const blocks = [...reply.matchAll(/```[^\n]*\n([\s\S]*?)(?:```|$)/g)].map((m) => m[1]);
  return blocks.length ? blocks[blocks.length - 1] : reply;
}

// Line diff (longest common subsequence): what changed since the previous turn.
function diff(a, b) {
  const x = a.split('\n'),
    y = b.split('\n');
  const n = x.length,
    m = y.length;
  const L = Array.from({ length: n + 1 }, () => new Int32Array(m + 1));
  for (let i = n - 1; i >= 0; i--)
    for (let j = m - 1; j >= 0; j--) L[i][j] = x[i] === y[j] ? L[i + 1][j + 1] + 1 : Math.max(L[i + 1][j], L[i][j + 1]);
  const out = [];
  let i = 0,
    j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && x[i] === y[j]) {
      out.push(`<span class="ln">${highlight(y[j]) || ' '}</span>`);
      i++;
      j++;
    } else if (j < m && (i >= n || L[i][j + 1] >= L[i + 1][j]))
      out.push(`<span class="ln add">${highlight(y[j++]) || ' '}</span>`);
    else out.push(`<span class="ln del">${highlight(x[i++]) || ' '}</span>`);
  }
  return out.join('');
}

function renderEpisode(ep) {
  const pane = document.getElementById('episode');
  let prev = null;
  const turns = ep.turns
    .map((t) => {
      const code = codeOf(t.action);
      const shown = prev === null ? highlight(code) : diff(prev, code);
      if (!t.mask) prev = code;
      const ev = t.eval;
      return `<div class="turn"><h3>Turn ${t.turn} ${pill(t.mask ? t.reason || 'env_error' : ev ? ev.outcome : t.reason)} reward ${fmt(t.reward, 3)}${ev && ev.speedup !== null ? ` · speedup ${fmt(ev.speedup)}×` : ''}${t.mask ? ' · masked' : ''}</h3>
        <div class="body">
          <div>${prev !== null && prev !== code ? 'code (changes from the previous turn marked)' : 'code'}</div>
          <pre class="code">${shown}</pre>
          <div>feedback the model saw</div><pre class="feedback">${esc(t.feedback)}</pre>
          <div>reward components: ${esc(JSON.stringify(t.components))}</div>
          ${ev ? `<div>evaluation: ${esc(ev.message)}; stages ${ev.stages.map((s) => `${esc(s.name)} ${esc(s.status)} ${fmt(s.ms, 0)} ms`).join(', ')}${ev.flags.length ? `; flags: ${ev.flags.map((f) => esc(`${f.kind} (${f.evidence})`)).join(', ')}` : ''}</div>` : ''}
        </div></div>`;
    })
    .join('');
  pane.innerHTML = `<button class="close" onclick="document.getElementById('episode').classList.remove('open')">close</button>
    <h2>Episode ${esc(ep.episode)}</h2><p>task <b>${esc(ep.task)}</b> · group ${esc(ep.group)} · seed ${esc(ep.seed)}</p>
    <div>prompt</div><pre class="feedback">${esc(ep.prompt)}</pre>${turns || '<p class="empty">no turns yet</p>'}`;
  pane.classList.add('open');
}

// ---- report mode: everything is in the page ----

function renderReport(data) {
  document.getElementById('subtitle').textContent =
    `report of ${data.source} · ${data.stats.steps} steps · written ${data.written}`;
  renderStats(data.stats, null);
  section(
    'best',
    'Best kernel per task',
    true,
  )(
    table(
      ['task', 'speedup', 'episode', 'turn'],
      data.stats.best.map((b) =>
        row([
          esc(b.task),
          `${fmt(b.speedup)}×`,
          `<a href="#" data-episode="${esc(b.episode)}">${esc(b.episode.slice(0, 8))}</a>`,
          b.turn,
        ]),
      ),
    ),
  );
  section(
    'slowest',
    'Slowest stages',
    true,
  )(
    table(
      ['stage', 'ms', 'task', 'episode', 'turn'],
      data.stats.slowest.map((s) => row([esc(s.stage), fmt(s.ms, 0), esc(s.task), esc(s.episode.slice(0, 8)), s.turn])),
    ),
  );
  const open = (id) => {
    const ep = data.episodes.find((e) => e.episode === id);
    if (ep) renderEpisode(ep);
  };
  document
    .querySelectorAll('#best a[data-episode]')
    .forEach((a) => a.addEventListener('click', (ev) => (ev.preventDefault(), open(a.dataset.episode))));
  renderEpisodes(data.recent, open);
}

// ---- live mode ----

async function refresh() {
  try {
    const s = await api('v1/dashboard/state');
    document.getElementById('subtitle').textContent =
      `${s.status.version} · up ${s.status.uptimeS} s · updated ${new Date().toLocaleTimeString()}`;
    renderStats(s.stats, s.status);
    renderWorkers(s.workers);
    renderEpisodes(s.recent, (id) => api(`v1/dashboard/episodes/${encodeURIComponent(id)}`).then(renderEpisode));
  } catch (e) {
    document.getElementById('subtitle').textContent = `cannot reach the server: ${e.message}`;
  }
}

if (window.ANVIL_DATA) renderReport(window.ANVIL_DATA);
else {
  refresh();
  setInterval(refresh, 2000);
}
