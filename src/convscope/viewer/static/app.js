// convscope view: the page. Plain JavaScript, no build step, nothing loaded from elsewhere.
// It asks the JSON API (README, "Live viewer") and draws the answers.
"use strict";

const TOKEN = new URLSearchParams(location.search).get("token");
const DEBOUNCE_MS = 120; // after a stroke: fast enough to feel live, slow enough not to queue requests
const $ = (id) => document.getElementById(id);

let model = null; // GET /api/model
let current = null; // {kind: "blob", blob} or {kind: "test", index}: what /api/predict last ran on
let chosenClass = null; // null: explain the predicted class
let lastAnswer = null;
let inFlight = false, pending = false, timer = null;
let listing = null; // {query, offset}: the thumbnail list shown

// ---------------------------------------------------------------- API

async function api(path, options = {}) {
  const headers = Object.assign({}, options.headers || {});
  if (TOKEN) headers["Authorization"] = "token " + TOKEN;
  const response = await fetch(path, Object.assign({}, options, { headers }));
  const body = await response.json().catch(() => ({ error: `HTTP ${response.status}` }));
  if (!response.ok) throw new Error(body.error || `HTTP ${response.status}`);
  return body;
}

function status(text, isError = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", isError);
}

function element(tag, attributes = {}, children = []) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (key === "text") node.textContent = value;
    else if (key === "class") node.className = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) node.appendChild(child);
  return node;
}

function format(value) {
  const size = Math.abs(value);
  return size !== 0 && (size < 0.001 || size >= 10000) ? value.toExponential(2) : value.toFixed(size >= 100 ? 1 : 3);
}

// ---------------------------------------------------------------- drawing canvas

const draw = $("draw"), highlight = $("highlight");
const pen = draw.getContext("2d");
let drawing = false, last = null;

function clearCanvas() {
  pen.fillStyle = "#000";
  pen.fillRect(0, 0, draw.width, draw.height);
  clearHighlight();
}

function canvasPoint(event) {
  const box = draw.getBoundingClientRect();
  return { x: (event.clientX - box.left) * draw.width / box.width, y: (event.clientY - box.top) * draw.height / box.height };
}

function stroke(from, to) {
  pen.strokeStyle = pen.fillStyle = $("colour").value;
  pen.lineWidth = parseFloat($("brush").value);
  pen.lineCap = pen.lineJoin = "round";
  pen.beginPath();
  pen.moveTo(from.x, from.y);
  pen.lineTo(to.x + 0.01, to.y);
  pen.stroke();
}

draw.addEventListener("pointerdown", (event) => {
  drawing = true;
  draw.setPointerCapture(event.pointerId);
  last = canvasPoint(event);
  stroke(last, last);
  useCanvas();
});
draw.addEventListener("pointermove", (event) => {
  if (!drawing) return;
  const point = canvasPoint(event);
  stroke(last, point);
  last = point;
  useCanvas();
});
for (const name of ["pointerup", "pointercancel"]) draw.addEventListener(name, () => { drawing = false; });
$("clear").addEventListener("click", () => { clearCanvas(); useCanvas(); });

function useCanvas() {
  if (!current || current.kind !== "canvas") $("input-note").textContent = "Your drawing, sent as a PNG and prepared as convscope predict prepares files.";
  current = { kind: "canvas" };
  schedule();
}

function schedule() {
  clearTimeout(timer);
  timer = setTimeout(runPredict, DEBOUNCE_MS);
}

function canvasBlob() {
  return new Promise((resolve) => draw.toBlob(resolve, "image/png"));
}

function showInput(dataUrl) {
  const image = new Image();
  image.onload = () => { pen.imageSmoothingEnabled = false; pen.drawImage(image, 0, 0, draw.width, draw.height); };
  image.src = dataUrl;
}

// ---------------------------------------------------------------- upload

async function upload(file) {
  if (!file) return;
  current = { kind: "blob", blob: file };
  $("input-note").textContent = `${file.name}: prepared as convscope predict prepares files (size, colour mode, scaling).`;
  await runPredict();
}

$("file").addEventListener("change", (event) => upload(event.target.files[0]));
const drop = $("drop");
drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (event) => {
  event.preventDefault();
  drop.classList.remove("over");
  upload(event.dataTransfer.files[0]);
});

// ---------------------------------------------------------------- predict

async function requestFor(input) {
  if (input.kind === "test") {
    return { body: JSON.stringify({ test_index: input.index }), headers: { "Content-Type": "application/json" } };
  }
  const blob = input.kind === "blob" ? input.blob : await canvasBlob();
  return { body: blob, headers: { "Content-Type": blob.type || "application/octet-stream" } };
}

async function runPredict() {
  if (!current) return;
  if (inFlight) { pending = true; return; }
  inFlight = true;
  const input = current;
  try {
    const request = await requestFor(input);
    const query = chosenClass === null ? "" : `?class=${chosenClass}`;
    const answer = await api("/api/predict" + query, { method: "POST", body: request.body, headers: request.headers });
    lastAnswer = answer;
    if (input.kind !== "canvas") showInput(answer.input);
    render(answer);
    const name = model.classes[answer.predicted];
    status(`predicted ${name} (${(100 * answer.probabilities[answer.predicted]).toFixed(1)}%) · model ${(1000 * answer.seconds.model).toFixed(0)} ms, answer ${(1000 * answer.seconds.total).toFixed(0)} ms`);
  } catch (error) {
    status(error.message, true);
  } finally {
    inFlight = false;
    if (pending) { pending = false; runPredict(); }
  }
}

function render(answer) {
  renderProbabilities(answer);
  renderAttribution(answer);
  renderFirstLayer(answer);
  renderLayers(answer);
}

function renderProbabilities(answer) {
  const box = $("probabilities");
  box.replaceChildren();
  answer.probabilities.forEach((p, k) => {
    const fill = element("div", { class: "fill" });
    fill.style.width = `${(100 * p).toFixed(2)}%`;
    const row = element("div", { class: "bar-row", title: `explain class ${model.classes[k]}` }, [
      element("span", { class: "name", text: model.classes[k] }),
      element("div", { class: "track" }, [fill]),
      element("span", { class: "value", text: p.toFixed(3) }),
    ]);
    if (k === answer.predicted) row.classList.add("predicted");
    if (k === answer.explained_class) row.classList.add("explained");
    row.addEventListener("click", () => { chosenClass = chosenClass === k ? null : k; runPredict(); });
    box.appendChild(row);
  });
}

function renderAttribution(answer) {
  const which = chosenClass === null ? "predicted class" : "chosen class";
  $("explained").textContent = `(${which}: ${model.classes[answer.explained_class]})`;
  if (answer.grad_cam) {
    $("gradcam").src = answer.grad_cam.overlay;
    $("gradcam-heat").src = answer.grad_cam.heatmap;
    $("gradcam").hidden = $("gradcam-heat").parentNode.hidden = false;
    const empty = answer.grad_cam.all_zero ? " — no positive evidence for this class" : "";
    $("gradcam-caption").textContent = `${answer.grad_cam.method === "hirescam" ? "HiResCAM" : "Grad-CAM"} on ${answer.grad_cam.layer}${empty}`;
    $("gradcam-caption").title = answer.grad_cam.reason;
  } else {
    $("gradcam").hidden = $("gradcam-heat").parentNode.hidden = true;
    $("gradcam-caption").textContent = "Grad-CAM needs a layer with feature maps; this model has none";
  }
  $("saliency").src = answer.saliency.overlay;
  $("saliency-heat").src = answer.saliency.heatmap;
}

function cropTiles(image, layout) {
  // One canvas per channel, cut from the mosaic the server sent.
  const tiles = [];
  for (let channel = 0; channel < layout.channels; channel++) {
    const row = Math.floor(channel / layout.columns), column = channel % layout.columns;
    const canvas = element("canvas", { width: layout.tile_width, height: layout.tile_height });
    const context = canvas.getContext("2d");
    context.drawImage(image, column * (layout.tile_width + layout.gap), row * (layout.tile_height + layout.gap),
      layout.tile_width, layout.tile_height, 0, 0, layout.tile_width, layout.tile_height);
    tiles.push(canvas);
  }
  return tiles;
}

function renderFirstLayer(answer) {
  const panel = $("first-panel");
  if (!answer.first_layer || !model.first_layer) { panel.hidden = true; return; }
  panel.hidden = false;
  $("first-name").textContent = `(${answer.first_layer.layer})`;
  const layout = answer.first_layer.responses;
  const image = new Image();
  image.onload = () => {
    const tiles = cropTiles(image, layout);
    $("first").replaceChildren(...tiles.map((tile, k) => element("div", { class: "filter", title: `filter ${k}` }, [
      element("img", { src: model.first_layer.filters[k], alt: `filter ${k}` }), tile,
    ])));
  };
  image.src = layout.image;
}

function renderLayers(answer) {
  const box = $("layers");
  box.replaceChildren();
  for (const layer of answer.layers) {
    const summary = layer.summary;
    const panel = element("div", { class: "layer", "data-layer": layer.name }, [
      element("h3", {}, [
        document.createTextNode(layer.name),
        element("span", { class: "type", text: layer.type }),
        element("span", { class: "shape", text: `(${layer.output_shape.join(", ")})` }),
      ]),
      element("p", { class: "summary", text: `min ${format(summary.min)} · max ${format(summary.max)} · mean ${format(summary.mean)} · zeros ${(100 * summary.zero_fraction).toFixed(0)}%` }),
    ]);
    if (layer.kind === "maps") panel.appendChild(mapsView(layer));
    else if (layer.values) panel.appendChild(barsView(layer.values));
    else panel.appendChild(foldedView(layer));
    box.appendChild(panel);
  }
}

function mapsView(layer) {
  const tiles = layer.tiles;
  const image = element("img", { src: tiles.image, alt: `${layer.name}: ${tiles.channels} feature maps` });
  const width = tiles.columns * (tiles.tile_width + tiles.gap) - tiles.gap;
  const scale = Math.max(1, Math.min(4, Math.floor(560 / width)));
  image.style.width = `${width * scale}px`;
  const wrap = element("div", { class: "maps" }, [image]);
  image.addEventListener("click", (event) => {
    const box = image.getBoundingClientRect();
    const x = (event.clientX - box.left) * image.naturalWidth / box.width;
    const y = (event.clientY - box.top) * image.naturalHeight / box.height;
    const stepX = tiles.tile_width + tiles.gap, stepY = tiles.tile_height + tiles.gap;
    const tileColumn = Math.floor(x / stepX), tileRow = Math.floor(y / stepY);
    const column = Math.floor(x - tileColumn * stepX), row = Math.floor(y - tileRow * stepY);
    const channel = tileRow * tiles.columns + tileColumn;
    if (column >= tiles.tile_width || row >= tiles.tile_height || channel >= tiles.channels) return; // the gap between tiles
    const pixel = box.width / image.naturalWidth;
    let mark = wrap.querySelector(".mark");
    if (!mark) { mark = element("div", { class: "mark" }); wrap.appendChild(mark); }
    Object.assign(mark.style, { left: `${(tileColumn * stepX + column) * pixel - 2}px`, top: `${(tileRow * stepY + row) * pixel - 2}px`,
      width: `${pixel + 4}px`, height: `${pixel + 4}px` });
    explain(layer.name, channel, row, column);
  });
  return wrap;
}

function foldedView(layer) {
  // A long vector (Flatten) as an image, row by row, scaled up so each value is a visible square.
  const image = element("img", { src: layer.folded.image, alt: `${layer.name}: ${layer.output_shape} values in rows of ${layer.folded.columns}`,
    title: `values in rows of ${layer.folded.columns}, black ${format(layer.folded.low)}, white ${format(layer.folded.high)}` });
  image.style.width = `${layer.folded.columns * Math.max(1, Math.min(4, Math.floor(400 / layer.folded.columns)))}px`;
  return element("div", { class: "folded" }, [image]);
}

function barsView(values) {
  const peak = Math.max(...values.map(Math.abs)) || 1;
  return element("div", { class: "vector" }, values.map((value, unit) => {
    const bar = element("div", { title: `unit ${unit}: ${format(value)}` });
    bar.style.height = `${Math.max(1, 60 * Math.abs(value) / peak)}px`;
    if (value < 0) bar.classList.add("negative");
    return bar;
  }));
}

// ---------------------------------------------------------------- one value explained

async function explain(layerName, channel, row, column) {
  if (!current) return;
  let input;
  if (current.kind === "test") input = { test_index: current.index };
  else {
    const blob = current.kind === "blob" ? current.blob : await canvasBlob();
    input = { image: await blobBase64(blob) };
  }
  try {
    const answer = await api("/api/explain", { method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify(Object.assign({ layer: layerName, channel, row, column }, input)) });
    showField(answer.receptive_field);
    renderCell(answer);
  } catch (error) {
    status(error.message, true);
  }
}

function blobBase64(blob) {
  return new Promise((resolve) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result.split(",", 2)[1]);
    reader.readAsDataURL(blob);
  });
}

function clearHighlight() {
  highlight.getContext("2d").clearRect(0, 0, highlight.width, highlight.height);
}

function showField(field) {
  clearHighlight();
  if (!field) return;
  const context = highlight.getContext("2d");
  const scale = highlight.width / model.input.width;
  context.fillStyle = "rgba(240, 160, 32, 0.25)";
  context.strokeStyle = "#f0a020";
  context.lineWidth = 2;
  const x = field.left * scale, y = field.top * scale;
  const w = (field.right - field.left + 1) * scale, h = (field.bottom - field.top + 1) * scale;
  context.fillRect(x, y, w, h);
  context.strokeRect(x + 1, y + 1, w - 2, h - 2);
  context.fillStyle = "#f0a020";
  context.beginPath();
  context.arc((field.centre[1] + 0.5) * scale, (field.centre[0] + 0.5) * scale, 3, 0, 2 * Math.PI);
  context.fill();
}

function renderCell(answer) {
  $("cell-panel").hidden = false;
  const parts = [element("p", { text: `${answer.layer}, channel ${answer.channel}, cell (${answer.row}, ${answer.column}) = ${format(answer.value)}` })];
  const field = answer.receptive_field;
  if (field) {
    const clipped = field.bottom - field.top + 1 < field.size[0] || field.right - field.left + 1 < field.size[1];
    parts.push(element("p", { class: "note", text: `It sees input rows ${field.top}–${field.bottom}, columns ${field.left}–${field.right} ` +
      `(a ${field.size[0]}×${field.size[1]} receptive field${clipped ? ", clipped to the image" : ""}), highlighted on the input.` }));
  } else {
    parts.push(element("p", { class: "note", text: "Its receptive field cannot be derived for this layer's geometry." }));
  }
  const worked = answer.worked;
  if (worked) {
    const div = element("div", { class: "worked" });
    div.appendChild(element("p", { text: `Worked sum: kernel × pixels + bias, on the real input (window's top-left at row ${worked.top}, column ${worked.left}).` }));
    const inputs = worked.kernel[0][0].length;
    let sum = 0;
    for (let c = 0; c < inputs; c++) {
      const table = element("table");
      worked.kernel.forEach((kernelRow, i) => {
        const tr = element("tr");
        kernelRow.forEach((weights, j) => {
          const w = weights[c], p = worked.pixels[i][j][c];
          sum += w * p;
          tr.appendChild(element("td", { text: `${format(w)}×${format(p)}` }));
        });
        table.appendChild(tr);
      });
      if (inputs > 1) div.appendChild(element("p", { class: "note", text: `input channel ${c}` }));
      div.appendChild(table);
    }
    div.appendChild(element("p", { class: "sum", text: `Σ = ${format(sum)}; + bias ${format(worked.bias)} = ${format(worked.total)}; ${worked.activation}(${format(worked.total)}) = ${format(worked.value)}` }));
    div.appendChild(element("p", { class: "note", text: `The network computed ${format(worked.network_value)} for this cell.` }));
    parts.push(div);
  }
  $("cell").replaceChildren(...parts);
}

// ---------------------------------------------------------------- test images

function pickTest(index) {
  current = { kind: "test", index };
  $("test-index").value = index;
  const label = lastListingLabel(index);
  $("input-note").textContent = `Test image ${index}${label}; exactly as the evaluation saw it. Draw on it to change it.`;
  clearHighlight();
  runPredict();
}

const listed = new Map();
function lastListingLabel(index) {
  const item = listed.get(index);
  return item ? ` (label ${model.classes[item.label]})` : "";
}

async function showListing(query, append = false) {
  listing = { query, offset: append ? listing.offset : 0 };
  try {
    const answer = await api(`/api/test-images?${query}&offset=${listing.offset}&limit=48`);
    if (!append) $("thumbnails").replaceChildren();
    for (const item of answer.images) {
      listed.set(item.index, item);
      const wrong = item.predicted !== undefined && item.predicted !== item.label;
      const caption = item.predicted === undefined ? `#${item.index}` : `#${item.index} ${model.classes[item.label]}→${model.classes[item.predicted]}`;
      const thumb = element("div", { class: "thumb" + (wrong ? " wrong" : ""), title: `test image ${item.index}` }, [
        element("img", { src: item.thumbnail, alt: `test image ${item.index}` }), element("span", { text: caption }),
      ]);
      thumb.addEventListener("click", () => pickTest(item.index));
      $("thumbnails").appendChild(thumb);
    }
    listing.offset += answer.images.length;
    $("more").hidden = listing.offset >= answer.total;
    if (answer.total === 0) $("thumbnails").replaceChildren(element("p", { class: "note", text: "No test images here." }));
  } catch (error) {
    status(error.message, true);
  }
}

$("more").addEventListener("click", () => showListing(listing.query, true));
$("show-index").addEventListener("click", () => pickTest(parseInt($("test-index").value, 10) || 0));

for (const button of document.querySelectorAll(".tabs button")) {
  button.addEventListener("click", () => {
    for (const other of document.querySelectorAll(".tabs button")) other.classList.toggle("active", other === button);
    for (const tab of document.querySelectorAll(".tab")) tab.hidden = tab.id !== "tab-" + button.dataset.tab;
    $("thumbnails").replaceChildren();
    $("more").hidden = true;
    if (button.dataset.tab === "errors") showListing("filter=errors");
    if (button.dataset.tab === "index") showListing("filter=all");
  });
}

function renderConfusion(matrix) {
  const peak = Math.max(1, ...matrix.flat());
  const table = element("table", { class: "confusion" });
  const head = element("tr", {}, [element("th", { text: "true \\ predicted" })]);
  model.classes.forEach((name) => head.appendChild(element("th", { text: name })));
  table.appendChild(head);
  matrix.forEach((row, t) => {
    const tr = element("tr", {}, [element("th", { text: model.classes[t] })]);
    row.forEach((count, p) => {
      const cell = element("td", { text: String(count), title: `${count} test images of ${model.classes[t]} predicted as ${model.classes[p]}`,
        "data-true": t, "data-predicted": p });
      const strength = Math.sqrt(count / peak);
      cell.style.background = t === p ? `rgba(39, 100, 197, ${strength})` : `rgba(179, 38, 30, ${strength})`;
      cell.style.color = strength > 0.6 ? "#fff" : "";
      cell.addEventListener("click", () => {
        for (const other of table.querySelectorAll("td.selected")) other.classList.remove("selected");
        cell.classList.add("selected");
        showListing(`filter=cell&true=${t}&predicted=${p}`);
      });
      tr.appendChild(cell);
    });
    table.appendChild(tr);
  });
  $("confusion").replaceChildren(table);
}

// ---------------------------------------------------------------- start

async function start() {
  try {
    model = await api("/api/model");
  } catch (error) {
    status(error.message, true);
    return;
  }
  document.title = `convscope view: ${model.title}`;
  $("title").textContent = model.title;
  const input = model.input;
  $("facts").textContent = `${model.model} · input ${input.height}×${input.width} ${input.color_mode} · ${model.classes.length} classes · ${model.layers.length} layers` +
    (model.test && model.test.accuracy !== null ? ` · test accuracy ${(100 * model.test.accuracy).toFixed(2)}% on ${model.test.count}` : "");
  draw.width = input.width;
  draw.height = input.height;
  highlight.width = highlight.height = 280 * 2;
  highlight.width = Math.round(highlight.height * input.width / input.height);
  $("colour-label").hidden = input.channels === 1;
  $("brush").value = Math.max(1, input.width / 11).toFixed(1);
  clearCanvas();
  if (!model.test) {
    $("picker-panel").hidden = true;
  } else {
    $("test-index").max = model.test.count - 1;
    if (model.test.confusion_matrix) renderConfusion(model.test.confusion_matrix);
    else {
      $("confusion").textContent = "No evaluation in this run yet: run `convscope evaluate RUN` for errors and the confusion matrix.";
      $("tab-errors").textContent = $("confusion").textContent;
    }
    showListing("filter=all");
  }
  if (model.figures.length) {
    $("figures-panel").hidden = false;
    const suffix = TOKEN ? `?token=${encodeURIComponent(TOKEN)}` : "";
    $("figures").replaceChildren(...model.figures.map((name) => element("figure", {}, [
      element("img", { src: `/figures/${encodeURIComponent(name)}${suffix}`, alt: name, loading: "lazy" }),
      element("figcaption", { text: name }),
    ])));
  }
  status("Draw a digit, upload an image or pick a test image.");
  if (model.test) pickTest(0); else useCanvas();
}

start();
