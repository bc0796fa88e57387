// The chunkup web demo: wires the page to the `chunkup` npm package. All
// upload logic (protocols, retries, chunk sizes, resume) is the package's;
// this file only maps its callbacks onto the page.
//
// URL parameters (for tests and experiments): ?server=<origin of the upload
// server>, ?protocol=auto|ranged|tus|ietf, ?chunkSize=<bytes>,
// ?faults=<fault spec used by "break the network">, ?parallel=<n>.

import { createRemembered } from './remembered.js';

const params = new URLSearchParams(location.search);
const $ = (sel) => document.querySelector(sel);

/** How many uploads run at once; the rest wait in the queue. */
const PARALLEL = positiveInt(params.get('parallel')) ?? 3;
const CHUNK_SIZE = positiveInt(params.get('chunkSize')) ?? 'auto';
/** Endpoint paths on the reference server (docs/SERVER.md); auto discovers. */
const ENDPOINT_PATH = { auto: '/tus', ranged: '/ranged', tus: '/tus', ietf: '/ietf' };

const entries = []; // one per file added to the page
let server = location.origin;
/** The fault switch's token, handed to this page in demo-config.json. */
let faultSwitchToken = null;
let Upload;
let renderQueued = false;
const remembered = createRemembered(localStorage, 'chunkup-demo/unfinished');

main().catch((e) => showLoadError(`The demo failed to start: ${e.message ?? e}`));

async function main() {
  const config = await loadConfig();
  faultSwitchToken = config.faultSwitchToken ?? null;
  server = params.get('server') ?? config.uploadServer ?? location.origin;
  server = server.replace(/\/+$/, '');
  const cross = new URL(server).origin !== location.origin;
  $('#server-info').textContent =
    `Uploads go to ${server}` + (cross ? ' (another origin than this page: CORS)' : ' (this page\'s origin)');

  const protocol = params.get('protocol');
  if (protocol && protocol in ENDPOINT_PATH) $('#protocol').value = protocol;

  wireFaultSwitch();
  wireFileInputs();
  renderRemembered();

  try {
    const pkg = await import('./pkg/index.js');
    await pkg.init(); // load the WebAssembly now: a broken build shows here
    Upload = pkg.Upload;
  } catch (e) {
    showLoadError(`Cannot load the chunkup package from ./pkg/ (${e.message ?? e}). ` +
      'Build it with scripts/wasm.sh and start the page with `chunkup serve --web-demo`.');
    return;
  }
  document.body.dataset.ready = 'true';
  for (const entry of entries) if (entry.state === 'waiting-for-package') queue(entry);
}

async function loadConfig() {
  try {
    const resp = await fetch('demo-config.json', { cache: 'no-store' });
    if (resp.ok) return await resp.json();
  } catch { /* a page served without the config: uploads go to its origin */ }
  return {};
}

// ---- "Break the network": the reference server's fault injection ----------

function faultSpec() {
  return params.get('faults') ??
    `seed=${Math.floor(Math.random() * 1e9)},reset=0.1,error=0.1,busy=0.1,retry-after=1`;
}

/** The headers of a fault-switch request (the admin API needs the token). */
function faultHeaders() {
  return faultSwitchToken ? { Authorization: `Bearer ${faultSwitchToken}` } : {};
}

function wireFaultSwitch() {
  const box = $('#break-network');
  box.addEventListener('change', async () => {
    box.disabled = true;
    try {
      const resp = await fetch(`${server}/_admin/faults`, {
        method: 'PUT', body: box.checked ? faultSpec() : 'none', headers: faultHeaders(),
      });
      if (!resp.ok) throw new Error(`${resp.status} ${await resp.text()}`);
    } catch (e) {
      box.checked = !box.checked;
      $('#fault-status').textContent = `Cannot change the faults: ${e.message}`;
    } finally {
      box.disabled = false;
      pollFaults();
    }
  });
  pollFaults();
  setInterval(pollFaults, 1000);
}

async function pollFaults() {
  try {
    const resp = await fetch(`${server}/_admin/faults`, { cache: 'no-store', headers: faultHeaders() });
    if (!resp.ok) {
      $('#fault-status').textContent = `The fault switch is not available here (HTTP ${resp.status}).`;
      return;
    }
    const { spec, counts } = await resp.json();
    const on = spec !== 'none' && spec !== '';
    const box = $('#break-network');
    if (!box.disabled) box.checked = on;
    const total = counts.resets + counts.errors + counts.busy + counts.stalls;
    $('#fault-status').textContent = (on ? 'Faults on. ' : '') + (total
      ? `Injected so far: ${plural(counts.resets, 'reset')}, ${plural(counts.errors, 'error')} (5xx), ` +
        `${counts.busy} busy (503), ${plural(counts.stalls, 'stall')}.`
      : '');
  } catch {
    $('#fault-status').textContent = 'The upload server does not answer.';
  }
}

// ---- Adding files ------------------------------------------------------------

function wireFileInputs() {
  const input = $('#file-input');
  input.addEventListener('change', () => {
    addFiles(input.files);
    input.value = ''; // choosing the same file again (to resume) fires change
  });
  const zone = $('#drop-zone');
  zone.addEventListener('dragover', (e) => { e.preventDefault(); zone.classList.add('over'); });
  zone.addEventListener('dragleave', () => zone.classList.remove('over'));
  zone.addEventListener('drop', (e) => {
    e.preventDefault();
    zone.classList.remove('over');
    addFiles(e.dataTransfer.files);
  });
  // A file dropped next to the zone must not navigate away from the page.
  addEventListener('dragover', (e) => e.preventDefault());
  addEventListener('drop', (e) => e.preventDefault());
}

function addFiles(files) {
  for (const file of files) {
    // A file with an unfinished upload goes back to the same endpoint (part
    // of the package's resume fingerprint), whatever the selector says now.
    const earlier = remembered.find(file);
    const protocol = earlier?.protocol ?? $('#protocol').value;
    const entry = {
      file, protocol, endpoint: earlier?.endpoint ?? server + ENDPOINT_PATH[protocol],
      upload: null, state: 'queued', status: 'Queued',
      acked: 0, sent: 0, total: file.size, speed: 0, eta: null, url: null,
      resumedAt: null, row: null,
    };
    entry.key = remembered.key(file, entry.endpoint);
    // The same file twice at once would be two writers on one upload.
    if (entries.some((e) => e.key === entry.key && !['done', 'cancelled', 'failed', 'stopped'].includes(e.state))) {
      announce(`${file.name} is already in the list`);
      continue;
    }
    entry.row = makeRow(entry);
    entries.push(entry);
    $('#uploads').append(entry.row);
    if (Upload) queue(entry); else setState(entry, 'waiting-for-package', 'Waiting for the package');
  }
  renderRemembered();
  render();
}

function makeRow(entry) {
  const row = $('#upload-row').content.firstElementChild.cloneNode(true);
  row.querySelector('.name').textContent = entry.file.name;
  row.querySelector('.size').textContent = `${formatBytes(entry.total)} · ${entry.protocol}`;
  row.querySelector('.bar').setAttribute('aria-label', `Progress of ${entry.file.name}`);
  const pause = row.querySelector('.pause');
  const stop = row.querySelector('.stop');
  const cancel = row.querySelector('.cancel');
  pause.setAttribute('aria-label', `Pause ${entry.file.name}`);
  stop.setAttribute('aria-label', `Stop ${entry.file.name}`);
  cancel.setAttribute('aria-label', `Cancel ${entry.file.name}`);
  pause.addEventListener('click', () => togglePause(entry));
  stop.addEventListener('click', () => stopUpload(entry));
  cancel.addEventListener('click', () => cancelUpload(entry));
  return row;
}

// ---- Running uploads ---------------------------------------------------------

function queue(entry) {
  setState(entry, 'queued', 'Queued');
  startQueued();
}

function startQueued() {
  let running = entries.filter((e) => e.state === 'uploading').length;
  for (const entry of entries) {
    if (running >= PARALLEL) break;
    if (entry.state !== 'queued') continue;
    running += 1;
    start(entry);
  }
}

function start(entry) {
  setState(entry, 'uploading', 'Starting');
  let upload;
  try {
    upload = new Upload(entry.file, {
      endpoint: entry.endpoint,
      protocol: entry.protocol,
      chunkSize: CHUNK_SIZE,
      // The package announces the file's name and type itself (tus
      // filename/filetype, Content-Disposition); metadata is for extra keys.
      metadata: { source: 'chunkup-web-demo' },
      resume: true,
      onProgress: (p) => onProgress(entry, p),
      onEvent: (e) => onEvent(entry, e),
    });
  } catch (e) {
    fail(entry, e);
    return;
  }
  entry.upload = upload;
  upload.start().then(
    (result) => finish(entry, result),
    (error) => fail(entry, error),
  );
}

function onProgress(entry, p) {
  if (entry.upload === null || !['uploading', 'paused'].includes(entry.state)) return;
  entry.acked = p.bytesAcknowledged;
  entry.sent = Math.max(p.bytesSent, p.bytesAcknowledged);
  entry.total = p.bytesTotal || entry.total;
  entry.speed = p.speed;
  entry.eta = p.etaSeconds;
  if (entry.state === 'uploading') entry.status = resumedNote(entry) || 'Uploading';
  remembered.progress(entry);
  render();
}

/** Maps the package's events (its UploadEvent type) onto the row. */
function onEvent(entry, e) {
  switch (e.type) {
    case 'created':
      entry.url = e.url;
      entry.row.dataset.url = e.url;
      remembered.remember(entry);
      renderRemembered();
      break;
    case 'resumed':
      entry.resumedAt = Number(e.offset);
      entry.acked = Math.max(entry.acked, entry.resumedAt);
      entry.row.dataset.resumedAt = String(entry.resumedAt);
      entry.status = resumedNote(entry);
      announce(`${entry.file.name}: ${entry.status.toLowerCase()}`);
      remembered.remember(entry);
      renderRemembered();
      break;
    case 'discovered':
      if (entry.protocol !== 'auto') return;
      entry.row.querySelector('.size').textContent =
        `${formatBytes(entry.total)} · ${entry.protocol} → ${e.protocol}`;
      break;
    case 'retrying':
      entry.status = `Retrying in ${e.delayMs < 1000 ? `${Math.round(e.delayMs)} ms` : formatDuration(e.delayMs / 1000)}` +
        ` (attempt ${e.attempt}): ${e.reason}`;
      break;
    case 'chunk':
      if (entry.state === 'uploading') entry.status = resumedNote(entry) || 'Uploading';
      break;
    case 'rewound':
      entry.status = 'The server lost some bytes; sending them again';
      break;
    case 'offline':
      entry.speed = 0;
      entry.status = 'Offline — continues when the network is back';
      break;
    case 'online':
      entry.status = 'Back online';
      break;
    case 'storeFailed':
      entry.status = 'Cannot remember this upload (storage full?); it still runs';
      break;
    default:
      return;
  }
  render();
}

function resumedNote(entry) {
  if (entry.resumedAt === null || !entry.total) return '';
  return `Resumed at ${formatPercent(entry.resumedAt / entry.total)}`;
}

function finish(entry, result) {
  entry.upload = null;
  entry.url = result?.url ?? entry.url;
  entry.acked = entry.sent = entry.total;
  entry.eta = 0;
  entry.speed = 0;
  if (entry.url) entry.row.dataset.url = entry.url;
  remembered.forget(entry.key);
  setState(entry, 'done', entry.resumedAt ? `Done (${resumedNote(entry).toLowerCase()})` : 'Done');
  renderRemembered();
  startQueued();
}

function fail(entry, error) {
  entry.upload = null;
  // stop() and terminate() reject start(): expected.
  if (entry.state === 'cancelled' || entry.state === 'stopped') return;
  const kind = error?.kind ? `${error.kind}: ` : '';
  setState(entry, 'failed', `Failed — ${kind}${error?.message ?? error}`);
  entry.speed = 0;
  startQueued();
}

function togglePause(entry) {
  if (entry.state === 'uploading' && entry.upload) {
    entry.upload.pause();
    entry.speed = 0;
    entry.sent = entry.acked; // the request in flight is abandoned
    setState(entry, 'paused', 'Paused');
    startQueued();
  } else if (entry.state === 'paused' && entry.upload) {
    entry.upload.resume();
    setState(entry, 'uploading', resumedNote(entry) || 'Uploading');
  } else if (entry.state === 'failed' || entry.state === 'stopped') {
    // A new Upload for the same file continues from the server's offset.
    queue(entry);
  }
}

/** Ends the upload but keeps it (server and the package's store): Continue, or a reload, goes on. */
async function stopUpload(entry) {
  const upload = entry.upload;
  entry.speed = 0;
  entry.sent = entry.acked;
  setState(entry, 'stopped', 'Stopped — kept on the server; continue any time, even after a reload');
  startQueued();
  if (upload) await upload.stop();
}

/** Ends the upload and removes it from the server (tus termination) and the package's store. */
async function cancelUpload(entry) {
  const upload = entry.upload;
  entry.speed = 0;
  setState(entry, 'cancelled', 'Cancelled');
  remembered.forget(entry.key);
  renderRemembered();
  startQueued();
  if (upload) await upload.terminate();
}

function setState(entry, state, status) {
  entry.state = state;
  entry.status = status;
  const row = entry.row;
  row.dataset.state = state;
  const pause = row.querySelector('.pause');
  const cancel = row.querySelector('.cancel');
  pause.textContent = { paused: 'Resume', failed: 'Retry', stopped: 'Continue' }[state] ?? 'Pause';
  pause.setAttribute('aria-label', `${pause.textContent} ${entry.file.name}`);
  pause.disabled = !['uploading', 'paused', 'failed', 'stopped'].includes(state);
  row.querySelector('.stop').disabled = !['uploading', 'paused'].includes(state);
  cancel.disabled = ['done', 'cancelled'].includes(state);
  row.querySelector('.status').textContent = status;
  if (['paused', 'stopped', 'done', 'failed', 'cancelled'].includes(state)) announce(`${entry.file.name}: ${status}`);
  render();
}

/** One polite live region for state changes (the rows' statuses change too often to be read out). */
function announce(text) {
  $('#announcer').textContent = text;
}

// ---- Rendering ---------------------------------------------------------------

function render() {
  if (renderQueued) return;
  renderQueued = true;
  requestAnimationFrame(() => {
    renderQueued = false;
    for (const entry of entries) renderEntry(entry);
    renderTotal();
  });
}

function renderEntry(entry) {
  const row = entry.row;
  setBar(row.querySelector('.bar'), entry.acked, entry.sent, entry.total);
  row.dataset.acked = String(entry.acked);
  const status = row.querySelector('.status');
  if (status.textContent !== entry.status) status.textContent = entry.status;
  const parts = [`${formatBytes(entry.acked)} of ${formatBytes(entry.total)}`];
  if (entry.state === 'uploading') {
    if (entry.speed > 0) parts.push(`${formatBytes(entry.speed)}/s`);
    if (entry.eta !== null && entry.eta > 0) parts.push(`${formatDuration(entry.eta)} left`);
  }
  row.querySelector('.numbers').textContent = parts.join(' · ');
}

function renderTotal() {
  const live = entries.filter((e) => e.state !== 'cancelled');
  if (live.length === 0) {
    setBar($('#total-bar'), 0, 0, 0);
    $('#total-text').textContent = entries.length ? 'Nothing left to upload.' : 'No uploads yet.';
    return;
  }
  const sum = (f) => live.reduce((n, e) => n + f(e), 0);
  const total = sum((e) => e.total);
  const acked = sum((e) => e.acked);
  const sent = sum((e) => e.sent);
  const speed = sum((e) => (e.state === 'uploading' ? e.speed : 0));
  const done = live.filter((e) => e.state === 'done').length;
  setBar($('#total-bar'), acked, sent, total);
  const parts = [`${done} of ${plural(live.length, 'file')}`, `${formatBytes(acked)} of ${formatBytes(total)}`];
  if (speed > 0) {
    parts.push(`${formatBytes(speed)}/s`);
    parts.push(`${formatDuration((total - acked) / speed)} left`);
  }
  $('#total-text').textContent = parts.join(' · ');
}

function setBar(bar, acked, sent, total) {
  const frac = (n) => (total > 0 ? Math.min(1, n / total) : 0);
  bar.querySelector('.acked').style.width = `${frac(acked) * 100}%`;
  bar.querySelector('.sent').style.width = `${frac(sent) * 100}%`;
  bar.setAttribute('aria-valuenow', String(Math.floor(frac(acked) * 100)));
  bar.setAttribute('aria-valuetext', `${formatPercent(frac(acked))} acknowledged by the server`);
}

function renderRemembered() {
  const active = new Set(entries.filter((e) => e.state !== 'cancelled').map((e) => e.key));
  const items = remembered.list().filter((r) => !active.has(r.key));
  const list = $('#remembered');
  list.replaceChildren(...items.map((r) => {
    const li = document.createElement('li');
    const name = document.createElement('span');
    name.className = 'name';
    name.textContent = r.name;
    const info = document.createElement('span');
    info.className = 'numbers';
    info.textContent = `${formatPercent(r.total ? r.acked / r.total : 0)} of ${formatBytes(r.total)} · ${r.protocol}`;
    // Only the page's list: the package's own record stays, so choosing the
    // file again still resumes it.
    const hide = document.createElement('button');
    hide.type = 'button';
    hide.textContent = 'Hide';
    hide.setAttribute('aria-label', `Hide ${r.name} from this list`);
    hide.addEventListener('click', () => { remembered.forget(r.key); renderRemembered(); });
    li.append(name, info, hide);
    return li;
  }));
  $('#remembered-section').hidden = items.length === 0;
}

function showLoadError(text) {
  const p = $('#load-error');
  p.textContent = text;
  p.hidden = false;
}

// ---- Formatting --------------------------------------------------------------

function positiveInt(text) {
  const n = Number(text);
  return text !== null && Number.isInteger(n) && n > 0 ? n : undefined;
}

function plural(n, word) {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

function formatBytes(n) {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
  return `${i === 0 ? n : n.toFixed(n < 10 ? 1 : 0)} ${units[i]}`;
}

function formatPercent(f) {
  return `${Math.floor(f * 1000) / 10}%`;
}

function formatDuration(seconds) {
  if (!Number.isFinite(seconds)) return '?';
  const s = Math.ceil(seconds);
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${s % 60} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}
