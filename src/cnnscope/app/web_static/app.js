// cnnscope explorer: draw a digit (or pick a test image) and watch every layer respond.
// Plain JavaScript, no libraries. The server sends compact numbers; this page draws them.
"use strict";

const state = {
  info: null,
  lut: null,              // 256 x RGB colour map from the server
  view: null,             // the latest view shown
  generation: 0,          // bumps on every new input; stale answers are dropped
  drawing: { inFlight: false, dirty: false, hasInk: false },
  updates: 0,             // drawing/test views rendered (for tests and the status line)
  selected: null,         // {layer, map}
  confusable: null,
  confusableAt: 0,
  zooToken: 0,
  layout: {},             // layer -> {canvas, cols, tile, scale, count}
};

const $ = (id) => document.getElementById(id);

// ---- helpers -----------------------------------------------------------------------------
function decodeBase64(text) {
  const raw = atob(text);
  const out = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i);
  return out;
}

function encodeBase64(bytes) {
  let text = "";
  const chunk = 0x8000;
  for (let i = 0; i < bytes.length; i += chunk) {
    text += String.fromCharCode.apply(null, bytes.subarray(i, i + chunk));
  }
  return btoa(text);
}

async function api(path, options) {
  const response = await fetch(path, options);
  let body = null;
  try { body = await response.json(); } catch (e) { body = null; }
  if (!response.ok) {
    const message = body && body.error ? body.error : `${response.status} ${response.statusText}`;
    throw new Error(message);
  }
  return body;
}

function setStatus(text, isError) {
  const el = $("status");
  el.textContent = text;
  el.classList.toggle("error", !!isError);
}

function postJSON(path, payload) {
  return api(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(payload) });
}

// ---- drawing canvas ------------------------------------------------------------------------
function setupCanvas() {
  const canvas = $("draw");
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  clearCanvas();
  let last = null;

  function point(event) {
    const rect = canvas.getBoundingClientRect();
    return [(event.clientX - rect.left) * canvas.width / rect.width,
            (event.clientY - rect.top) * canvas.height / rect.height];
  }
  const PEN = 18;  // pen width in canvas pixels (the digit is later fitted into 20 of 28 pixels)
  function stroke(from, to) {
    ctx.strokeStyle = "#fff";
    ctx.lineWidth = PEN;
    ctx.lineCap = "round";
    ctx.lineJoin = "round";
    ctx.beginPath();
    ctx.moveTo(from[0], from[1]);
    ctx.lineTo(to[0], to[1]);
    ctx.stroke();
  }
  function dot(at) {  // a zero-length line draws nothing, so a tap is a filled circle
    ctx.fillStyle = "#fff";
    ctx.beginPath();
    ctx.arc(at[0], at[1], PEN / 2, 0, 2 * Math.PI);
    ctx.fill();
  }
  canvas.addEventListener("pointerdown", (event) => {
    event.preventDefault();
    canvas.setPointerCapture(event.pointerId);
    last = point(event);
    dot(last);
    inkChanged();
  });
  canvas.addEventListener("pointermove", (event) => {
    if (last === null) return;
    event.preventDefault();
    const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [event];
    for (const e of (events.length ? events : [event])) {
      const next = point(e);
      stroke(last, next);
      last = next;
    }
    inkChanged();
  });
  const end = () => { last = null; };
  canvas.addEventListener("pointerup", end);
  canvas.addEventListener("pointercancel", end);
  $("clear").addEventListener("click", () => {
    clearCanvas();
    state.generation++;
    state.drawing.dirty = false;
    $("source").textContent = "Draw a digit or load a test image.";
  });
}

function clearCanvas() {
  const canvas = $("draw");
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  ctx.fillStyle = "#000";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  state.drawing.hasInk = false;
}

function inkChanged() {
  state.drawing.hasInk = true;
  state.drawing.dirty = true;
  if (!state.drawing.inFlight) sendDrawing();
}

// At most one drawing request in flight; when it returns, the latest canvas is sent (if it changed).
async function sendDrawing() {
  const drawing = state.drawing;
  if (!drawing.dirty || !drawing.hasInk) return;
  drawing.dirty = false;
  drawing.inFlight = true;
  const generation = ++state.generation;
  const canvas = $("draw");
  const rgba = canvas.getContext("2d", { willReadFrequently: true }).getImageData(0, 0, canvas.width, canvas.height).data;
  const gray = new Uint8Array(canvas.width * canvas.height);
  for (let i = 0, j = 0; j < gray.length; i += 4, j++) gray[j] = rgba[i];
  const started = performance.now();
  try {
    const view = await postJSON("/api/draw", { width: canvas.width, height: canvas.height, pixels: encodeBase64(gray) });
    if (generation === state.generation) {
      showView(view);
      setStatus(`update ${state.updates}: ${(performance.now() - started).toFixed(0)} ms round trip`);
    }
  } catch (error) {
    setStatus(error.message, true);
  } finally {
    drawing.inFlight = false;
    if (drawing.dirty) sendDrawing();
  }
}

// ---- test images ---------------------------------------------------------------------------
async function loadTest(index) {
  const generation = ++state.generation;
  state.drawing.dirty = false;
  try {
    const view = await api(`/api/test/${index}`);
    if (generation !== state.generation) return;
    $("test-index").value = index;
    clearCanvas();
    showView(view);
    setStatus(`test image ${index} loaded`);
  } catch (error) {
    setStatus(error.message, true);
  }
}

async function nextConfusable() {
  try {
    if (!state.confusable) {
      setStatus("finding confusable examples (one pass over the test set)...");
      state.confusable = (await api("/api/confusable")).examples;
    }
    if (!state.confusable.length) { setStatus("no confusable examples"); return; }
    const example = state.confusable[state.confusableAt % state.confusable.length];
    state.confusableAt++;
    await loadTest(example.index);
  } catch (error) {
    setStatus(error.message, true);
  }
}

// ---- rendering a view -----------------------------------------------------------------------
function showView(view, isNew = true) {
  state.view = view;
  if (isNew) {
    state.updates++;
    $("status").dataset.updates = String(state.updates);
  }
  drawInput(view.input);
  drawProbabilities(view.probabilities, view.predicted);
  for (const layer of state.info.layers) drawLayer(layer, view.layers[layer.name]);
  const source = $("source");
  if (view.source === "test") {
    const verdict = view.label === view.predicted ? "right" : "WRONG";
    source.textContent = `Test image #${view.index}: label ${view.label}, predicted ${view.predicted} (${verdict})`;
  } else {
    source.textContent = `Your drawing: predicted ${view.predicted}`;
  }
  if (state.selected) drawPanelActivation();
}

function drawInput(encoded) {
  const pixels = decodeBase64(encoded);
  const ctx = $("input").getContext("2d");
  const image = ctx.createImageData(28, 28);
  for (let i = 0; i < pixels.length; i++) {
    image.data[4 * i] = image.data[4 * i + 1] = image.data[4 * i + 2] = pixels[i];
    image.data[4 * i + 3] = 255;
  }
  ctx.putImageData(image, 0, 0);
}

function setupProbabilities(classes) {
  const box = $("probs");
  box.innerHTML = "";
  for (let k = 0; k < classes; k++) {
    const row = document.createElement("div");
    row.className = "prob-row";
    row.innerHTML = `<span class="digit">${k}</span><span class="track"><span class="bar"></span></span><span class="pct"></span>`;
    box.appendChild(row);
  }
}

function drawProbabilities(probabilities, predicted) {
  const rows = $("probs").children;
  probabilities.forEach((p, k) => {
    const row = rows[k];
    row.dataset.p = String(p);
    row.classList.toggle("top", k === predicted);
    row.querySelector(".bar").style.width = `${(100 * p).toFixed(2)}%`;
    row.querySelector(".pct").textContent = `${(100 * p).toFixed(1)}%`;
  });
  const el = $("predicted");
  el.textContent = `→ ${predicted}`;
  el.dataset.predicted = String(predicted);
}

// Layout of one layer's grid: tiles of `scale` x `scale` screen pixels per value, 1 px separators.
function setupLayers() {
  const box = $("layers");
  box.innerHTML = "";
  for (const layer of state.info.layers) {
    const spatial = layer.shape.length === 3;
    const count = layer.shape[0];
    const h = spatial ? layer.shape[1] : 1;
    const w = spatial ? layer.shape[2] : 1;
    const scale = spatial ? Math.max(2, Math.round(40 / Math.max(h, w))) : (count > 20 ? 14 : 26);
    const cols = spatial ? (count <= 32 ? 8 : 16) : Math.min(count, 20);
    const rows = Math.ceil(count / cols);
    const tileW = w * scale, tileH = h * scale;
    const canvas = document.createElement("canvas");
    canvas.width = cols * (tileW + 1) - 1;
    canvas.height = rows * (tileH + 1) - 1;
    canvas.dataset.layer = layer.name;
    const figure = document.createElement("figure");
    figure.className = "layer";
    const what = spatial ? `${count} maps ${h}x${w}` : `${count} nodes`;
    figure.innerHTML = `<figcaption><b>${layer.name}</b> (${layer.kind}) ${what}</figcaption>`;
    figure.appendChild(canvas);
    box.appendChild(figure);
    state.layout[layer.name] = { canvas, cols, rows, tileW, tileH, scale, h, w, count, spatial };
    canvas.addEventListener("click", (event) => {
      const rect = canvas.getBoundingClientRect();
      const x = (event.clientX - rect.left) * canvas.width / rect.width;
      const y = (event.clientY - rect.top) * canvas.height / rect.height;
      const col = Math.min(cols - 1, Math.floor(x / (tileW + 1)));
      const row = Math.min(rows - 1, Math.floor(y / (tileH + 1)));
      const index = row * cols + col;
      if (index < count) selectMap(layer.name, index);
    });
  }
}

// Values of one layer as floats (maps: C*H*W reconstructed from per-map bytes + range).
function layerValues(encoded) {
  if (encoded.values) return Float32Array.from(encoded.values);
  const bytes = decodeBase64(encoded.data);
  const [c, h, w] = encoded.shape;
  const out = new Float32Array(bytes.length);
  for (let m = 0; m < c; m++) {
    const lo = encoded.min[m], span = encoded.max[m] - encoded.min[m];
    for (let i = m * h * w; i < (m + 1) * h * w; i++) out[i] = lo + (bytes[i] / 255) * span;
  }
  return out;
}

function colourIndex(value, lo, hi) {
  if (!(hi > lo)) return 0;
  const t = Math.round(255 * (value - lo) / (hi - lo));
  return t < 0 ? 0 : (t > 255 ? 255 : t);
}

function drawLayer(layer, encoded) {
  const L = state.layout[layer.name];
  const ctx = L.canvas.getContext("2d");
  const image = ctx.createImageData(L.canvas.width, L.canvas.height);
  const data = image.data;
  data.fill(255);  // white separators
  const perMap = $("per-map").checked;
  const values = layerValues(encoded);
  let layerLo = Infinity, layerHi = -Infinity;
  for (const v of values) { if (v < layerLo) layerLo = v; if (v > layerHi) layerHi = v; }
  const lut = state.lut;
  const mapSize = L.h * L.w;
  for (let m = 0; m < L.count; m++) {
    let lo = layerLo, hi = layerHi;
    if (perMap && L.spatial) { lo = encoded.min[m]; hi = encoded.max[m]; }
    const originX = (m % L.cols) * (L.tileW + 1);
    const originY = Math.floor(m / L.cols) * (L.tileH + 1);
    for (let y = 0; y < L.h; y++) {
      for (let x = 0; x < L.w; x++) {
        const c = colourIndex(values[m * mapSize + y * L.w + x], lo, hi) * 3;
        const r = lut[c], g = lut[c + 1], b = lut[c + 2];
        for (let dy = 0; dy < L.scale; dy++) {
          let p = 4 * ((originY + y * L.scale + dy) * L.canvas.width + originX + x * L.scale);
          for (let dx = 0; dx < L.scale; dx++, p += 4) { data[p] = r; data[p + 1] = g; data[p + 2] = b; }
        }
      }
    }
  }
  ctx.putImageData(image, 0, 0);
  L.values = values;
}

// ---- the side panel ---------------------------------------------------------------------------
async function selectMap(layer, map) {
  state.selected = { layer, map };
  const panel = $("panel");
  panel.hidden = false;
  const L = state.layout[layer];
  $("panel-title").textContent = `${layer} · ${L.spatial ? "map" : "node"} ${map}`;
  drawPanelActivation();
  const oip = $("panel-oip");
  oip.removeAttribute("src");
  oip.dataset.map = "";
  $("panel-oip-info").textContent = "";
  $("panel-oip-trust").innerHTML = "";
  $("panel-oip-status").textContent = "computing OIP...";
  $("panel-top").innerHTML = "";
  $("panel-starts-row").innerHTML = "";
  $("panel-starts-info").textContent = "";
  const key = `${layer}/${map}`;
  const stillSelected = () => state.selected && `${state.selected.layer}/${state.selected.map}` === key;
  const oipRequest = postJSON(`/api/oip/${layer}`, { maps: [map] }).then((answer) => {
    if (!stillSelected()) return;
    const record = answer.oips[0];
    oip.onload = () => { $("panel-oip-status").textContent = record.reacted ? "" : "this map stayed at zero from every start (no pattern found)"; };
    oip.dataset.map = key;
    oip.src = record.url;
    const when = record.cached ? "cached" : `${record.batch_seconds.toFixed(2)} s`;
    $("panel-oip-info").textContent = `value ${record.value.toFixed(3)}, ${when}`;
    if (record.trust) showTrust($("panel-oip-trust"), record.trust);
    else api(`/api/oip/${layer}/${map}/trust`).then((answer) => {  // after the test-set pass
      if (stillSelected()) showTrust($("panel-oip-trust"), answer.trust || {});
    }).catch(() => {});
  }).catch((error) => { if (stillSelected()) $("panel-oip-status").textContent = error.message; });
  const topRequest = api(`/api/top/${layer}/${map}`).then((answer) => {
    if (!stillSelected()) return;
    const box = $("panel-top");
    box.innerHTML = "";
    for (const item of answer.images) box.appendChild(thumb(item.index, item.url, `${item.label} · ${item.value.toFixed(2)}`));
  }).catch((error) => { if (stillSelected()) $("panel-top").textContent = error.message; });
  await Promise.all([oipRequest, topRequest]);
}

// How far an OIP can be trusted (optvis.quality): one line per figure the server computed, each
// with a tooltip saying what it measures.
function trustLines(trust) {
  const lines = [];
  if (trust.ratio != null) lines.push([`${trust.ratio.toFixed(2)}x the best test image`,
    "the OIP's value over the highest value of any test image: above 1, the pattern drives the map further than real digits do"]);
  if (trust.majority != null) lines.push([trust.majority ? "the top map of its layer at its OIP" : "another map of its layer is higher at its OIP",
    "majority success (Yosinski et al. 2015): is this map the layer's largest at the OIP?"]);
  if (trust.natural_path_mean != null) lines.push([`natural path ${trust.natural_path_mean.toFixed(2)}`,
    "rank correlation of the earlier layers' activations at the OIP with those of the map's top test images (1: it gets there the way real digits do)"]);
  if (trust.outside != null) lines.push([`${Math.round(100 * trust.outside)}% of pixels outside black..white`,
    `share of the OIP's pixels that no real image can have${trust.clipped_ratio != null ? `; clipped into the range it keeps ${Math.round(100 * trust.clipped_ratio)}% of its value` : ""}`]);
  if (trust.start_similarity != null) lines.push([`starts alike ${trust.start_similarity.toFixed(2)}`,
    "similarity of the OIPs from two noise starts (1: the same pattern from both)"]);
  return lines;
}

function showTrust(list, trust) {
  list.innerHTML = "";
  for (const [text, help] of trustLines(trust)) {
    const item = document.createElement("li");
    item.textContent = text;
    item.title = help;
    list.appendChild(item);
  }
}

// The selected map's OIPs from several noise starts, with how alike they are (median similarity).
const PANEL_STARTS = 4;
async function showStarts() {
  if (!state.selected) return;
  const { layer, map } = state.selected;
  const key = `${layer}/${map}`;
  const stillSelected = () => state.selected && `${state.selected.layer}/${state.selected.map}` === key;
  const row = $("panel-starts-row");
  row.innerHTML = "";
  $("panel-starts-info").textContent = `computing ${PANEL_STARTS} starts...`;
  try {
    const answer = await postJSON(`/api/oip/${layer}`, { maps: [map], starts: PANEL_STARTS });
    if (!stillSelected()) return;
    const record = answer.oips[0];
    record.starts.forEach((start, i) => {
      const img = document.createElement("img");
      img.src = start.picture;
      img.alt = `start ${i + 1}`;
      img.title = `start ${i + 1}: value ${start.value.toFixed(3)}${i === record.kept ? " (kept)" : ""}`;
      if (i === record.kept) img.classList.add("kept");
      if (!start.reacted) img.classList.add("silent");
      row.appendChild(img);
    });
    const alike = record.similarity === null ? "similarity: fewer than 2 starts reacted" : `similarity ${record.similarity.toFixed(2)}`;
    $("panel-starts-info").textContent = alike;
  } catch (error) {
    if (stillSelected()) $("panel-starts-info").textContent = error.message;
  }
}

function drawPanelActivation() {
  const { layer, map } = state.selected;
  const L = state.layout[layer];
  const canvas = $("panel-activation");
  const ctx = canvas.getContext("2d");
  if (!L.values) { ctx.clearRect(0, 0, canvas.width, canvas.height); $("panel-value").textContent = ""; return; }
  const h = L.h, w = L.w;
  canvas.width = w;
  canvas.height = h;
  const image = ctx.createImageData(w, h);
  let lo = Infinity, hi = -Infinity, sum = 0;
  const start = map * h * w;
  for (let i = start; i < start + h * w; i++) { const v = L.values[i]; lo = Math.min(lo, v); hi = Math.max(hi, v); sum += v; }
  let layerLo = Infinity, layerHi = -Infinity;
  for (const v of L.values) { if (v < layerLo) layerLo = v; if (v > layerHi) layerHi = v; }
  for (let i = 0; i < h * w; i++) {
    const c = colourIndex(L.values[start + i], L.spatial ? lo : layerLo, L.spatial ? hi : layerHi) * 3;
    image.data.set([state.lut[c], state.lut[c + 1], state.lut[c + 2], 255], 4 * i);
  }
  ctx.putImageData(image, 0, 0);
  $("panel-value").textContent = L.spatial ? `mean ${(sum / (h * w)).toFixed(3)}, max ${hi.toFixed(3)}` : `value ${lo.toFixed(3)}`;
}

function thumb(index, url, text) {
  const item = document.createElement("div");
  item.className = "thumb";
  item.title = `test image #${index}`;
  item.innerHTML = `<img alt="test image ${index}" src="${url}"><span>${text}</span>`;
  item.addEventListener("click", () => { showTab("explore"); loadTest(index); });
  return item;
}

// ---- OIP zoo -----------------------------------------------------------------------------------
async function showZoo() {
  const layer = $("zoo-layer").value;
  const token = ++state.zooToken;
  const grid = $("zoo-grid");
  grid.innerHTML = "";
  const zoo = await api(`/api/zoo/${layer}`);
  if (token !== state.zooToken) return;
  for (const tile of zoo.maps) grid.appendChild(zooTile(layer, tile));
  const missing = zoo.maps.filter((t) => !t.url).length;
  $("zoo-progress").textContent = missing ? `${missing} of ${zoo.count} not computed yet` : `all ${zoo.count} computed`;
}

function zooTile(layer, tile) {
  const item = document.createElement("div");
  item.className = "zoo-tile";
  item.dataset.map = String(tile.map);
  fillZooTile(item, tile);
  item.addEventListener("click", () => { showTab("explore"); selectMap(layer, tile.map); });
  return item;
}

function fillZooTile(item, tile) {
  item.classList.toggle("silent", tile.reacted === false);
  const picture = tile.url ? `<img alt="OIP ${tile.map}" src="${tile.url}">` : `<div class="placeholder"></div>`;
  const trust = tile.trust || {};
  const ratio = trust.ratio != null ? ` · x${trust.ratio.toFixed(1)}` : "";  // OIP over the best test image
  item.innerHTML = `${picture}<div>${tile.map}${tile.reacted === false ? " (silent)" : ratio}</div>`;
  item.title = trustLines(trust).map(([text]) => text).join("\n");
}

async function computeZoo() {
  const layer = $("zoo-layer").value;
  const token = state.zooToken;
  const zoo = await api(`/api/zoo/${layer}`);
  const missing = zoo.maps.filter((t) => !t.url).map((t) => t.map);
  const started = performance.now();
  for (let i = 0; i < missing.length; i += zoo.chunk) {
    if (token !== state.zooToken) return;
    $("zoo-progress").textContent = `computing ${i + 1}-${Math.min(i + zoo.chunk, missing.length)} of ${missing.length}...`;
    try {
      const answer = await postJSON(`/api/oip/${layer}`, { maps: missing.slice(i, i + zoo.chunk) });
      if (token !== state.zooToken) return;
      for (const record of answer.oips) {
        const item = document.querySelector(`.zoo-tile[data-map="${record.map}"]`);
        if (item) fillZooTile(item, { map: record.map, url: record.url, reacted: record.reacted, trust: record.trust });
      }
    } catch (error) {
      $("zoo-progress").textContent = error.message;
      return;
    }
  }
  $("zoo-progress").textContent = `done (${((performance.now() - started) / 1000).toFixed(1)} s)`;
}

// ---- confusion matrix -------------------------------------------------------------------------
async function showConfusion() {
  const table = $("confusion");
  if (table.dataset.loaded) return;
  table.innerHTML = "<tr><td>computing (one pass over the test set)...</td></tr>";
  const answer = await api("/api/confusion");
  table.dataset.loaded = "1";
  $("accuracy").textContent = `Accuracy ${(100 * answer.accuracy).toFixed(2)}%.`;
  const n = answer.matrix.length;
  let maxOff = 1;
  answer.matrix.forEach((row, i) => row.forEach((v, j) => { if (i !== j) maxOff = Math.max(maxOff, v); }));
  let html = "<tr><th>true \\ pred</th>";
  for (let j = 0; j < n; j++) html += `<th>${j}</th>`;
  html += "</tr>";
  answer.matrix.forEach((row, i) => {
    html += `<tr><th>${i}</th>`;
    row.forEach((v, j) => {
      const strength = i === j ? 0.35 : Math.sqrt(v / maxOff);
      const colour = i === j ? `rgba(42,111,151,${strength})` : `rgba(224,122,31,${strength})`;
      html += `<td data-cell="${i},${j}" style="background:${colour}">${v || ""}</td>`;
    });
    html += "</tr>";
  });
  table.innerHTML = html;
  table.onclick = (event) => {
    const cell = event.target.closest("td[data-cell]");
    if (!cell) return;
    table.querySelectorAll("td.selected").forEach((td) => td.classList.remove("selected"));
    cell.classList.add("selected");
    const [t, p] = cell.dataset.cell.split(",");
    const indices = answer.cells[cell.dataset.cell] || [];
    const box = $("cell-examples");
    box.innerHTML = "";
    for (const index of indices) box.appendChild(thumb(index, `/api/test/${index}/image.png`, `#${index}`));
    if (!indices.length) box.textContent = `no test image with label ${t} predicted as ${p}`;
  };
}

// ---- tabs and start-up --------------------------------------------------------------------------
function showTab(name) {
  document.querySelectorAll(".tab-button").forEach((b) => b.classList.toggle("active", b.dataset.tab === name));
  document.querySelectorAll(".tab").forEach((t) => t.classList.toggle("active", t.id === `tab-${name}`));
  if (name === "zoo") showZoo().catch((error) => { $("zoo-progress").textContent = error.message; });
  if (name === "confusion") showConfusion().catch((error) => { $("confusion").textContent = error.message; });
}

async function start() {
  state.info = await api("/api/info");
  state.lut = decodeBase64(state.info.colormap.lut);
  const metrics = state.info.metrics || {};
  const accuracy = metrics.test_accuracy !== undefined ? `, test accuracy ${(100 * metrics.test_accuracy).toFixed(2)}%` : "";
  $("model-info").textContent = `model ${state.info.weights}${accuracy}`;
  $("test-index").max = String(state.info.test_count - 1);
  setupProbabilities(state.info.classes);
  setupLayers();
  setupCanvas();
  for (const layer of state.info.layers) {
    const option = document.createElement("option");
    option.value = option.textContent = layer.name;
    $("zoo-layer").appendChild(option);
  }
  document.querySelectorAll(".tab-button").forEach((b) => b.addEventListener("click", () => showTab(b.dataset.tab)));
  $("load-test").addEventListener("click", () => loadTest(parseInt($("test-index").value, 10) || 0));
  $("test-index").addEventListener("keydown", (event) => { if (event.key === "Enter") $("load-test").click(); });
  $("random").addEventListener("click", () => loadTest(Math.floor(Math.random() * state.info.test_count)));
  $("confusable").addEventListener("click", nextConfusable);
  $("per-map").addEventListener("change", () => { if (state.view) showView(state.view, false); });
  $("panel-close").addEventListener("click", () => { state.selected = null; $("panel").hidden = true; });
  $("zoo-layer").addEventListener("change", () => showZoo());
  $("zoo-compute").addEventListener("click", () => computeZoo());
  $("panel-starts").addEventListener("click", showStarts);
  document.body.dataset.ready = "1";
}

window.cnnscope = state;  // for tests and curious people
start().catch((error) => setStatus(`could not start: ${error.message}`, true));
