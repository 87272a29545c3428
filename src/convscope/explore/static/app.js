// convscope explore: draws what the JSON API answers. No convolution happens here: windows,
// working grids, outputs, explanations, activations and receptive fields all come from the
// engine through /api/*; this file only lays them out and paints them.
"use strict";
(() => {
  const $ = (id) => document.getElementById(id);
  const state = {
    meta: null,
    colours: {},
    layer: null, // the playground's /api/layer (or /api/network/layer) answer
    query: null, // the options that produced it (free mode)
    mode: "free", // "free" or "network"
    netLayer: null, // {index, name} when a network layer is open in the playground
    pos: 0,
    timer: null,
    selected: null, // flat output index whose explanation is shown
    request: 0,
    explainRequest: 0,
    net: { sample: "0", image: null, data: null, hoverKey: null, hoverRequest: 0 },
  };
  let pending = 0;

  // ------------------------------------------------------------------ helpers
  function busy(delta) {
    pending += delta;
    document.body.dataset.pending = String(pending);
  }

  async function api(path, params, options) {
    const qs = params ? new URLSearchParams(params).toString() : "";
    busy(1);
    try {
      const reply = await fetch(path + (qs ? "?" + qs : ""), options);
      let data;
      try {
        data = await reply.json();
      } catch (e) {
        data = { error: "the server sent no JSON (status " + reply.status + ")", type: "Error" };
      }
      return { ok: reply.ok, status: reply.status, data };
    } catch (e) {
      return { ok: false, status: 0, data: { error: "the server is not reachable: " + e, type: "Error" } };
    } finally {
      busy(-1);
    }
  }

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key.startsWith("data-")) node.setAttribute(key, value);
      else node[key] = value;
    }
    for (const child of children) if (child != null) node.append(child);
    return node;
  }

  function flat(array) {
    return Array.isArray(array) ? array.flat(Infinity) : [array];
  }

  function count(shape) {
    return shape.reduce((a, b) => a * b, 1);
  }

  function unravel(index, shape) {
    const out = [];
    for (let a = shape.length - 1; a >= 0; a--) {
      out.unshift(index % shape[a]);
      index = Math.floor(index / shape[a]);
    }
    return out;
  }

  function fmt(value, digits) {
    if (value === null || value === undefined) return "";
    if (typeof value === "string") return value;
    if (Number.isInteger(value)) return String(value);
    const text = value.toFixed(digits === undefined ? 2 : digits);
    return text === "-0.00" ? "0.00" : text;
  }

  function full(value) {
    if (Number.isInteger(value)) return String(value);
    return String(Number(value.toPrecision(9)));
  }

  // 2-D view of a 1-D or 2-D spatial shape
  function rowsCols(shape) {
    return shape.length === 1 ? [1, shape[0]] : [shape[shape.length - 2], shape[shape.length - 1]];
  }

  // ------------------------------------------------------------------ playground: options
  const FIELDS = ["input-size", "in-channels", "out-channels", "kernel-size", "stride", "padding",
    "dilation", "groups", "padding-mode", "seed", "dtype"];

  function formQuery() {
    const value = (id) => $(id).value.trim();
    const kind = value("f-layer");
    const q = { dim: kind.endsWith("1d") ? "1" : "2" };
    if (kind.startsWith("convT")) q.transposed = "1";
    for (const name of FIELDS) if (value("f-" + name) !== "") q[name] = value("f-" + name);
    const outputPadding = value("f-output-padding");
    if (q.transposed || (outputPadding && outputPadding !== "0")) q["output-padding"] = outputPadding || "0";
    if (!$("f-bias").checked) q["no-bias"] = "1";
    if (value("f-input")) {
      q.input = value("f-input");
      delete q["input-size"];
      delete q["in-channels"];
    }
    if (value("f-weight")) {
      q.weight = value("f-weight");
      delete q["kernel-size"];
      delete q["out-channels"];
    }
    if (value("f-bias-values")) q.bias = value("f-bias-values");
    return q;
  }

  function setForm(preset) {
    const defaults = { "input-size": "5,5", "in-channels": "1", "out-channels": "1", "kernel-size": "3",
      stride: "1", padding: "0", dilation: "1", groups: "1", "output-padding": "0", "padding-mode": "zeros" };
    const values = Object.assign({}, defaults, preset);
    const dims = values["input-size"].split(",").length;
    $("f-layer").value = (preset.transposed ? "convT" : "conv") + (dims === 1 ? "1d" : "2d");
    for (const [name, value] of Object.entries(values)) if ($("f-" + name)) $("f-" + name).value = value;
    $("f-bias").checked = true;
    for (const id of ["f-input", "f-weight", "f-bias-values"]) $(id).value = "";
    updateTransposedOnly();
  }

  function updateTransposedOnly() {
    const transposed = $("f-layer").value.startsWith("convT");
    for (const node of document.querySelectorAll(".transposed-only")) node.classList.toggle("disabled", !transposed);
  }

  let debounce = null;
  function scheduleRefresh() {
    clearTimeout(debounce);
    debounce = setTimeout(refresh, 250);
  }

  async function refresh() {
    if (state.mode !== "free") return;
    const q = formQuery();
    if (state.layer && state.query && JSON.stringify(q) === JSON.stringify(state.query) && $("error").hidden) return;
    stopPlay();
    const ticket = ++state.request;
    const reply = await api("/api/layer", q);
    if (ticket !== state.request || state.mode !== "free") return;
    if (!reply.ok) {
      showError(reply.data);
      return;
    }
    state.query = q;
    showLayer(reply.data);
  }

  function showError(data) {
    const box = $("error");
    box.hidden = false;
    box.textContent = (data.type && data.type !== "UsageError" ? data.type + ": " : "") + data.error;
    $("drawing").classList.add("stale");
    $("explain").classList.add("stale");
    $("formula").classList.add("stale");
  }

  function clearError() {
    $("error").hidden = true;
    for (const id of ["drawing", "explain", "formula"]) $(id).classList.remove("stale");
  }

  function showLayer(layer) {
    clearError();
    state.layer = layer;
    state.pos = 0;
    state.selected = null;
    $("explain").hidden = true;
    renderFormula(layer);
    setupSelectors(layer, 0);
    const positions = layer.windows.length;
    $("scrub").max = String(Math.max(0, positions - 1));
    $("scrub").value = "0";
    drawAll();
  }

  function renderFormula(layer) {
    const s = layer.shape;
    const box = $("formula");
    box.innerHTML = "";
    box.append(el("div", { class: "layer-name", text: s.layer }));
    box.append(el("div", { text: "input (" + s.input_shape.join(", ") + ") -> output (" + s.output_shape.join(", ") + ")" }));
    for (const note of s.notes) box.append(el("div", { text: note }));
    for (const f of s.formulas) {
      const head = f.dim + "_out = ";
      box.append(el("div", { class: "formula-line", text: head + f.formula + "\n" + " ".repeat(head.length - 2) + "= " + f.filled }));
    }
  }

  function setupSelectors(layer, outChannel) {
    const out = $("sel-out");
    out.innerHTML = "";
    for (let c = 0; c < layer.out_channels; c++) out.append(el("option", { value: String(c), text: String(c) }));
    out.value = String(outChannel);
    fillInputSelector();
  }

  function fillInputSelector() {
    const layer = state.layer;
    const c = Number($("sel-out").value);
    const cin = layer.in_channels / layer.groups;
    const cout = layer.out_channels / layer.groups;
    const g = Math.floor(c / cout);
    const sel = $("sel-in");
    const previous = Number(sel.value);
    sel.innerHTML = "";
    for (let ci = g * cin; ci < g * cin + cin; ci++) sel.append(el("option", { value: String(ci), text: String(ci) }));
    sel.value = String(previous >= g * cin && previous < g * cin + cin ? previous : g * cin);
  }

  // ------------------------------------------------------------------ playground: drawing
  function cellStyle(node, fill, line, dashed, textColour) {
    node.style.background = fill;
    node.style.borderColor = line;
    node.classList.toggle("dashed", !!dashed);
    node.style.color = textColour || state.colours.text;
  }

  function makeCells(container, rows, cols, size) {
    container.innerHTML = "";
    container.style.gridTemplateColumns = "repeat(" + cols + ", " + size + "px)";
    const cells = [];
    for (let k = 0; k < rows * cols; k++) {
      const node = el("div", { class: "cell", "data-i": String(k) });
      container.append(node);
      cells.push(node);
    }
    return cells;
  }

  function drawAll() {
    const layer = state.layer;
    if (!layer) return;
    const C = state.colours;
    const c = Number($("sel-out").value);
    const ci = Number($("sel-in").value);
    const cin = layer.in_channels / layer.groups;
    const cout = layer.out_channels / layer.groups;
    const g = Math.floor(c / cout);
    const grid = layer.grid;
    const [gr, gc] = rowsCols(grid.shape);
    const outSpatial = layer.shape.output_shape.slice(2);
    const [or, oc] = rowsCols(outSpatial);
    const size = Math.max(12, Math.min(40, Math.floor(380 / Math.max(gc, oc, 1))));
    const showText = size >= 26;
    document.documentElement.style.setProperty("--cell", size + "px");
    const pos = state.pos;
    const under = new Map((layer.windows[pos] || []).map((cell, tap) => [cell, tap]));
    // kernel slice w[c, ci] (w[ci, c] for a transposed layer), in tap order
    const kernel = layer.transposed ? layer.weight[ci][c - g * cout] : layer.weight[c][ci - g * cin];
    const kv = flat(kernel);
    // working grid: the padded (or zero-inserted) input of channel ci, sample 0
    const x = flat(layer.input[0][ci]);
    const shade = shader(x, C.input_line);
    const gridCells = makeCells($("grid"), gr, gc, size);
    gridCells.forEach((node, k) => {
      const src = grid.source[k];
      const kind = grid.kind[k];
      const value = src >= 0 ? x[src] : src === -1 ? 0 : null;
      const styles = {
        input: [C.input_fill, C.input_line, false],
        copy: [C.copy_fill, C.copy_line, true],
        padding: [C.background, C.padding_line, true],
        inserted: [C.background, C.padding_line, true],
        unread: [C.background, C.muted, true],
      }[kind];
      if (under.has(k) && kind !== "unread") {
        cellStyle(node, C.footprint[kind], C.kernel_line, styles[2], "#ffffff");
        if (!showText) node.classList.add("under"); // small cells: outline the window too
      } else {
        const fill = !showText && value !== null && kind !== "unread" ? shade(value) : styles[0];
        cellStyle(node, fill, styles[1], styles[2], kind === "input" ? C.text : C.muted);
      }
      if (kind === "unread") node.style.opacity = "0.5";
      node.textContent = showText && value !== null ? fmt(value) : "";
      if (showText && under.has(k) && kind !== "unread") {
        const weight = el("span", { class: "corner", text: fmt(kv[under.get(k)]) });
        weight.style.color = C.weight_text;
        node.append(weight);
      }
      node.title = kind + (src >= 0 ? " - input cell " + unravel(src, layer.shape.input_shape.slice(2)).join(",") : "") + (value !== null ? " = " + full(value) : "");
    });
    const [kr, kc] = rowsCols(layer.kernel_size);
    const kernelSize = Math.max(size, Math.min(34, Math.floor(200 / Math.max(kc, 1))));
    makeCells($("kernel"), kr, kc, kernelSize).forEach((node, k) => {
      node.style.width = node.style.height = kernelSize + "px";
      cellStyle(node, C.kernel_shade, C.kernel_line, false, C.weight_text);
      node.classList.add("weight");
      node.textContent = kernelSize >= 26 ? fmt(kv[k]) : "";
      node.title = "w = " + full(kv[k]);
    });
    // output channel c of sample 0
    const y = flat(layer.output[0][c]);
    const outShade = shader(y, C.output_current);
    makeCells($("output"), or, oc, size).forEach((node, k) => {
      if (k < pos) cellStyle(node, showText ? C.output_done : outShade(y[k]), C.output_line, false);
      else if (k === pos) cellStyle(node, C.output_current, C.output_line, false, "#ffffff");
      else cellStyle(node, C.background, C.output_line, false);
      node.textContent = showText && k <= pos ? fmt(y[k]) : "";
      node.title = "y[0, " + c + ", " + unravel(k, outSpatial).join(", ") + "] = " + full(y[k]);
      if (k === state.selected) node.classList.add("selected");
      node.addEventListener("click", () => selectOutput(k));
    });
    const inputWord = layer.transposed ? "zero-inserted, padded input" : "padded input";
    $("grid-caption").textContent = inputWord + ", channel " + ci + " (" + grid.shape.join("x") + ")";
    $("kernel-caption").textContent = "kernel w[" + (layer.transposed ? ci + ", " + (c - g * cout) : c + ", " + (ci - g * cin)) + "]" + (layer.transposed ? " (read flipped on the grid)" : "");
    $("output-caption").textContent = "output channel " + c + " (" + outSpatial.join("x") + ")";
    const at = unravel(pos, outSpatial);
    $("step-text").textContent = "position " + (pos + 1) + " of " + layer.windows.length + ": y[0, " + c + ", " + at.join(", ") + "] = " + fmt(y[pos], 4);
    $("scrub").value = String(pos);
    drawLegend();
  }

  // fill for a value: white at the smallest value of the channel, `colour` at the largest
  function shader(values, colour) {
    let lo = Infinity;
    let hi = -Infinity;
    for (const v of values) {
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
    const target = hex(colour);
    return (value) => {
      const t = hi > lo ? (value - lo) / (hi - lo) : 0;
      const rgb = target.map((ch) => Math.round(255 + (ch - 255) * t));
      return "rgb(" + rgb.join(",") + ")";
    };
  }

  function drawLegend() {
    const C = state.colours;
    const legend = $("legend");
    legend.innerHTML = "";
    const zero = state.layer && state.layer.transposed ? "padding or inserted zero" : "padding (zero)";
    const items = [["input cell", C.input_fill, C.input_line, false], [zero, C.background, C.padding_line, true],
      ["padding copy", C.copy_fill, C.copy_line, true], ["under the kernel", C.footprint.input, C.kernel_line, false],
      ["output done", C.output_done, C.output_line, false], ["current output", C.output_current, C.output_line, false]];
    for (const [name, fill, line, dashed] of items) {
      const swatch = el("i");
      swatch.style.background = fill;
      swatch.style.borderColor = line;
      if (dashed) swatch.style.borderStyle = "dashed";
      legend.append(el("span", {}, swatch, name));
    }
  }

  // ------------------------------------------------------------------ playground: player
  function stopPlay() {
    if (state.timer) clearInterval(state.timer);
    state.timer = null;
    $("play").textContent = "Play";
  }

  function togglePlay() {
    if (!state.layer) return;
    if (state.timer) {
      stopPlay();
      return;
    }
    if (state.pos >= state.layer.windows.length - 1) state.pos = 0;
    $("play").textContent = "Pause";
    drawAll();
    state.timer = setInterval(() => {
      if (state.pos >= state.layer.windows.length - 1) {
        stopPlay();
        return;
      }
      state.pos += 1;
      drawAll();
    }, 650);
  }

  function stepBy(delta) {
    if (!state.layer) return;
    stopPlay();
    state.pos = Math.max(0, Math.min(state.layer.windows.length - 1, state.pos + delta));
    drawAll();
  }

  // ------------------------------------------------------------------ playground: explain
  async function selectOutput(k) {
    stopPlay();
    state.pos = k;
    state.selected = k;
    drawAll();
    const layer = state.layer;
    const c = Number($("sel-out").value);
    const at = [0, c, ...unravel(k, layer.shape.output_shape.slice(2))].join(",");
    const ticket = ++state.explainRequest;
    let reply;
    if (state.mode === "network") {
      reply = await api("/api/network/explain", Object.assign({}, state.netLayer.params, { layer: state.netLayer.index, at }));
    } else {
      reply = await api("/api/explain", Object.assign({}, state.query, { at }));
    }
    if (ticket !== state.explainRequest) return;
    const box = $("explain");
    box.hidden = false;
    if (!reply.ok) {
      box.innerHTML = "";
      box.append(el("div", { class: "error", text: reply.data.type + ": " + reply.data.error }));
      return;
    }
    renderExplanation(reply.data);
  }

  function tapTable(term, dims, pick, transposed) {
    const shape = dims.map((d) => d.kernel);
    const [rows, cols] = rowsCols(shape);
    const table = el("table");
    const byIndex = {};
    for (const tap of term.taps) byIndex[tap.tap.join(",")] = tap;
    for (let r = 0; r < rows; r++) {
      const tr = el("tr");
      for (let q = 0; q < cols; q++) {
        const key = shape.length === 1 ? String(q) : r + "," + q;
        const tap = byIndex[key];
        const td = el("td");
        if (tap) {
          const none = transposed && tap.source === null;
          td.textContent = none && pick !== "weight" ? "·" : pick === "value" && tap.padding ? "[" + fmt(tap.value, 3) + "]" : fmt(tap[pick], 3);
          if (tap.padding && pick !== "weight") td.classList.add("pad");
          td.title = (tap.source === null ? "no input cell" : "input cell " + tap.source.join(",")) + "; w = " + full(tap.weight) + "; x*w = " + full(tap.product);
        }
        tr.append(td);
      }
      table.append(tr);
    }
    return table;
  }

  function renderExplanation(e) {
    const box = $("explain");
    box.innerHTML = "";
    const name = "y[" + e.index.join(", ") + "]";
    const c = e.batched ? e.index[1] : e.index[0];
    const p = e.precision;
    box.append(el("h3", { text: name + " - how this output is computed" }));
    box.append(el("div", { class: "mono", text: e.layer + " on input (" + e.input_shape.join(", ") + ")" }));
    const first = e.input_channels[0];
    const last = e.input_channels[e.input_channels.length - 1];
    box.append(el("p", { text: "Output channel " + c + " is in group " + e.group + " of " + e.groups + ": it reads input channels " + first + ".." + last + "." }));
    for (const d of e.dims) {
      let text;
      if (e.transposed) {
        const hits = d.positions.map((j, t) => (j === null ? null : "j=" + j + " (tap " + t + ")")).filter((v) => v);
        text = d.dim + ": output o=" + d.output + " receives input j where j*" + d.stride + " - " + d.padding[0] + " + t*" + d.dilation + " = " + d.output + ": " + (hits.length ? hits.join(", ") : "none");
      } else {
        text = d.dim + ": output i=" + d.output + " reads positions i*s - p + t*d = " + d.output + "*" + d.stride + " - " + d.padding[0] + " + t*" + d.dilation + " = " + d.positions.join(" ") + " (input 0.." + (d.size - 1) + ")";
      }
      box.append(el("div", { class: "mono", text }));
    }
    const dots = [];
    for (const term of e.channels) {
      const div = el("div", { class: "term" });
      div.append(el("div", { class: "mono", text: "input channel " + term.input_channel + ": " + term.expression }));
      const grids = el("div", { class: "grids" });
      grids.append(el("div", {}, el("div", { text: e.transposed ? "input x per tap" : "window x" }), tapTable(term, e.dims, "value", e.transposed)));
      grids.append(el("div", {}, el("div", { text: "kernel w[" + term.weight_index.join(", ") + "]" }), tapTable(term, e.dims, "weight", e.transposed)));
      grids.append(el("div", {}, el("div", { text: "products x*w" }), tapTable(term, e.dims, "product", e.transposed)));
      div.append(grids);
      div.append(el("div", { class: "sum", text: "sum of the products = " + fmt(term.dot, p) }));
      box.append(div);
      dots.push(fmt(term.dot, p));
    }
    const parts = dots.slice();
    if (e.bias === null) box.append(el("div", { class: "mono", text: "bias: none (bias=False)" }));
    else {
      box.append(el("div", { class: "mono", text: "bias b[" + c + "] = " + fmt(e.bias, p) }));
      parts.push(fmt(e.bias, p));
    }
    const total = el("span", { id: "explain-total", text: full(e.total) });
    total.dataset.value = String(e.total);
    box.append(el("div", { class: "sum" }, name + " = " + parts.join(" + ").replace(/\+ -/g, "- ") + " = ", total));
    const actual = el("span", { id: "explain-actual", text: full(e.actual) });
    actual.dataset.value = String(e.actual);
    box.append(el("div", { class: "sum" }, "the layer's own output " + name + " = ", actual));
    const how = e.tolerance === 0 ? (e.matches ? "identical (integer arithmetic is exact)" : "they differ")
      : e.identical ? "identical after rounding the sum to " + e.dtype
        : "difference " + e.difference.toExponential(2) + ", within " + e.dtype + " rounding";
    box.append(el("div", { id: "explain-verdict", class: "verdict " + (e.matches ? "ok" : "bad"), text: (e.matches ? "MATCH: " : "MISMATCH: ") + how }));
  }

  // ------------------------------------------------------------------ network view
  function netParams() {
    return state.net.image ? { image: state.net.image } : { sample: state.net.sample };
  }

  function hex(colour) {
    return [1, 3, 5].map((i) => parseInt(colour.slice(i, i + 2), 16));
  }

  function paintMap(canvas, b64, column) {
    const [h, w] = column.shape.slice(1);
    canvas.width = w;
    canvas.height = h;
    const ctx = canvas.getContext("2d");
    const image = ctx.createImageData(w, h);
    const bytes = atob(b64);
    const dark = hex(state.colours.kernel_shade);
    const negative = hex(state.colours.output_current);
    const lo = column.min;
    const hi = column.max;
    const span = hi - lo;
    const scale = Math.max(Math.abs(lo), Math.abs(hi)) || 1;
    for (let k = 0; k < w * h; k++) {
      const value = lo + (bytes.charCodeAt(k) / 255) * span; // undo the byte scaling only
      let target = dark;
      let t;
      if (lo >= 0) t = span > 0 ? (value - lo) / span : 0;
      else {
        t = Math.abs(value) / scale;
        if (value < 0) target = negative;
      }
      for (let ch = 0; ch < 3; ch++) image.data[4 * k + ch] = Math.round(255 + (target[ch] - 255) * t);
      image.data[4 * k + 3] = 255;
    }
    ctx.putImageData(image, 0, 0);
  }

  function renderSamples() {
    const net = state.meta.network;
    const box = $("samples");
    box.innerHTML = "";
    for (const sample of net.samples) {
      const label = sample.class === null ? "sample " + sample.id : sample.class;
      const button = el("button", { type: "button", class: "sample", title: label, "data-sample": String(sample.id) });
      const canvas = el("canvas", { width: sample.thumb.width, height: sample.thumb.height });
      const ctx = canvas.getContext("2d");
      const image = ctx.createImageData(canvas.width, canvas.height);
      const bytes = atob(sample.thumb.gray);
      for (let k = 0; k < bytes.length; k++) {
        const v = bytes.charCodeAt(k);
        image.data.set([v, v, v, 255], 4 * k);
      }
      ctx.putImageData(image, 0, 0);
      button.append(canvas);
      button.addEventListener("click", () => {
        state.net.sample = String(sample.id);
        state.net.image = null;
        loadNetwork();
      });
      box.append(button);
    }
  }

  async function loadNetwork() {
    if (!state.meta.network) {
      $("network-status").textContent = state.meta.network_error || "no network";
      $("network-status").classList.add("error");
      return;
    }
    $("network-status").classList.remove("error");
    $("network-status").textContent = "running the network...";
    for (const b of document.querySelectorAll("#samples button")) {
      b.classList.toggle("active", !state.net.image && b.dataset.sample === state.net.sample);
    }
    const reply = await api("/api/network", netParams());
    if (!reply.ok) {
      $("network-status").textContent = reply.data.error;
      $("network-status").classList.add("error");
      return;
    }
    state.net.data = reply.data;
    const d = reply.data;
    const truth = d.label_class ? "; true class: " + d.label_class : "";
    $("network-status").textContent = (state.net.image ? "your image" : "sample " + state.net.sample) + " - prediction: " + (d.prediction || "?") + truth;
    renderColumns(d);
  }

  function renderColumns(d) {
    const box = $("network-columns");
    box.innerHTML = "";
    for (const column of d.layers) {
      const div = el("div", { class: "column", "data-layer": String(column.index) });
      div.append(el("h4", { text: column.name, title: column.repr }));
      div.append(el("div", { class: "shape", text: column.kind + " " + column.shape.join("x") }));
      column.maps.forEach((b64, channel) => {
        const wrap = el("div", { class: "map" + (column.conv ? " conv" : ""), "data-layer": String(column.index), "data-channel": String(channel) });
        const canvas = el("canvas", { title: column.name + " channel " + channel });
        paintMap(canvas, b64, column);
        wrap.append(canvas);
        if (column.index > 0) {
          canvas.addEventListener("mousemove", (event) => hoverMap(event, column, channel));
          canvas.addEventListener("mouseleave", clearFields);
          if (column.conv) canvas.addEventListener("click", (event) => openInPlayground(event, column, channel));
        }
        div.append(wrap);
      });
      if (column.channels_shown < column.shape[0]) div.append(el("div", { class: "more", text: "+" + (column.shape[0] - column.channels_shown) + " more channels" }));
      box.append(div);
    }
    if (d.probabilities) {
      const div = el("div", { class: "column", id: "probabilities" });
      div.append(el("h4", { text: "class probabilities" }));
      div.append(el("div", { class: "shape", text: "softmax of the last layer" }));
      d.probabilities.forEach((entry, rank) => {
        const bar = el("span", { class: "bar" });
        bar.style.width = Math.max(1, Math.round(entry.p * 80)) + "px";
        div.append(el("div", { class: "prob" + (rank === 0 ? " top" : "") }, el("span", { class: "name", text: entry.class }), bar, el("span", { text: (100 * entry.p).toFixed(1) + "%" })));
      });
      box.append(div);
    }
  }

  function cellAt(event, column) {
    const [h, w] = column.shape.slice(1);
    const rect = event.target.getBoundingClientRect();
    const i = Math.min(h - 1, Math.max(0, Math.floor(((event.clientY - rect.top) / rect.height) * h)));
    const j = Math.min(w - 1, Math.max(0, Math.floor(((event.clientX - rect.left) / rect.width) * w)));
    return [i, j];
  }

  function clearFields() {
    for (const node of document.querySelectorAll(".rf")) node.remove();
    state.net.hoverKey = null;
  }

  function mark(wrap, box, shape, cls) {
    const [h, w] = shape;
    const node = el("div", { class: "rf" + (cls ? " " + cls : "") });
    const size = wrap.clientWidth;
    if (box) {
      node.style.top = (box[0] / h) * size + "px";
      node.style.left = (box[2] / w) * size + "px";
      node.style.height = ((box[1] - box[0]) / h) * size + "px";
      node.style.width = ((box[3] - box[2]) / w) * size + "px";
    } else {
      node.style.top = node.style.left = "0px";
      node.style.width = node.style.height = size + "px";
    }
    wrap.append(node);
  }

  async function hoverMap(event, column, channel) {
    const [i, j] = cellAt(event, column);
    const key = column.index + ":" + channel + ":" + i + ":" + j;
    if (key === state.net.hoverKey) return;
    state.net.hoverKey = key;
    const ticket = ++state.net.hoverRequest;
    const reply = await api("/api/network/field", Object.assign(netParams(), { layer: column.index, at: channel + "," + i + "," + j }));
    if (ticket !== state.net.hoverRequest || state.net.hoverKey !== key) return;
    for (const node of document.querySelectorAll(".rf")) node.remove();
    if (!reply.ok) {
      $("hover-info").textContent = reply.data.error;
      return;
    }
    const f = reply.data;
    const layers = state.net.data.layers;
    for (const field of f.fields) {
      const shape = layers[field.layer].shape.slice(1);
      for (const wrap of document.querySelectorAll('.map[data-layer="' + field.layer + '"]')) {
        if (field.layer === column.index) {
          if (Number(wrap.dataset.channel) === channel) mark(wrap, [i, i + 1, j, j + 1], shape, "cell-mark");
        } else mark(wrap, field.whole ? null : field.box, shape, field.whole ? "whole" : "");
      }
    }
    const input = f.fields[0];
    let where = "";
    if (input && input.box) {
      where = "; receptive field in the input: rows " + input.box[0] + ".." + (input.box[1] - 1) + ", columns " + input.box[2] + ".." + (input.box[3] - 1) + " (" + (input.box[1] - input.box[0]) + "x" + (input.box[3] - input.box[2]) + ")";
    }
    $("hover-info").textContent = f.name + " channel " + channel + " (" + i + ", " + j + ") = " + fmt(f.value, 4) + where + (column.conv ? " - click to open this layer in the playground" : "");
  }

  async function openInPlayground(event, column, channel) {
    const [i, j] = cellAt(event, column);
    const reply = await api("/api/network/layer", Object.assign(netParams(), { layer: column.index }));
    if (!reply.ok) {
      $("hover-info").textContent = reply.data.error;
      return;
    }
    stopPlay();
    state.mode = "network";
    state.request++;
    state.netLayer = { index: column.index, name: column.name, params: netParams() };
    $("layer-form").hidden = true;
    $("network-banner").hidden = false;
    const source = state.net.image ? "your image" : "sample " + state.net.sample + (state.net.data.label_class ? " (" + state.net.data.label_class + ")" : "");
    $("network-banner-text").textContent = "Layer " + column.name + " of " + state.meta.network.name + " with its trained weights; its input is what the earlier layers made of " + source + ".";
    showView("playground");
    showLayer(reply.data);
    setupSelectors(reply.data, channel);
    const outSpatial = reply.data.shape.output_shape.slice(2);
    selectOutput(i * outSpatial[outSpatial.length - 1] + j);
  }

  function leaveNetwork() {
    state.mode = "free";
    state.query = null;
    state.netLayer = null;
    $("network-banner").hidden = true;
    $("layer-form").hidden = false;
    refresh();
  }

  async function upload(file) {
    if (!file) return;
    $("network-status").classList.remove("error");
    $("network-status").textContent = "uploading " + file.name + "...";
    const reply = await api("/api/upload", null, { method: "POST", body: file, headers: { "Content-Type": file.type || "application/octet-stream" } });
    if (!reply.ok) {
      $("network-status").textContent = reply.data.error;
      $("network-status").classList.add("error");
      return;
    }
    state.net.image = reply.data.image;
    loadNetwork();
  }

  // ------------------------------------------------------------------ views and start
  function showView(name) {
    for (const tab of document.querySelectorAll(".tab")) tab.classList.toggle("active", tab.dataset.view === name);
    $("view-playground").hidden = name !== "playground";
    $("view-network").hidden = name !== "network";
    if (name === "network" && !state.net.data) loadNetwork();
  }

  async function start() {
    document.body.dataset.pending = "0";
    const reply = await api("/api/meta");
    if (!reply.ok) {
      showError(reply.data);
      return;
    }
    state.meta = reply.data;
    state.colours = reply.data.colours;
    for (const mode of state.meta.padding_modes) $("f-padding-mode").append(el("option", { value: mode, text: mode }));
    for (const name of Object.keys(state.meta.presets)) $("preset").append(el("option", { value: name, text: name }));
    $("network-name").textContent = state.meta.network ? state.meta.network.name + (state.meta.network.note ? " - " + state.meta.network.note : "") : "";
    if (state.meta.network) renderSamples();
    $("preset").addEventListener("change", () => {
      if (!$("preset").value) return;
      setForm(state.meta.presets[$("preset").value]);
      refresh();
    });
    for (const kind of ["input", "change"]) {
      $("layer-form").addEventListener(kind, (event) => {
        if (event.target.id === "preset") return;
        updateTransposedOnly();
        scheduleRefresh();
      });
    }
    $("layer-form").addEventListener("submit", (event) => event.preventDefault());
    $("sel-out").addEventListener("change", () => {
      fillInputSelector();
      state.selected = null;
      $("explain").hidden = true;
      drawAll();
    });
    $("sel-in").addEventListener("change", drawAll);
    $("play").addEventListener("click", togglePlay);
    $("step").addEventListener("click", () => stepBy(1));
    $("step-back").addEventListener("click", () => stepBy(-1));
    $("scrub").addEventListener("input", () => {
      stopPlay();
      state.pos = Number($("scrub").value);
      drawAll();
    });
    $("leave-network").addEventListener("click", leaveNetwork);
    for (const tab of document.querySelectorAll(".tab")) tab.addEventListener("click", () => showView(tab.dataset.view));
    $("file").addEventListener("change", () => upload($("file").files[0]));
    const drop = $("drop");
    drop.addEventListener("dragover", (event) => {
      event.preventDefault();
      drop.classList.add("over");
    });
    drop.addEventListener("dragleave", () => drop.classList.remove("over"));
    drop.addEventListener("drop", (event) => {
      event.preventDefault();
      drop.classList.remove("over");
      upload(event.dataTransfer.files[0]);
    });
    updateTransposedOnly();
    await refresh();
    document.body.dataset.ready = "1";
  }

  start();
})();
