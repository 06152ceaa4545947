// retryd console: a small single-page app over the console's JSON relay (/api/<method>).
//
// Safety rule of this file: everything that comes from the server (service names, message ids,
// payloads, error messages, headers, notes) is untrusted and reaches the page only as text
// (textContent, text nodes, attribute values set through el()); nothing is ever parsed as HTML
// (no innerHTML, no insertAdjacentHTML, no document.write), and links are only ever built by this
// file from '#/...' routes with encodeURIComponent'd values.
'use strict';

const ADMIN = 'retryd.v1.AdminService/';
const PAYLOAD_SHOWN_BYTES = 64 * 1024;
let csrfToken = '';
let refreshTimer = null;

// ---------------------------------------------------------------- DOM helpers

// el('a', {href: '#/x', className: 'c'}, 'text', child...): an element; children are nodes or
// strings (added as text).
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'className') node.className = value;
    else if (key === 'text') node.textContent = String(value);
    else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else if (key === 'href') node.setAttribute('href', safeHref(value));
    // Through the CSSOM: the CSP allows no inline style attributes.
    else if (key === 'style') node.style.cssText = String(value);
    else node.setAttribute(key, value === true ? '' : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

// Only the console's own routes and endpoints are linked to.
function safeHref(href) {
  const s = String(href);
  return (s.startsWith('#/') || s.startsWith('/api/') || s === '/') ? s : '#/overview';
}

function svg(tag, attrs, ...children) {
  const node = document.createElementNS('http://www.w3.org/2000/svg', tag);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, String(value));
  for (const child of children.flat()) {
    if (child === undefined || child === null) continue;
    node.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function view() { return document.getElementById('view'); }

function show(...nodes) {
  const v = view();
  v.replaceChildren(...nodes.flat().filter((n) => n));
}

function route(path, params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (Array.isArray(v)) { if (v.length) q.set(k, v.join(',')); }
    else if (v !== undefined && v !== null && v !== '') q.set(k, v);
  }
  const s = q.toString();
  return '#/' + path + (s ? '?' + s : '');
}

function errorBox(e) {
  const box = el('div', {className: 'error', role: 'alert'});
  box.appendChild(el('strong', {}, (e && e.code) ? e.code.replace(/_/g, ' ') : 'Error'));
  box.appendChild(document.createTextNode(': ' + ((e && e.message) || String(e))));
  if (e && e.field) box.appendChild(el('div', {className: 'small'}, 'Field: ', el('code', {}, e.field)));
  return box;
}

function emptyState(title, hint) {
  return el('div', {className: 'empty'}, el('strong', {}, title), hint || '');
}

function badge(text, kind) { return el('span', {className: 'badge ' + (kind || '')}, text); }

// ---------------------------------------------------------------- formatting

function num(x) { const n = Number(x); return Number.isFinite(n) ? n : 0; }
function fmtInt(x) { return num(x).toLocaleString('en-US'); }

// A protobuf-JSON Duration ("12.5s") in seconds.
function durSeconds(d) {
  if (!d) return 0;
  const m = /^(-?[0-9.]+)s$/.exec(String(d));
  return m ? parseFloat(m[1]) : 0;
}

function fmtAge(seconds) {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return s + ' s';
  const two = (a, unitA, b, unitB) => a + ' ' + unitA + (b ? ' ' + b + ' ' + unitB : '');
  if (s < 3600) return two(Math.floor(s / 60), 'min', s % 60, 's');
  if (s < 86400) return two(Math.floor(s / 3600), 'h', Math.floor((s % 3600) / 60), 'min');
  return two(Math.floor(s / 86400), 'd', Math.floor((s % 86400) / 3600), 'h');
}

function tsDate(ts) {
  if (!ts || ts.startsWith('1970-01-01T00:00:00')) return null;
  const d = new Date(ts);
  return isNaN(d.getTime()) ? null : d;
}

function fmtTs(ts) {
  const d = tsDate(ts);
  if (!d) return '—';
  return d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z').replace('Z', ' UTC');
}

// "2026-12-06 04:20:01 UTC" with "12 min ago" below.
function timeCell(ts) {
  const d = tsDate(ts);
  if (!d) return el('span', {className: 'muted'}, '—');
  const delta = (Date.now() - d.getTime()) / 1000;
  const rel = delta >= 0 ? fmtAge(delta) + ' ago' : 'in ' + fmtAge(-delta);
  return el('span', {title: fmtTs(ts)}, fmtTs(ts), el('span', {className: 'age'}, rel));
}

function clip(text, n) {
  const s = String(text || '');
  return s.length > n ? s.slice(0, n) + '…' : s;
}

// Text shown up to `n` characters, with a button that shows the rest.
function longText(text, n) {
  const s = String(text || '');
  if (s.length <= n) return el('span', {className: 'long'}, s);
  const span = el('span', {className: 'long'}, s.slice(0, n) + '…');
  const more = el('button', {type: 'button', className: 'link small'}, ' show all ' + fmtInt(s.length) + ' characters');
  more.addEventListener('click', () => { span.textContent = s; more.remove(); });
  return el('span', {}, span, more);
}

function circuitBadge(state) {
  const kinds = {CLOSED: 'ok', OPEN: 'bad', HALF_OPEN: 'warn'};
  const label = String(state || 'UNKNOWN').replace('CIRCUIT_STATE_UNSPECIFIED', 'unknown');
  return badge(label.replace('_', ' '), kinds[state] || '');
}

function reasonBadge(reason) {
  const kinds = {NON_RETRYABLE: 'bad', RETRY_EXHAUSTED: 'warn', DEADLINE_EXCEEDED: 'warn', BUDGET_EXHAUSTED: 'info'};
  return badge(String(reason || '—'), kinds[reason] || '');
}

// ---------------------------------------------------------------- the API

class ApiError extends Error {
  constructor(body, status) {
    super(body.message || ('HTTP ' + status));
    this.code = body.code || ('HTTP_' + status);
    this.field = body.field;
    this.status = status;
  }
}

async function post(path, body) {
  const response = await fetch(path, {
    method: 'POST',
    credentials: 'same-origin',
    headers: {'Content-Type': 'application/json', 'X-CSRF-Token': csrfToken},
    body: JSON.stringify(body || {}),
  });
  const data = await response.json().catch(() => ({}));
  if (response.status === 401) {
    window.location.assign('/login');
    throw new ApiError(data, 401);
  }
  if (!response.ok) throw new ApiError(data, response.status);
  return data;
}

function api(method, body) {
  return post('/api/' + (method.includes('/') ? method : ADMIN + method), body);
}

function requestId() {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return 'console-' + Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

// ---------------------------------------------------------------- filters <-> URL

const FILTER_KEYS = [
  ['service', 'service', false], ['code', 'error_codes', true], ['class', 'error_classes', true],
  ['reason', 'reasons', true], ['schema', 'schema_versions', true], ['id', 'message_ids', true],
  ['fingerprint', 'fingerprints', true],
];

function splitList(s) { return String(s || '').split(',').map((x) => x.trim()).filter((x) => x); }

// The API Filter of a route's query parameters.
function filterOf(params) {
  const f = {};
  for (const [key, field, list] of FILTER_KEYS) {
    const v = params.get(key);
    if (!v) continue;
    f[field] = list ? splitList(v) : v;
  }
  for (const bound of ['after', 'before']) {
    const v = params.get(bound);
    if (v) {
      const d = new Date(/Z$|[+-]\d\d:?\d\d$/.test(v) ? v : v + 'Z');
      if (!isNaN(d.getTime())) f[bound] = d.toISOString();
    }
  }
  return f;
}

function filterParams(params) {
  const out = {};
  for (const [key] of FILTER_KEYS) if (params.get(key)) out[key] = params.get(key);
  for (const bound of ['after', 'before']) if (params.get(bound)) out[bound] = params.get(bound);
  return out;
}

// An API Filter as "service=billing error_codes=A,B" (empty fields left out).
function filterText(filter) {
  const parts = [];
  for (const [k, v] of Object.entries(filter || {})) {
    if (Array.isArray(v) ? v.length : v) parts.push(k + '=' + (Array.isArray(v) ? v.join(',') : v));
  }
  return parts.length ? parts.join('  ') : '(everything)';
}

function describeFilter(params) {
  const parts = [];
  for (const [key] of FILTER_KEYS) if (params.get(key)) parts.push(key + ' = ' + params.get(key));
  for (const bound of ['after', 'before']) if (params.get(bound)) parts.push(bound + ' ' + params.get(bound));
  return parts.length ? parts.join(' · ') : 'every dead letter of every service';
}

// ---------------------------------------------------------------- overview

async function pageOverview() {
  const [services, stats] = await Promise.all([api('ListServices', {}), api('GetDeadLetterStats', {})]);
  const list = (services.services || []).slice().sort((a, b) => num(b.dead) - num(a.dead) || a.service.localeCompare(b.service));
  const totals = list.reduce((t, s) => ({scheduled: t.scheduled + num(s.scheduled), leased: t.leased + num(s.leased), dead: t.dead + num(s.dead)}), {scheduled: 0, leased: 0, dead: 0});
  const open = list.filter((s) => s.circuit_state === 'OPEN').length;
  const cards = el('div', {className: 'cards'},
    statCard('Dead letters', fmtInt(totals.dead), totals.dead > 0 ? 'bad' : '', 'stat-dead'),
    statCard('Dead-lettered last hour', fmtInt(stats.dead_lettered_last_hour), num(stats.dead_lettered_last_hour) > 0 ? 'bad' : '', 'stat-last-hour'),
    statCard('Scheduled retries', fmtInt(totals.scheduled), '', 'stat-scheduled'),
    statCard('Leased now', fmtInt(totals.leased), '', 'stat-leased'),
    statCard('Open circuits', fmtInt(open), open > 0 ? 'bad' : '', 'stat-open'),
    statCard('Oldest dead letter', durSeconds(stats.oldest_age) > 0 ? fmtAge(durSeconds(stats.oldest_age)) : '—', '', 'stat-oldest'));
  if (!list.length) {
    show(el('h1', {}, 'Overview'), cards, el('div', {className: 'card'},
      emptyState('No services yet', 'Services appear when a worker reports its first failure or a policy names them.')));
    return;
  }
  const rows = list.map((s) => {
    const oldest = durSeconds(s.oldest_dead_age);
    const escalation = durSeconds(s.policy && s.policy.dead_letter && s.policy.dead_letter.escalation_age);
    const late = escalation > 0 && oldest >= escalation;
    const budget = num(s.budget_remaining);
    const override = s.circuit_override && s.circuit_override !== 'AUTO' && s.circuit_override !== 'CIRCUIT_OVERRIDE_UNSPECIFIED' ? s.circuit_override : '';
    return el('tr', {'data-service': s.service},
      el('td', {}, el('a', {href: route('groups', {service: s.service}), className: 'svc'}, s.service),
        el('span', {className: 'age'}, 'policy ' + (s.policy_name || 'default'))),
      el('td', {className: 'num', 'data-col': 'scheduled'}, fmtInt(s.scheduled)),
      el('td', {className: 'num', 'data-col': 'leased'}, fmtInt(s.leased)),
      el('td', {className: 'num', 'data-col': 'dead'}, num(s.dead) > 0
        ? el('a', {href: route('dead', {service: s.service})}, fmtInt(s.dead)) : '0'),
      el('td', {'data-col': 'oldest'}, oldest > 0
        ? el('span', {}, late ? badge(fmtAge(oldest), 'bad') : fmtAge(oldest),
          el('span', {className: 'age'}, escalation > 0 ? (late ? 'over ' : 'under ') + 'escalation age ' + fmtAge(escalation) : 'no escalation age'))
        : el('span', {className: 'muted'}, '—')),
      el('td', {'data-col': 'circuit'}, circuitBadge(s.circuit_state), override ? el('span', {className: 'age'}, override.replace('_', ' ')) : '',
        ' ', el('a', {href: route('circuit', {service: s.service}), className: 'small'}, 'override…')),
      el('td', {className: 'num', 'data-col': 'budget'}, budget < 0 ? el('span', {className: 'muted'}, 'unlimited') : fmtInt(budget)),
      el('td', {}, el('div', {className: 'actions'},
        el('a', {className: 'button small', href: route('groups', {service: s.service})}, 'Failure groups'),
        el('a', {className: 'button small', href: route('dead', {service: s.service})}, 'Dead letters'))));
  });
  const table = el('div', {className: 'table-wrap'}, el('table', {id: 'services'},
    el('thead', {}, el('tr', {}, el('th', {}, 'Service'), el('th', {className: 'num'}, 'Scheduled'),
      el('th', {className: 'num'}, 'Leased'), el('th', {className: 'num'}, 'Dead'),
      el('th', {}, 'Oldest dead letter'), el('th', {}, 'Circuit'), el('th', {className: 'num'}, 'Budget left'), el('th', {}, ''))),
    el('tbody', {}, rows)));
  const chart = el('div', {className: 'card chart', id: 'chart'}, el('p', {className: 'muted'}, 'Loading the chart…'));
  show(el('h1', {}, 'Overview'), cards, table, el('h2', {}, 'Dead-lettered per hour, last 24 hours'), chart);
  renderHistogram(chart, list.map((s) => s.service));
}

function statCard(label, value, kind, id) {
  return el('div', {className: 'stat ' + (kind || ''), id: id},
    el('div', {className: 'label'}, label), el('div', {className: 'value'}, value));
}

// ---------------------------------------------------------------- the chart (SVG, our own)

const PALETTE = ['#c4320a', '#2f5bd3', '#9a6700', '#1a7f37', '#8250df', '#bf3989', '#0a7ea4', '#57606a'];

async function renderHistogram(box, services) {
  let data;
  try {
    const now = new Date();
    const after = new Date(now.getTime() - 24 * 3600 * 1000);
    data = await api('GetDeadLetterHistogram', {since: after.toISOString(), until: now.toISOString(), bucket_width: '3600s'});
  } catch (e) {
    box.replaceChildren(el('p', {className: 'muted'}, 'The chart is not available: ' + e.message));
    return;
  }
  const series = (data.series || []).filter((s) => (s.counts || []).some((c) => num(c) > 0));
  if (!series.length) {
    box.replaceChildren(emptyState('Nothing dead-lettered in the last 24 hours', ''));
    return;
  }
  box.replaceChildren(drawStackedBars(series, data), legend(series));
}

function legend(series) {
  return el('div', {className: 'actions small legend', style: 'margin-top:8px'}, series.map((s, i) =>
    el('span', {}, el('span', {className: 'badge', style: 'background:' + PALETTE[i % PALETTE.length] + ';color:#fff'}, s.service),
      ' ' + fmtInt((s.counts || []).reduce((a, c) => a + num(c), 0)))));
}

function drawStackedBars(series, data) {
  const buckets = Math.max(...series.map((s) => (s.counts || []).length));
  const start = tsDate(data.since) || new Date(Date.now() - buckets * 3600 * 1000);
  const width = Math.max(1, durSeconds(data.bucket_width) || 3600);
  const totals = Array.from({length: buckets}, (_, i) => series.reduce((a, s) => a + num((s.counts || [])[i]), 0));
  const max = Math.max(1, ...totals);
  const W = 960, H = 190, L = 40, B = 24, T = 8;
  const bw = (W - L - 8) / buckets;
  const root = svg('svg', {viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': 'dead letters per bucket'});
  const ticks = [...new Set([0, Math.round(max / 2), max])];
  for (const tick of ticks) {
    const frac = tick / max;
    const y = T + (H - B - T) * (1 - frac);
    root.appendChild(svg('line', {x1: L, x2: W, y1: y, y2: y, class: 'axis'}));
    root.appendChild(svg('text', {x: L - 6, y: y + 3, 'text-anchor': 'end'}, String(tick)));
  }
  for (let i = 0; i < buckets; i++) {
    let y = H - B;
    series.forEach((s, k) => {
      const c = num((s.counts || [])[i]);
      if (!c) return;
      const h = (H - B - T) * c / max;
      y -= h;
      const rect = svg('rect', {x: L + i * bw + 1, y: y, width: Math.max(1, bw - 2), height: h, fill: PALETTE[k % PALETTE.length], class: 'bar'});
      const when = new Date(start.getTime() + i * width * 1000);
      rect.appendChild(svg('title', {}, s.service + ': ' + c + ' at ' + when.toISOString().slice(11, 16) + ' UTC'));
      root.appendChild(rect);
    });
    if (i % Math.max(1, Math.round(buckets / 8)) === 0) {
      const when = new Date(start.getTime() + i * width * 1000);
      root.appendChild(svg('text', {x: L + i * bw + bw / 2, y: H - 8, 'text-anchor': 'middle'}, when.toISOString().slice(11, 16)));
    }
  }
  return root;
}

// ---------------------------------------------------------------- failure groups

async function pageGroups(params) {
  const service = params.get('service') || '';
  const data = await api('ListFailureGroups', {filter: service ? {service: service} : {}, page_size: 200});
  const groups = data.groups || [];
  const head = [el('div', {className: 'crumbs'}, el('a', {href: '#/overview'}, 'Overview'), ' / ', service || 'all services'),
    el('h1', {}, 'Failure groups', service ? el('span', {className: 'muted'}, ' · ' + service) : '')];
  if (!groups.length) {
    show(head, el('div', {className: 'card'}, emptyState('No dead letters here', 'Nothing of this service is in the dead-letter queue.')));
    return;
  }
  const rows = groups.map((g) => {
    const filter = {service: g.service, fingerprint: g.fingerprint};
    return el('tr', {'data-fingerprint': g.fingerprint},
      el('td', {className: 'num'}, el('strong', {}, fmtInt(g.count))),
      el('td', {}, el('code', {}, g.error_code || '—'), el('span', {className: 'age'}, g.error_class || '')),
      el('td', {className: 'msg'}, el('div', {}, clip(g.normalized_message, 300)),
        el('div', {className: 'age'}, 'sample: ', clip(g.sample_message, 300))),
      el('td', {}, timeCell(g.first_seen)), el('td', {}, timeCell(g.last_seen)),
      el('td', {}, el('div', {className: 'actions'},
        el('a', {className: 'button small', href: route('dead', filter)}, 'Dead letters'),
        el('a', {className: 'button small', href: route('replay', filter)}, 'Replay…'),
        el('a', {className: 'button small', href: route('purge', filter)}, 'Purge…'))));
  });
  show(head, el('div', {className: 'table-wrap'}, el('table', {id: 'groups'},
    el('thead', {}, el('tr', {}, el('th', {className: 'num'}, 'Count'), el('th', {}, 'Error code / class'),
      el('th', {}, 'Message (ids and numbers folded)'), el('th', {}, 'First seen'), el('th', {}, 'Last seen'), el('th', {}, ''))),
    el('tbody', {}, rows))));
}

// ---------------------------------------------------------------- dead letters

const CLASSES = ['TRANSIENT', 'RECOVERABLE', 'PERMANENT'];
const REASONS = ['NON_RETRYABLE', 'RETRY_EXHAUSTED', 'DEADLINE_EXCEEDED', 'BUDGET_EXHAUSTED'];

function filterForm(params, target) {
  const input = (name, label, placeholder, title) => el('div', {},
    el('label', {for: 'f-' + name}, label),
    el('input', {id: 'f-' + name, name: name, value: params.get(name) || '', placeholder: placeholder || '', title: title}));
  const form = el('form', {className: 'card filters', id: 'filters'},
    input('service', 'Service', 'e.g. billing'),
    input('code', 'Error codes', 'CODE_A,CODE_B'),
    input('class', 'Classes', 'e.g. PERMANENT', 'any of: ' + CLASSES.join(', ')),
    input('reason', 'Reasons', 'e.g. RETRY_EXHAUSTED', 'any of: ' + REASONS.join(', ')),
    input('schema', 'Schema versions', 'v1,v2'),
    input('after', 'Dead-lettered after (UTC)', 'YYYY-MM-DDTHH:MM'),
    input('before', 'Before (UTC)', 'YYYY-MM-DDTHH:MM'),
    el('div', {className: 'actions'}, el('button', {type: 'submit', className: 'primary'}, 'Apply'),
      el('a', {className: 'button', href: '#/' + target}, 'Clear')));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const next = {};
    for (const key of ['service', 'code', 'class', 'reason', 'schema', 'after', 'before']) next[key] = form.elements[key].value.trim();
    if (params.get('fingerprint')) next.fingerprint = params.get('fingerprint');
    window.location.hash = route(target, next);
  });
  return form;
}

async function pageDead(params) {
  const pageSize = Math.min(200, Math.max(1, parseInt(params.get('size') || '50', 10) || 50));
  const data = await api('ListDeadLetters', {filter: filterOf(params), page_size: pageSize, page_token: params.get('page') || ''});
  const letters = data.dead_letters || [];
  const fp = filterParams(params);
  const paging = params.get('size') ? Object.assign({size: params.get('size')}, fp) : fp;
  const head = [el('h1', {}, 'Dead letters'), filterForm(params, 'dead'),
    el('div', {className: 'actions', style: 'margin-bottom:12px'},
      el('span', {className: 'muted'}, 'Showing: ' + describeFilter(params)),
      el('a', {className: 'button small', href: route('replay', fp), id: 'replay-these'}, 'Replay these…'),
      el('a', {className: 'button small', href: route('purge', fp), id: 'purge-these'}, 'Purge these…'),
      el('a', {className: 'button small', href: route('dead', fp), title: 'a link to this view (first page)'}, 'Link to this view'))];
  if (!letters.length) {
    show(head, el('div', {className: 'card'}, emptyState(params.get('page') ? 'No more dead letters' : 'No dead letters match', 'Widen the filter, or all is well.')));
    return;
  }
  const rows = letters.map((e) => {
    const err = e.last_error || {};
    return el('tr', {'data-id': e.message_id},
      el('td', {className: 'msg'}, el('a', {href: route('letter', {service: e.service, id: e.message_id}), className: 'mono'}, clip(e.message_id, 80))),
      el('td', {}, e.service),
      el('td', {}, reasonBadge(e.dead_letter_reason)),
      el('td', {}, el('code', {}, clip(err.error_code || '—', 60)), el('span', {className: 'age'}, err.error_class || '')),
      el('td', {className: 'num'}, String(e.attempt) + ' / ' + String(e.max_attempts)),
      el('td', {}, timeCell(e.dead_lettered_at)),
      el('td', {className: 'msg'}, clip(err.message, 200)));
  });
  const pager = el('div', {className: 'pager'},
    params.get('page') ? el('a', {className: 'button small', href: route('dead', paging)}, '« First page') : '',
    data.next_page_token ? el('a', {className: 'button small', id: 'next-page', href: route('dead', Object.assign({}, paging, {page: data.next_page_token}))}, 'Next page »') : el('span', {className: 'muted small'}, 'End of the list'));
  show(head, el('div', {className: 'table-wrap'}, el('table', {id: 'dead'},
    el('thead', {}, el('tr', {}, el('th', {}, 'Message id'), el('th', {}, 'Service'), el('th', {}, 'Reason'),
      el('th', {}, 'Last error'), el('th', {className: 'num'}, 'Attempts'), el('th', {}, 'Dead-lettered'), el('th', {}, 'Message'))),
    el('tbody', {}, rows))), pager);
}

// ---------------------------------------------------------------- one dead letter

function base64Bytes(b64) {
  const bin = atob(b64 || '');
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

function hexDump(bytes) {
  const lines = [];
  for (let i = 0; i < bytes.length; i += 16) {
    const row = Array.from(bytes.slice(i, i + 16));
    const hex = row.map((b) => b.toString(16).padStart(2, '0')).join(' ');
    const ascii = row.map((b) => (b >= 32 && b < 127 ? String.fromCharCode(b) : '.')).join('');
    lines.push(i.toString(16).padStart(8, '0') + '  ' + hex.padEnd(48) + '  ' + ascii);
  }
  return lines.join('\n');
}

// {kind: 'json'|'text'|'hex', text} for the first PAYLOAD_SHOWN_BYTES of a payload.
function payloadViews(bytes) {
  const shown = bytes.slice(0, PAYLOAD_SHOWN_BYTES);
  const views = {hex: hexDump(shown)};
  let text = null;
  try { text = new TextDecoder('utf-8', {fatal: true}).decode(shown); } catch (e) { text = null; }
  if (text !== null) {
    views.text = text;
    if (shown.length === bytes.length) {
      try { views.json = JSON.stringify(JSON.parse(text), null, 2); } catch (e) { /* not JSON */ }
    }
  }
  return views;
}

async function pageLetter(params) {
  const service = params.get('service') || '';
  const id = params.get('id') || '';
  const data = await api('GetEnvelope', {service: service, message_id: id});
  const e = data.envelope || {};
  const err = e.last_error || {};
  const field = (label, value) => [el('dt', {}, label), el('dd', {}, value === undefined || value === '' ? el('span', {className: 'muted'}, '—') : value)];
  const headers = Object.entries(e.headers || {});
  const one = {service: service, id: id};
  const bytes = base64Bytes(e.payload);
  const views = payloadViews(bytes);
  const order = ['json', 'text', 'hex'].filter((k) => views[k] !== undefined);
  const pre = el('pre', {className: 'payload', id: 'payload'});
  const tabs = el('div', {className: 'tabs'});
  const select = (kind) => {
    pre.textContent = views[kind];
    for (const b of tabs.querySelectorAll('button')) b.classList.toggle('on', b.dataset.kind === kind);
  };
  for (const kind of order) tabs.appendChild(el('button', {type: 'button', className: 'small', 'data-kind': kind, onclick: () => select(kind)}, kind.toUpperCase()));
  tabs.appendChild(el('span', {className: 'muted small'}, ' ' + fmtInt(bytes.length) + ' bytes' + (bytes.length > PAYLOAD_SHOWN_BYTES ? ' · first 64 KiB shown' : '') + ' · '));
  tabs.appendChild(el('a', {href: '/api/payload?' + new URLSearchParams({service: service, message_id: id}).toString(), download: 'payload.bin', id: 'download'}, 'Download'));
  select(order[0]);
  const history = (e.history || []).slice().reverse();
  const timeline = history.length ? el('ol', {className: 'timeline', id: 'history'}, history.map((h, i) =>
    el('li', {className: i === 0 ? 'last' : ''},
      el('strong', {}, 'Attempt ' + h.attempt), ' · ', fmtTs(h.failed_at), ' ',
      el('code', {}, h.error_code || '—'), ' ', badge(h.error_class || '—'),
      durSeconds(h.delay) > 0 ? el('span', {className: 'muted'}, ' · next try after ' + fmtAge(durSeconds(h.delay))) : '',
      el('div', {className: 'msg'}, longText(h.message, 400))))) : emptyState('No attempts recorded', '');
  show(el('div', {className: 'crumbs'}, el('a', {href: '#/overview'}, 'Overview'), ' / ',
      el('a', {href: route('dead', {service: service})}, service), ' / dead letter'),
    el('h1', {className: 'mono', id: 'letter-id'}, clip(id, 120)),
    el('div', {className: 'actions', style: 'margin-bottom:14px'},
      el('a', {className: 'button', href: route('replay', one)}, 'Replay this one…'),
      el('a', {className: 'button', href: route('purge', one)}, 'Purge this one…')),
    el('div', {className: 'grid2'},
      el('div', {className: 'card'}, el('h2', {style: 'margin-top:0'}, 'Envelope'), el('dl', {className: 'fields', id: 'fields'},
        field('Service', e.service), field('Message id', el('span', {className: 'mono'}, e.message_id)),
        field('State', badge(e.state || '—')), field('Reason', reasonBadge(e.dead_letter_reason)),
        field('Dead-lettered', timeCell(e.dead_lettered_at)), field('Attempts', e.attempt + ' of ' + e.max_attempts),
        field('Last error code', el('code', {}, err.error_code || '—')), field('Last error class', err.error_class),
        field('Last error', err.message ? longText(err.message, 400) : ''), field('HTTP status', err.http_status ? String(err.http_status) : ''),
        field('First seen', timeCell(e.first_seen_at)), field('Retry life started', timeCell(e.retry_life_started_at)),
        field('Trace id', e.trace_id), field('Source', e.source), field('Content type', e.content_type),
        field('Schema version', e.schema_version), field('Created', timeCell(e.created_at)), field('Updated', timeCell(e.updated_at)))),
      el('div', {className: 'card'}, el('h2', {style: 'margin-top:0'}, 'Attempt history'), timeline)),
    el('div', {className: 'card'}, el('h2', {style: 'margin-top:0'}, 'Headers'),
      headers.length ? el('table', {id: 'headers'}, el('tbody', {}, headers.map(([k, v]) =>
        el('tr', {}, el('td', {className: 'mono'}, k), el('td', {className: 'msg mono'}, longText(v, 400)))))) : el('p', {className: 'muted'}, 'No headers.')),
    el('div', {className: 'card'}, el('h2', {style: 'margin-top:0'}, 'Payload'), tabs, pre));
}

// ---------------------------------------------------------------- replay

function sampleTable(sample) {
  if (!sample || !sample.length) return el('p', {className: 'muted'}, 'No sample.');
  return el('div', {className: 'table-wrap'}, el('table', {className: 'sample'},
    el('thead', {}, el('tr', {}, el('th', {}, 'Message id'), el('th', {}, 'Service'), el('th', {}, 'Error code'), el('th', {}, 'Message'))),
    el('tbody', {}, sample.slice(0, 20).map((e) => el('tr', {},
      el('td', {className: 'mono'}, el('a', {href: route('letter', {service: e.service, id: e.message_id})}, clip(e.message_id, 60))),
      el('td', {}, e.service), el('td', {}, el('code', {}, (e.last_error || {}).error_code || '—')),
      el('td', {className: 'msg'}, clip((e.last_error || {}).message, 160)))))));
}

function pageReplay(params) {
  const filter = filterOf(params);
  const result = el('div', {id: 'dry-run'});
  const form = el('form', {className: 'card filters', id: 'replay-form'},
    el('div', {}, el('label', {for: 'rate'}, 'Max per second'), el('input', {id: 'rate', name: 'rate', type: 'number', min: '0', step: 'any', placeholder: 'policy default'})),
    el('div', {}, el('label', {for: 'limit'}, 'Limit'), el('input', {id: 'limit', name: 'limit', type: 'number', min: '0', placeholder: 'no limit'})),
    el('div', {}, el('label', {for: 'canary'}, 'Canary count'), el('input', {id: 'canary', name: 'canary', type: 'number', min: '0', value: '0'})),
    el('div', {}, el('label', {for: 'reset'}, 'Reset attempts'), el('select', {id: 'reset', name: 'reset'}, el('option', {value: 'true'}, 'yes: a new retry life'), el('option', {value: 'false'}, 'no: keep counting'))),
    el('div', {style: 'grid-column: span 2'}, el('label', {for: 'note'}, 'Note (audit log)'), el('input', {id: 'note', name: 'note', placeholder: 'why: e.g. INC-123 downstream fixed'})),
    el('div', {className: 'actions'}, el('button', {type: 'submit', className: 'primary', id: 'dry-run-button'}, 'Dry run')));
  const request = (dryRun) => {
    const body = {filter: filter, dry_run: dryRun, note: form.elements.note.value, reset_attempts: form.elements.reset.value === 'true',
      canary_count: parseInt(form.elements.canary.value || '0', 10) || 0};
    if (form.elements.rate.value) body.max_per_second = parseFloat(form.elements.rate.value);
    if (form.elements.limit.value) body.limit = form.elements.limit.value;
    if (!dryRun) body.request_id = requestId();
    return body;
  };
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    result.replaceChildren(el('p', {className: 'muted'}, 'Counting…'));
    try {
      const dry = await api('StartReplay', request(true));
      const count = num(dry.matched);
      if (!count) {
        result.replaceChildren(el('div', {className: 'card'}, emptyState('Nothing to replay', 'No dead letter matches this filter.')));
        return;
      }
      const start = el('button', {type: 'button', className: 'danger', id: 'start-replay'}, 'Replay ' + fmtInt(count) + ' dead letter' + (count === 1 ? '' : 's'));
      start.addEventListener('click', async () => {
        start.disabled = true;
        try {
          const live = await api('StartReplay', request(false));
          window.location.hash = route('replay-status', {name: live.name});
        } catch (e) {
          start.disabled = false;
          result.appendChild(errorBox(e));
        }
      });
      result.replaceChildren(el('div', {className: 'card'},
        el('h2', {style: 'margin-top:0'}, 'Dry run: ', el('span', {id: 'dry-count'}, fmtInt(count)), ' dead letters would be replayed'),
        num(dry.skipped_blocked_schema) ? el('p', {}, fmtInt(dry.skipped_blocked_schema) + ' would be skipped (blocked schema version).') : '',
        sampleTable(dry.sample), el('div', {className: 'confirm actions'}, el('span', {}, 'Nothing has changed yet.'), start)));
    } catch (e) {
      result.replaceChildren(errorBox(e));
    }
  });
  show(el('h1', {}, 'Replay dead letters'), el('p', {className: 'notice'}, 'Filter: ' + describeFilter(params)), form, result);
}

async function pageReplayStatus(params) {
  const name = params.get('name') || '';
  const box = el('div', {id: 'replay-status'});
  show(el('div', {className: 'crumbs'}, el('a', {href: '#/replays'}, 'Replays'), ' / ', name), el('h1', {}, 'Replay'), box);
  let last = null;
  const tick = async () => {
    let r;
    try { r = await api('GetReplay', {name: name}); } catch (e) { box.replaceChildren(errorBox(e)); return; }
    const done = ['REPLAY_SUCCEEDED', 'REPLAY_FAILED', 'REPLAY_CANCELLED'].includes(r.state);
    const matched = num(r.matched);
    const handled = num(r.replayed) + num(r.skipped_blocked_schema) + num(r.failed);
    const pct = matched ? Math.min(100, Math.round(100 * handled / matched)) : (done ? 100 : 0);
    const started = tsDate(r.start_time);
    const ended = tsDate(r.end_time) || new Date();
    const elapsed = started ? Math.max(0.001, (ended - started) / 1000) : 0;
    const rate = elapsed ? num(r.replayed) / elapsed : 0;
    const canary = num(r.canary_count);
    let canaryText = 'no canary';
    if (canary) {
      if (r.state === 'REPLAY_FAILED' && /canary/i.test(r.error || '')) canaryText = 'failed: ' + r.error;
      else if (num(r.replayed) > canary || r.state === 'REPLAY_SUCCEEDED') canaryText = 'passed (' + canary + ' replayed first, none dead-lettered again)';
      else canaryText = 'waiting for the outcomes of the first ' + canary;
    }
    const cancel = el('button', {type: 'button', className: 'danger', id: 'cancel-replay', disabled: done}, 'Cancel replay');
    cancel.addEventListener('click', async () => {
      if (!window.confirm('Cancel this replay? Envelopes already replayed stay scheduled.')) return;
      cancel.disabled = true;
      try { await api('CancelReplay', {name: name}); tick(); } catch (e) { box.appendChild(errorBox(e)); }
    });
    const stateKind = {REPLAY_SUCCEEDED: 'ok', REPLAY_FAILED: 'bad', REPLAY_CANCELLED: 'warn', REPLAY_RUNNING: 'info'}[r.state] || '';
    box.replaceChildren(el('div', {className: 'card'},
      el('div', {className: 'actions', style: 'justify-content:space-between'},
        el('span', {}, badge(String(r.state || '').replace('REPLAY_', ''), stateKind), ' ', el('span', {className: 'muted'}, 'by ' + (r.created_by || '?') + ' · ' + fmtTs(r.create_time))), done ? '' : cancel),
      el('p', {}, el('strong', {id: 'replay-progress'}, fmtInt(handled) + ' of ' + fmtInt(matched)), ' handled · ',
        fmtInt(r.replayed) + ' replayed, ' + fmtInt(r.skipped_blocked_schema) + ' skipped, ' + fmtInt(r.failed) + ' failed'),
      el('div', {className: 'progress ' + (r.state === 'REPLAY_SUCCEEDED' ? 'done' : r.state === 'REPLAY_FAILED' ? 'failed' : '')},
        el('div', {style: 'width:' + pct + '%'})),
      el('dl', {className: 'fields', style: 'margin-top:14px'},
        el('dt', {}, 'Rate'), el('dd', {id: 'replay-rate'}, rate.toFixed(1) + ' /s (cap ' + (num(r.max_per_second) || 'policy') + ' /s)'),
        el('dt', {}, 'Canary'), el('dd', {id: 'replay-canary'}, canaryText),
        el('dt', {}, 'Filter'), el('dd', {className: 'mono'}, filterText(r.filter)),
        el('dt', {}, 'Note'), el('dd', {}, r.note || '—'),
        r.error ? [el('dt', {}, 'Error'), el('dd', {className: 'error'}, r.error)] : '')));
    last = r;
    if (!done) refreshTimer = setTimeout(tick, 1000);
  };
  await tick();
  return last;
}

async function pageReplays() {
  const data = await api('ListReplays', {page_size: 100});
  const list = data.replays || [];
  if (!list.length) {
    show(el('h1', {}, 'Replays'), el('div', {className: 'card'}, emptyState('No replays yet', 'Start one from a failure group or the dead-letter list.')));
    return;
  }
  show(el('h1', {}, 'Replays'), el('div', {className: 'table-wrap'}, el('table', {id: 'replays'},
    el('thead', {}, el('tr', {}, el('th', {}, 'Replay'), el('th', {}, 'State'), el('th', {className: 'num'}, 'Matched'),
      el('th', {className: 'num'}, 'Replayed'), el('th', {}, 'Created'), el('th', {}, 'By'), el('th', {}, 'Note'))),
    el('tbody', {}, list.map((r) => el('tr', {},
      el('td', {}, el('a', {href: route('replay-status', {name: r.name})}, r.name), r.dry_run ? el('span', {className: 'age'}, 'dry run') : ''),
      el('td', {}, badge(String(r.state || '').replace('REPLAY_', ''))),
      el('td', {className: 'num'}, fmtInt(r.matched)), el('td', {className: 'num'}, fmtInt(r.replayed)),
      el('td', {}, timeCell(r.create_time)), el('td', {}, r.created_by || ''), el('td', {className: 'msg'}, clip(r.note, 120))))))));
}

// ---------------------------------------------------------------- purge

function pagePurge(params) {
  const filter = filterOf(params);
  const all = Object.keys(filter).length === 0;
  const result = el('div', {id: 'purge-result'});
  const note = el('input', {id: 'purge-note', placeholder: 'why: e.g. test traffic, never fixable'});
  const dryButton = el('button', {type: 'button', className: 'primary', id: 'purge-dry-run'}, 'Dry run');
  dryButton.addEventListener('click', async () => {
    result.replaceChildren(el('p', {className: 'muted'}, 'Counting…'));
    try {
      const dry = await api('PurgeDeadLetters', {filter: filter, dry_run: true, all: all, note: note.value});
      const count = num(dry.count);
      if (!count) {
        result.replaceChildren(el('div', {className: 'card'}, emptyState('Nothing to purge', 'No dead letter matches this filter.')));
        return;
      }
      const phrase = 'purge ' + count;
      const typed = el('input', {id: 'purge-confirm', placeholder: phrase, autocomplete: 'off'});
      const go = el('button', {type: 'button', className: 'danger', id: 'purge-go', disabled: true}, 'Purge ' + fmtInt(count) + ' for good');
      typed.addEventListener('input', () => { go.disabled = typed.value.trim() !== phrase; });
      go.addEventListener('click', async () => {
        if (typed.value.trim() !== phrase) return;
        go.disabled = true;
        try {
          const done = await api('PurgeDeadLetters', {filter: filter, dry_run: false, all: all, note: note.value, request_id: requestId()});
          result.replaceChildren(el('div', {className: 'notice', id: 'purge-done'}, 'Purged ' + fmtInt(done.count) + ' dead letters. The audit log has the record.'));
        } catch (e) { go.disabled = false; result.appendChild(errorBox(e)); }
      });
      result.replaceChildren(el('div', {className: 'card'},
        el('h2', {style: 'margin-top:0'}, 'Dry run: ', el('span', {id: 'purge-count'}, fmtInt(count)), ' dead letters would be deleted'),
        sampleTable(dry.sample),
        el('div', {className: 'confirm'}, el('label', {for: 'purge-confirm'}, 'Purged dead letters cannot be replayed. Type ', el('code', {}, phrase), ' to confirm.'),
          el('div', {className: 'actions'}, typed, go))));
    } catch (e) { result.replaceChildren(errorBox(e)); }
  });
  show(el('h1', {}, 'Purge dead letters'),
    el('p', {className: all ? 'error' : 'notice'}, 'Filter: ' + describeFilter(params)),
    el('div', {className: 'card'}, el('label', {for: 'purge-note'}, 'Note (audit log)'), note,
      el('div', {className: 'actions', style: 'margin-top:10px'}, dryButton)), result);
}

// ---------------------------------------------------------------- circuit

async function pageCircuit(params) {
  const service = params.get('service') || '';
  const c = await api('retryd.v1.RetryService/GetCircuit', {service: service});
  const choice = el('select', {id: 'override'}, ['AUTO', 'FORCE_OPEN', 'FORCE_CLOSED'].map((o) => el('option', {value: o}, o.replace('_', ' '))));
  const note = el('input', {id: 'circuit-note', placeholder: 'why: e.g. INC-123, downstream down'});
  const out = el('div', {id: 'circuit-result'});
  const apply = el('button', {type: 'button', className: 'danger', id: 'apply-override'}, 'Apply');
  apply.addEventListener('click', async () => {
    if (!note.value.trim()) { out.replaceChildren(errorBox({code: 'NOTE_REQUIRED', message: 'say why in the note: it goes to the audit log'})); return; }
    apply.disabled = true;
    try {
      const r = await api('SetCircuitOverride', {service: service, override: choice.value, note: note.value});
      out.replaceChildren(el('div', {className: 'notice'}, 'Circuit of ' + service + ' is now ', circuitBadge(r.state), ' (override ' + r.override + ').'));
      document.getElementById('circuit-state').replaceChildren(circuitBadge(r.state), el('span', {className: 'age'}, 'override ' + r.override));
    } catch (e) { out.replaceChildren(errorBox(e)); }
    apply.disabled = false;
  });
  show(el('div', {className: 'crumbs'}, el('a', {href: '#/overview'}, 'Overview'), ' / ', service),
    el('h1', {}, 'Circuit · ', service),
    el('div', {className: 'card'}, el('dl', {className: 'fields'},
      el('dt', {}, 'State'), el('dd', {id: 'circuit-state'}, circuitBadge(c.state)),
      el('dt', {}, 'Since'), el('dd', {}, timeCell(c.since)),
      el('dt', {}, 'Next probe'), el('dd', {}, timeCell(c.next_probe_at)),
      el('dt', {}, 'Failure rate'), el('dd', {}, (100 * num(c.failure_rate)).toFixed(1) + ' %'))),
    el('div', {className: 'card'}, el('h2', {style: 'margin-top:0'}, 'Override'),
      el('p', {className: 'muted'}, 'FORCE OPEN holds every retry of this service (nothing is leased); FORCE CLOSED leases whatever the failure rate; AUTO lets the breaker decide.'),
      el('div', {className: 'override-form'}, el('div', {}, el('label', {for: 'override'}, 'Override'), choice),
        el('div', {}, el('label', {for: 'circuit-note'}, 'Note (required, audit log)'), note),
        el('div', {}, apply)), out));
}

// ---------------------------------------------------------------- audit log

const AUDIT_FILTERS = [['method', 'methods'], ['identity', 'identities'], ['target', 'targets'], ['result', 'result_codes']];

async function pageAudit(params) {
  const body = {page_size: 100, page_token: params.get('page') || ''};
  for (const [key, field] of AUDIT_FILTERS) {
    if (params.get(key)) body[field] = splitList(params.get(key));
  }
  for (const bound of ['since', 'until']) {
    const v = params.get(bound);
    if (v) {
      const d = new Date(/Z$|[+-]\d\d:?\d\d$/.test(v) ? v : v + 'Z');
      if (!isNaN(d.getTime())) body[bound] = d.toISOString();
    }
  }
  const labels = {method: 'Operation', identity: 'Who', target: 'Target', result: 'Result code', since: 'Since (UTC)', until: 'Until (UTC)'};
  const hints = {method: 'e.g. PurgeDeadLetters', identity: 'token name', target: 'billing or replays/7', result: 'OK', since: 'YYYY-MM-DDTHH:MM', until: 'YYYY-MM-DDTHH:MM'};
  const form = el('form', {className: 'card filters', id: 'audit-filters'},
    Object.keys(labels).map((k) => el('div', {}, el('label', {for: 'a-' + k}, labels[k]),
      el('input', {id: 'a-' + k, name: k, value: params.get(k) || '', placeholder: hints[k]}))),
    el('div', {className: 'actions'}, el('button', {type: 'submit', className: 'primary'}, 'Apply'), el('a', {className: 'button', href: '#/audit'}, 'Clear')));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const next = {};
    for (const k of Object.keys(labels)) next[k] = form.elements[k].value.trim();
    window.location.hash = route('audit', next);
  });
  let data;
  try { data = await api('ListAuditEvents', body); } catch (e) {
    show(el('h1', {}, 'Audit log'), form, errorBox(e));
    return;
  }
  const events = data.events || [];
  const head = [el('h1', {}, 'Audit log'), form];
  if (!events.length) {
    show(head, el('div', {className: 'card'}, emptyState('No audit events', 'Every replay, purge and circuit override is recorded here.')));
    return;
  }
  const keep = {};
  for (const k of Object.keys(labels)) if (params.get(k)) keep[k] = params.get(k);
  show(head, el('div', {className: 'table-wrap'}, el('table', {id: 'audit'},
    el('thead', {}, el('tr', {}, el('th', {}, 'Time'), el('th', {}, 'Who'), el('th', {}, 'Operation'), el('th', {}, 'Target'),
      el('th', {className: 'num'}, 'Count'), el('th', {}, 'Result'), el('th', {}, 'Note'))),
    el('tbody', {}, events.map((a) => el('tr', {},
      el('td', {}, timeCell(a.time)), el('td', {}, a.identity, a.peer && a.peer !== 'unknown' ? el('span', {className: 'age'}, a.peer) : ''),
      el('td', {}, String(a.method || '').replace(/^.*\//, ''), a.dry_run ? el('span', {className: 'age'}, 'dry run') : ''),
      el('td', {className: 'msg mono'}, clip(a.target, 160)), el('td', {className: 'num'}, fmtInt(a.affected_count)),
      el('td', {}, badge(a.result_code || 'OK', (a.result_code || 'OK') === 'OK' ? 'ok' : 'bad')),
      el('td', {className: 'msg'}, clip(a.note, 200))))))),
  el('div', {className: 'pager'}, data.next_page_token ? el('a', {className: 'button small', href: route('audit', Object.assign({}, keep, {page: data.next_page_token}))}, 'Older »') : el('span', {className: 'muted small'}, 'End of the log')));
}

// ---------------------------------------------------------------- router

const PAGES = {
  overview: pageOverview, groups: pageGroups, dead: pageDead, letter: pageLetter, replay: pageReplay,
  'replay-status': pageReplayStatus, replays: pageReplays, purge: pagePurge, circuit: pageCircuit, audit: pageAudit,
};

async function render() {
  if (refreshTimer) { clearTimeout(refreshTimer); refreshTimer = null; }
  delete document.body.dataset.ready;
  const hash = window.location.hash.replace(/^#\/?/, '');
  const [path, query] = hash.split('?');
  const name = PAGES[path] ? path : 'overview';
  const params = new URLSearchParams(query || '');
  for (const a of document.querySelectorAll('#nav a')) {
    const page = a.dataset.page;
    a.classList.toggle('active', page === name || (page === 'dead' && name === 'letter') || (page === 'replays' && name.startsWith('replay')));
  }
  document.title = name.replace('-', ' ') + ' · retryd console';
  try {
    await PAGES[name](params);
  } catch (e) {
    show(el('h1', {}, 'Something went wrong'), errorBox(e));
  }
  document.body.dataset.ready = name;
}

async function start() {
  try {
    const response = await fetch('/api/session', {credentials: 'same-origin'});
    if (!response.ok) { window.location.assign('/login'); return; }
    const session = await response.json();
    csrfToken = session.csrf_token;
    document.getElementById('identity').textContent = session.identity;
  } catch (e) {
    show(errorBox(e));
    return;
  }
  document.getElementById('logout').addEventListener('click', async () => {
    try { await post('/logout', {}); } finally { window.location.assign('/login'); }
  });
  window.addEventListener('hashchange', render);
  render();
}

start();
