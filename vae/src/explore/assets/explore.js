// The explorer page: sliders hold a latent code, the server decodes it. Every picture is a
// PNG the server computes from the model; this script only builds URLs and tables.
'use strict';

const $ = (id) => document.getElementById(id);
const state = { info: null, code: [], a: 0, b: 1, seed: 1, sliders: new Map() };

function showError(message) {
  const e = $('error');
  e.textContent = message;
  e.hidden = false;
}

// Keeps `img` showing the answer to the newest URL asked for. One request is in flight at a
// time; URLs asked for meanwhile replace each other, so a dragged slider never builds a
// backlog: the image follows as fast as the server decodes, and ends on the last position.
function liveImage(img) {
  let busy = false;
  let pending = null;
  let lastBlob = null;
  const waiters = [];
  async function load(url) {
    if (busy) {
      pending = url;
      return;
    }
    busy = true;
    try {
      const r = await fetch(url);
      if (!r.ok) {
        let reason = r.statusText;
        try { reason = (await r.json()).error; } catch (_) { /* not JSON */ }
        showError(`${url.split('?')[0]}: ${r.status} ${reason}`);
      } else {
        lastBlob = await r.blob();
        const old = img.src;
        img.src = URL.createObjectURL(lastBlob);
        if (old.startsWith('blob:')) URL.revokeObjectURL(old);
        const ms = r.headers.get('X-Decode-Ms');
        if (ms !== null) $('timing').textContent = `last decode ${parseFloat(ms).toFixed(1)} ms`;
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
  load.blob = () => lastBlob;
  return load;
}

const show = {};

function decodeCode() {
  show.decoded(`/api/decode.png?z=${state.code.map((v) => v.toFixed(4)).join(',')}`);
}

function updateMix() {
  const w = parseFloat($('weight').value);
  $('weight-value').textContent = w.toFixed(2);
  const negate = $('negate-b').checked ? 1 : 0;
  show.mix(`/api/mix.png?a=${state.a}&b=${state.b}&w=${w}&negate_b=${negate}`);
}

function updateSamples() {
  $('seed').textContent = `seed ${state.seed}`;
  show.samples(`/api/samples.png?seed=${state.seed}&n=${Math.min(32, state.info.max_samples)}`);
}

// Sets the code, moves the sliders to it (a slider stops at ±3; its number shows the value).
function setCode(code) {
  state.code = code.slice();
  for (const [j, { input, output }] of state.sliders) {
    input.value = String(Math.max(-3, Math.min(3, state.code[j])));
    output.value = state.code[j].toFixed(2);
  }
  decodeCode();
}

function buildSliders(info) {
  const box = $('sliders');
  for (const { index, kl } of info.dims) {
    const label = document.createElement('label');
    label.textContent = `z${index}`;
    label.htmlFor = `z${index}`;
    const input = document.createElement('input');
    Object.assign(input, { type: 'range', id: `z${index}`, min: -3, max: 3, step: 0.01, value: 0 });
    const output = document.createElement('output');
    output.value = '0.00';
    const note = document.createElement('span');
    note.className = 'kl';
    note.textContent = `KL ${kl.toFixed(3)}`;
    input.addEventListener('input', () => {
      state.code[index] = parseFloat(input.value);
      output.value = state.code[index].toFixed(2);
      decodeCode();
    });
    box.append(label, input, output, note);
    state.sliders.set(index, { input, output });
  }
}

async function pick(i, which) {
  state[which] = i;
  for (const img of $('grid').children) {
    img.classList.toggle(which, Number(img.dataset.index) === i);
  }
  $(`${which}-image`).src = `/api/test.png?i=${i}`;
  show[`${which}Recon`](`/api/recon.png?i=${i}`);
  updateMix();
  if (which === 'a') {
    const r = await fetch(`/api/code?i=${i}`);
    if (!r.ok) {
      showError(`/api/code: ${r.status}`);
      return;
    }
    setCode((await r.json()).mu);
  }
}

function buildGrid(info) {
  for (let i = 0; i < info.grid; i++) {
    const img = document.createElement('img');
    img.src = `/api/test.png?i=${i}`;
    img.alt = `test image ${i}`;
    img.title = `test image ${i}`;
    img.dataset.index = String(i);
    img.addEventListener('click', () => {
      const which = document.querySelector('input[name="pick"]:checked').value;
      pick(i, which);
    });
    $('grid').append(img);
  }
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

// `?selftest=slider`: move the most active dimension's slider to the far end and put the
// decoded image before and after (as data URLs) into #selftest, for the browser test.
async function selftest() {
  await new Promise((resolve) => setTimeout(resolve, 0));
  await show.decoded.idle();
  const asDataUrl = (blob) => new Promise((resolve) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.readAsDataURL(blob);
  });
  const before = await asDataUrl(show.decoded.blob());
  const dim = state.info.dims[0].index;
  const { input } = state.sliders.get(dim);
  input.value = parseFloat(input.value) > 0 ? '-3' : '3';
  input.dispatchEvent(new Event('input'));
  await show.decoded.idle();
  const after = await asDataUrl(show.decoded.blob());
  const out = $('selftest');
  out.textContent = JSON.stringify({ dim, value: parseFloat(input.value), before, after });
  out.hidden = false;
}

async function main() {
  show.decoded = liveImage($('decoded'));
  show.mix = liveImage($('mix'));
  show.samples = liveImage($('samples'));
  show.aRecon = liveImage($('a-recon'));
  show.bRecon = liveImage($('b-recon'));
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
  state.b = Math.min(1, info.grid - 1);
  const [c, h, w] = info.image;
  $('run').textContent = `${info.run}: ${info.arch} on ${info.dataset}, z = ${info.z_dim}, ${c}×${h}×${w}, decoding on ${info.device}`;
  buildSliders(info);
  buildGrid(info);
  buildTraining(info);
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
  await pick(0, 'a');
  if (new URLSearchParams(location.search).get('selftest') === 'slider') await selftest();
}

main();
