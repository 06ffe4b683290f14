// The explorer page: sliders hold a latent code, the server decodes it. Every picture is a
// PNG the server computes from the model; this script only builds URLs and tables.
'use strict';

const $ = (id) => document.getElementById(id);
const state = { info: null, code: [], a: 0, b: 1, seed: 1, page: 0, sliders: new Map() };

// This page's id, sent with its decode requests: when the server is behind, a request of
// this page still waiting to be decoded is answered 204 (superseded) as soon as a newer one
// arrives, and only the newest code is decoded.
const CLIENT_ID = Array.from(crypto.getRandomValues(new Uint8Array(8)), (b) => b.toString(16).padStart(2, '0')).join('');

// Rows and steps of the traversal figure: the most active dimensions, swept over ±3.
const TRAVERSE_ROWS = 8;
const TRAVERSE_STEPS = 9;

function showError(message) {
  const e = $('error');
  e.textContent = message;
  e.hidden = false;
}

// The view in the URL's fragment (images A and B, the code, the mixing weight, the sample seed
// and the grid's page), so that a view can be reloaded and shared. Rewritten on every change.
function writeState() {
  const w = parseFloat($('weight').value);
  const parts = [`a=${state.a}`, `b=${state.b}`, `page=${state.page}`, `w=${w}`, `neg=${$('negate-b').checked ? 1 : 0}`,
    `seed=${state.seed}`, `z=${state.code.map((v) => v.toFixed(4)).join(',')}`];
  history.replaceState(null, '', `${location.pathname}${location.search}#${parts.join('&')}`);
}

// The view the URL's fragment names, each part checked; what is missing or malformed is left out.
function readState(info) {
  const p = new URLSearchParams(location.hash.slice(1));
  const index = (key) => {
    const v = Number(p.get(key));
    return p.has(key) && Number.isInteger(v) && v >= 0 && v < info.test_images ? v : null;
  };
  const z = (p.get('z') || '').split(',').map(Number);
  const w = Number(p.get('w'));
  const seed = Number(p.get('seed'));
  const page = Number(p.get('page'));
  return {
    a: index('a'),
    b: index('b'),
    z: z.length === info.z_dim && z.every(Number.isFinite) ? z : null,
    w: p.has('w') && w >= 0 && w <= 1 ? w : null,
    neg: p.get('neg') === '1',
    seed: Number.isInteger(seed) && seed > 0 ? seed : null,
    page: Number.isInteger(page) && page >= 0 && page * info.grid < info.test_images ? page : null,
  };
}

// Keeps `img` showing the answer to the newest URL asked for. One request is in flight at a
// time; URLs asked for meanwhile replace each other, so a dragged slider never builds a
// backlog: the image follows as fast as the server decodes, and ends on the last position.
// `label` names what the image is in the header's timing line ("the code", "32 samples", ...).
function liveImage(img, label) {
  let busy = false;
  let pending = null;
  let lastBytes = null;
  const waiters = [];
  async function load(url) {
    if (busy) {
      pending = url;
      return;
    }
    busy = true;
    try {
      const r = await fetch(url);
      if (r.status === 204) {
        // Superseded by a newer request of this page; its answer shows instead.
      } else if (!r.ok) {
        let reason = r.statusText;
        try { reason = (await r.json()).error; } catch (_) { /* not JSON */ }
        showError(`${url.split('?')[0]}: ${r.status} ${reason}`);
      } else {
        lastBytes = new Uint8Array(await r.arrayBuffer());
        const old = img.src;
        img.src = URL.createObjectURL(new Blob([lastBytes], { type: r.headers.get('Content-Type') ?? 'image/png' }));
        if (old.startsWith('blob:')) URL.revokeObjectURL(old);
        const ms = r.headers.get('X-Decode-Ms');
        if (ms !== null) $('timing').textContent = `last decode: ${label}, ${parseFloat(ms).toFixed(1)} ms`;
        // A request that succeeds clears the last one's error.
        $('error').hidden = true;
      }
    } catch (e) {
      showError(`${url.split('?')[0]}: ${e}`);
    }
    busy = false;
    if (pending !== null) {
      const next = pending;
      pending = null;
      load(next);
    } else {
      waiters.splice(0).forEach((resolve) => resolve());
    }
  }
  // Resolves once the newest URL asked for has been answered.
  load.idle = () => (busy || pending !== null ? new Promise((resolve) => waiters.push(resolve)) : Promise.resolve());
  // The last image as a data URL, built synchronously: headless Chromium's virtual time waits
  // for a fetch and its body but not for a file reader's read, so a self-test awaiting one could
  // be dumped before it ends (explore_cli's browser tests say more).
  load.dataUrl = () => {
    let text = '';
    for (let i = 0; i < lastBytes.length; i += 0x8000) text += String.fromCharCode(...lastBytes.subarray(i, i + 0x8000));
    return `data:image/png;base64,${btoa(text)}`;
  };
  return load;
}

const show = {};

function decodeCode() {
  const z = state.code.map((v) => v.toFixed(4)).join(',');
  show.decoded(`/api/decode.png?z=${z}&client=${CLIENT_ID}`);
  const dims = state.info.dims.slice(0, TRAVERSE_ROWS).map((d) => d.index).join(',');
  show.traversal(`/api/traverse.png?z=${z}&dims=${dims}&steps=${TRAVERSE_STEPS}`);
  writeState();
}

function updateMix() {
  const w = parseFloat($('weight').value);
  $('weight-value').textContent = w.toFixed(2);
  const negate = $('negate-b').checked ? 1 : 0;
  show.mix(`/api/mix.png?a=${state.a}&b=${state.b}&w=${w}&negate_b=${negate}`);
  writeState();
}

function updateSamples() {
  $('seed').textContent = `seed ${state.seed}`;
  show.samples(`/api/samples.png?seed=${state.seed}&n=${Math.min(32, state.info.max_samples)}`);
  writeState();
}

// Sets the code, moves the sliders to it (a slider stops at ±3; its box shows the value).
function setCode(code) {
  state.code = code.slice();
  for (const [j, { input, box }] of state.sliders) {
    input.value = String(Math.max(-3, Math.min(3, state.code[j])));
    box.value = state.code[j].toFixed(2);
  }
  decodeCode();
}

// Sets one dimension of the code (a slider moved, a value typed, a reset).
function setDim(j, value) {
  const code = state.code.slice();
  code[j] = value;
  setCode(code);
}

// One row per latent dimension: its name (a button that resets it to 0), a slider over ±3, a
// box to type any value within the server's ±100, and its KL.
function buildSliders(info) {
  const rows = $('sliders');
  for (const { index, kl } of info.dims) {
    const reset = document.createElement('button');
    Object.assign(reset, { type: 'button', className: 'dim', textContent: `z${index}`, title: `reset z${index} to 0` });
    const input = document.createElement('input');
    Object.assign(input, { type: 'range', id: `z${index}`, min: -3, max: 3, step: 0.01, value: 0 });
    input.setAttribute('aria-label', `z${index}`);
    const box = document.createElement('input');
    Object.assign(box, { type: 'number', min: -100, max: 100, step: 0.01, value: '0.00', className: 'value' });
    box.setAttribute('aria-label', `z${index} value`);
    const note = document.createElement('span');
    note.className = 'kl';
    note.textContent = `KL ${kl.toFixed(3)}`;
    input.addEventListener('input', () => setDim(index, parseFloat(input.value)));
    box.addEventListener('change', () => {
      const v = parseFloat(box.value);
      if (Number.isFinite(v) && Math.abs(v) <= 100) setDim(index, v);
      else box.value = state.code[index].toFixed(2);
    });
    reset.addEventListener('click', () => setDim(index, 0));
    rows.append(reset, input, box, note);
    state.sliders.set(index, { input, box });
  }
  const traversed = info.dims.slice(0, TRAVERSE_ROWS).map((d) => `z${d.index}`);
  $('traversal-rows').textContent = `Rows, top to bottom: ${traversed.join(', ')}; columns from −3 to +3.`;
}

async function pick(i, which, { keepCode = false } = {}) {
  state[which] = i;
  for (const img of $('grid').children) {
    img.classList.toggle(which, Number(img.dataset.index) === i);
  }
  $(`${which}-image`).src = `/api/test.png?i=${i}`;
  show[`${which}Recon`](`/api/recon.png?i=${i}`);
  updateMix();
  if (which === 'a' && !keepCode) {
    const r = await fetch(`/api/code?i=${i}`);
    if (!r.ok) {
      showError(`/api/code: ${r.status}`);
      return;
    }
    setCode((await r.json()).mu);
  }
}

// Shows page `page` of the test images, `info.grid` to a page.
function showPage(info, page) {
  const pages = Math.ceil(info.test_images / info.grid);
  state.page = Math.max(0, Math.min(pages - 1, page));
  const first = state.page * info.grid;
  const last = Math.min(info.test_images, first + info.grid);
  $('page').textContent = `images ${first}–${last - 1} of ${info.test_images}`;
  $('prev-page').disabled = state.page === 0;
  $('next-page').disabled = state.page === pages - 1;
  $('grid').replaceChildren();
  for (let i = first; i < last; i++) {
    const img = document.createElement('img');
    img.src = `/api/test.png?i=${i}`;
    img.alt = `test image ${i}`;
    img.title = `test image ${i}`;
    img.dataset.index = String(i);
    img.addEventListener('click', () => {
      const which = document.querySelector('input[name="pick"]:checked').value;
      pick(i, which);
    });
    img.classList.toggle('a', i === state.a);
    img.classList.toggle('b', i === state.b);
    $('grid').append(img);
  }
  if (state.info) writeState();
}

function cellText(v) {
  if (v === null || v === undefined) return '';
  if (typeof v === 'number') return Number.isInteger(v) ? String(v) : (Math.abs(v) >= 1e-3 ? v.toFixed(4) : v.toExponential(3));
  if (typeof v === 'string') return v;
  return JSON.stringify(v);
}

function table(header, rows) {
  const t = document.createElement('table');
  if (header) {
    const tr = t.insertRow();
    for (const h of header) {
      const th = document.createElement('th');
      th.textContent = h;
      tr.append(th);
    }
  }
  for (const row of rows) {
    const tr = t.insertRow();
    row.forEach((v, k) => {
      const td = tr.insertCell();
      td.textContent = cellText(v);
      if (!header && k === 0) td.className = 'key';
    });
  }
  return t;
}

function buildTraining(info) {
  if (info.has_loss_plot) {
    $('loss').src = '/api/loss.png';
    $('loss').hidden = false;
  }
  const { columns, rows } = info.metrics;
  // Columns empty in every row (the β-TCVAE terms of a β-VAE run) are left out.
  const keep = columns.map((_, k) => rows.some((r) => r[k] !== null));
  const pickCols = (r) => r.filter((_, k) => keep[k]);
  $('metrics').append(rows.length ? table(pickCols(columns), rows.map(pickCols)) : 'metrics.csv has no rows.');
  const em = info.eval_metrics;
  $('eval-metrics').append(em ? table(null, Object.entries(em)) : 'eval has not run on this run folder yet.');
  $('config').append(table(null, Object.entries(info.config)));
}

// Self-tests for the browser test, which reads #selftest. `?selftest=slider`: move the most
// active dimension's slider to the far end; report the decoded image and the traversal before
// and after (as data URLs) and the URL's fragment after. `?selftest=state`: report the view
// the page restored from the URL's fragment.
async function selftest(kind) {
  await new Promise((resolve) => setTimeout(resolve, 0));
  await Promise.all([show.decoded.idle(), show.traversal.idle()]);
  let report;
  if (kind === 'slider') {
    const before = show.decoded.dataUrl();
    const traversalBefore = show.traversal.dataUrl();
    const dim = state.info.dims[0].index;
    const { input } = state.sliders.get(dim);
    input.value = parseFloat(input.value) > 0 ? '-3' : '3';
    input.dispatchEvent(new Event('input'));
    await Promise.all([show.decoded.idle(), show.traversal.idle()]);
    const after = show.decoded.dataUrl();
    const traversalAfter = show.traversal.dataUrl();
    report = { dim, value: parseFloat(input.value), before, after, traversalBefore, traversalAfter, hash: location.hash };
  } else {
    report = { a: state.a, b: state.b, page: state.page, seed: state.seed, code: state.code,
      w: parseFloat($('weight').value), neg: $('negate-b').checked };
  }
  const out = $('selftest');
  out.textContent = JSON.stringify(report);
  out.hidden = false;
}

async function main() {
  show.decoded = liveImage($('decoded'), 'the code');
  show.traversal = liveImage($('traversal'), `traversals (${TRAVERSE_STEPS} steps a row)`);
  show.mix = liveImage($('mix'), 'the mixed code');
  show.samples = liveImage($('samples'), 'samples');
  show.aRecon = liveImage($('a-recon'), 'image A reconstructed');
  show.bRecon = liveImage($('b-recon'), 'image B reconstructed');
  let info;
  try {
    const r = await fetch('/api/info');
    info = await r.json();
  } catch (e) {
    showError(`/api/info: ${e}`);
    return;
  }
  state.info = info;
  state.code = new Array(info.z_dim).fill(0);
  const saved = readState(info);
  state.a = saved.a ?? 0;
  state.b = saved.b ?? Math.min(1, info.test_images - 1);
  state.seed = saved.seed ?? 1;
  if (saved.w !== null) $('weight').value = String(saved.w);
  $('negate-b').checked = saved.neg;
  const [c, h, w] = info.image;
  $('run').textContent = `${info.run}: ${info.arch} on ${info.dataset}, z = ${info.z_dim}, ${c}×${h}×${w}, decoding on ${info.device}`;
  buildSliders(info);
  showPage(info, saved.page ?? Math.floor(state.a / info.grid));
  buildTraining(info);
  $('prev-page').addEventListener('click', () => showPage(info, state.page - 1));
  $('next-page').addEventListener('click', () => showPage(info, state.page + 1));
  $('weight').addEventListener('input', updateMix);
  $('negate-b').addEventListener('change', updateMix);
  $('zero').addEventListener('click', () => setCode(new Array(info.z_dim).fill(0)));
  $('to-a').addEventListener('click', () => pick(state.a, 'a'));
  $('random-code').addEventListener('click', () => {
    // Box–Muller: a draw from the prior N(0, I).
    setCode(state.code.map(() => Math.sqrt(-2 * Math.log(1 - Math.random())) * Math.cos(2 * Math.PI * Math.random())));
  });
  $('reseed').addEventListener('click', () => {
    state.seed = 1 + Math.floor(Math.random() * 1e9);
    updateSamples();
  });
  updateSamples();
  await pick(state.b, 'b');
  await pick(state.a, 'a', { keepCode: saved.z !== null });
  if (saved.z !== null) setCode(saved.z);
  const kind = new URLSearchParams(location.search).get('selftest');
  if (kind === 'slider' || kind === 'state') await selftest(kind);
}

main();
