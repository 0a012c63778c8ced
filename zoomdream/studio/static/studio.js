// zoomdream studio: the page. Plain JavaScript, no build step, no network beyond the studio's own /api.
"use strict";

const $ = (sel, el = document) => el.querySelector(sel);
const $$ = (sel, el = document) => Array.from(el.querySelectorAll(sel));
const STORE = "zoomdream-studio-state-v1";
const SECTIONS_FOR = { zoom: ["dream", "zoom"], video: ["dream", "video"], image: ["dream"], sheet: ["dream"] };
const PRIMARY = new Set(["layers", "step", "iterations", "octaves", "octave_scale", "model", "seed",
  "zoom.zoom", "zoom.rotate", "zoom.pan", "zoom.center", "zoom.frames", "zoom.fps", "zoom.size",
  "zoom.colour_lock", "zoom.iterations_per_frame",
  "video.blend", "video.zoom", "video.rotate", "video.pan", "video.center", "video.colour_lock"]);
const SECTION_TITLE = { dream: "Dream", zoom: "Zoom & camera", video: "Video" };
const EXT = { zoom: ".mp4", video: ".mp4", image: ".png", sheet: ".png" };

const state = {
  catalogue: [], byKey: {}, options: {}, presets: [], media: [],
  preset: "default", base: {}, texts: {}, command: "zoom", input: "", audio: "", output: "",
  opts: {}, size: 384, frame: 0, tab: "tune", valid: true,
};
let previewAbort = null, previewVersion = 0, checkSeq = 0;
const streams = {};

// ------------------------------------------------------------------ helpers
async function api(path, options = {}) {
  const init = { method: options.method || "GET", headers: {} };
  if (options.json !== undefined) {
    init.method = options.method || "POST";
    init.headers["content-type"] = "application/json";
    init.body = JSON.stringify(options.json);
  } else if (options.body !== undefined) {
    init.method = options.method || "POST";
    init.body = options.body;
  }
  if (options.signal) init.signal = options.signal;
  const res = await fetch(path, init);
  const type = res.headers.get("content-type") || "";
  if (options.raw) return res;
  const data = type.includes("json") ? await res.json() : await res.text();
  if (!res.ok) {
    const err = new Error((data && data.error) || `${res.status}`);
    err.key = data && data.key; err.status = res.status;
    throw err;
  }
  return data;
}

function debounce(fn, ms) {
  let t = null;
  return (...args) => { clearTimeout(t); t = setTimeout(() => fn(...args), ms); };
}

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c);
  return e;
}

function status(text) { $("#status").textContent = text || ""; }

function fmtSeconds(s) {
  if (s === null || s === undefined) return "";
  s = Math.round(s);
  if (s < 60) return `${s} s left`;
  const m = Math.floor(s / 60);
  return m < 60 ? `${m} min ${s % 60} s left` : `${Math.floor(m / 60)} h ${m % 60} min left`;
}

function shellQuote(s) {
  s = String(s);
  return /^[\w@%+=:,./-]+$/.test(s) ? s : "'" + s.replace(/'/g, "'\\''") + "'";
}

// ------------------------------------------------------------------ values: text in a control <-> JSON
function getIn(obj, key) {
  const parts = key.split(".");
  let v = obj;
  if (parts.length === 1) return v ? v[key] : undefined;
  for (const p of parts) v = v ? v[p] : undefined;
  return v;
}

function formatValue(spec, v) {
  if (v === null || v === undefined) return "";
  if (spec.type === "boolean") return v ? "true" : "false";
  if (typeof v === "string") return v;
  if (typeof v === "number") return String(v);
  if (spec.type === "layers" && typeof v === "object" && !Array.isArray(v)) {
    const entries = Object.entries(v);
    if (entries.every(([, w]) => typeof w === "number")) return entries.map(([n, w]) => `${n}=${w}`).join(", ");
    return JSON.stringify(v);
  }
  if (spec.type === "pair" && Array.isArray(v) && v.length === 2 && !spec.keyframes_only) return `${v[0]}, ${v[1]}`;
  return JSON.stringify(v);
}

const NUMBER = /^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$/;

function parseValue(spec, text) {
  const t = text.trim();
  if (spec.type === "boolean") return t === "true";
  if (t === "") return spec.nullable ? null : "";
  if (t.startsWith("{") || t.startsWith("[")) {
    try { return JSON.parse(t); } catch (e) { return t; }
  }
  if (spec.type === "number" || spec.type === "integer") return NUMBER.test(t) ? Number(t) : t;
  if (spec.type === "pair") {
    const m = t.split(/\s*[,x×]\s*/);
    if (m.length === 2 && m.every((x) => NUMBER.test(x))) return [Number(m[0]), Number(m[1])];
    return t;
  }
  if (spec.type === "layers") {
    const out = {};
    for (const part of t.split(",")) {
      const [name, w] = part.split("=").map((s) => s.trim());
      if (!name) continue;
      out[name] = w === undefined || w === "" ? 1 : (NUMBER.test(w) ? Number(w) : w);
    }
    return out;
  }
  return t;
}

function changedKeys() {
  return Object.keys(state.texts).filter((k) => state.byKey[k] &&
    state.texts[k] !== formatValue(state.byKey[k], getIn(state.base, k)));
}

function settingsJSON() {
  const out = { extends: state.preset };
  for (const key of changedKeys()) {
    const value = parseValue(state.byKey[key], state.texts[key]);
    const dot = key.indexOf(".");
    if (dot < 0) out[key] = value;
    else {
      const sec = key.slice(0, dot);
      out[sec] = out[sec] || {};
      out[sec][key.slice(dot + 1)] = value;
    }
  }
  return out;
}

// ------------------------------------------------------------------ controls
function numericRange(spec) {
  if (spec.type !== "number" && spec.type !== "integer") return null;
  if (spec.min === null || spec.max === null || spec.min === undefined || spec.max === undefined) return null;
  let lo = spec.min, hi = spec.max;
  const soft = { iterations: 50, octaves: 8, jitter: 128, seed: 1000, "zoom.frames": 600, "zoom.fps": 60,
    "zoom.zoom": 1.2, "video.zoom": 2, "zoom.rotate": 10, "video.rotate": 45, tile: 1024, grad_levels: 8,
    "zoom.iterations_per_frame": 20, "video.iterations_per_frame": 20, "zoom.octaves_per_frame": 8,
    "zoom.dream_every": 12, border: 8, guide_weight: 10, "video.occlusion": 10 };
  if (soft[spec.key] !== undefined) hi = Math.min(hi, soft[spec.key]);
  if (spec.key === "zoom.zoom") lo = 0.8;
  if (spec.key === "video.zoom") lo = 0.5;
  if (spec.key.endsWith("rotate")) lo = -hi;
  if (hi - lo > 5000) return null;
  const step = spec.type === "integer" ? 1 : (hi - lo) / 1000;
  return { lo, hi, step };
}

function buildControls() {
  const form = $("#controls");
  form.replaceChildren();
  const sections = SECTIONS_FOR[state.command];
  for (const section of sections) {
    const specs = state.catalogue.filter((s) => s.section === section && s.key !== "description");
    const fs = el("fieldset", { "data-section": section }, el("legend", { text: SECTION_TITLE[section] }));
    const more = el("details", {}, el("summary", { text: "more settings" }));
    for (const spec of specs) (PRIMARY.has(spec.key) ? fs : more).append(control(spec));
    fs.append(more);
    form.append(fs);
  }
  markChanged();
}

function control(spec) {
  const id = "c-" + spec.key.replace(/\./g, "-");
  const text = state.texts[spec.key] ?? formatValue(spec, getIn(state.base, spec.key));
  state.texts[spec.key] = text;
  const wrap = el("div", { class: "control", "data-key": spec.key });
  const label = el("label", { for: id, text: spec.key.split(".").pop().replace(/_/g, " ") });
  const head = el("span", { class: "key", text: spec.flag || spec.key });
  if (spec.schedulable) head.append(" ", el("span", { class: "badge", title: "may be a schedule", text: "~" }));
  const field = el("div", { class: "field" });
  let input;
  if (spec.type === "choice") {
    input = el("select", { id, name: spec.key });
    for (const c of spec.choices) input.append(el("option", { value: c, text: c }));
    input.value = text;
  } else if (spec.type === "boolean") {
    input = el("input", { type: "checkbox", id, name: spec.key });
    input.checked = text === "true";
  } else {
    input = el("input", { type: "text", id, name: spec.key, value: text, spellcheck: "false",
      placeholder: spec.nullable ? "none" : "" });
    const range = numericRange(spec);
    if (range) {
      const slider = el("input", { type: "range", min: range.lo, max: range.hi, step: range.step,
        "aria-label": spec.key + " slider", tabindex: "-1" });
      const sync = () => {
        const plain = NUMBER.test(input.value);
        if (plain) slider.value = input.value;
        slider.hidden = !plain;  // a schedule or keyframes: the text field takes the whole row
        input.classList.toggle("num", plain);
      };
      sync();
      slider.addEventListener("input", () => {
        const v = spec.type === "integer" ? String(Math.round(slider.value)) : String(Number(slider.value).toPrecision(4) * 1);
        input.value = v;
        onValue(spec.key, v);
      });
      input.addEventListener("input", sync);
      field.append(slider);
      sync();
    }
  }
  field.prepend(input);
  const commit = () => onValue(spec.key, spec.type === "boolean" ? String(input.checked) : input.value);
  input.addEventListener(spec.type === "boolean" || spec.type === "choice" ? "change" : "input", commit);
  wrap.append(label, head, field, el("div", { class: "help", text: spec.help + (spec.what ? ` (${spec.what})` : "") }),
    el("div", { class: "error", id: id + "-error" }));
  return wrap;
}

function onValue(key, text) {
  state.texts[key] = text;
  markChanged();
  save();
  refreshSoon();
}

function markChanged() {
  const changed = new Set(changedKeys());
  for (const c of $$("#controls .control")) c.classList.toggle("changed", changed.has(c.dataset.key));
  renderCommandLine();
}

function showErrors(key, message) {
  for (const c of $$("#controls .control")) {
    c.classList.remove("invalid");
    $(".error", c).textContent = "";
  }
  $("#preset-error").textContent = "";
  if (!message) return;
  const c = key && $(`#controls .control[data-key="${CSS.escape(key)}"]`);
  if (c) {
    c.classList.add("invalid");
    $(".error", c).textContent = message;
    const details = c.closest("details");
    if (details) details.open = true;
  } else {
    $("#preset-error").textContent = message;
  }
}

// ------------------------------------------------------------------ check, preview, schedules
const refreshSoon = debounce(refresh, 350);

async function refresh() {
  const seq = ++checkSeq;
  let result;
  try {
    result = await api("/api/check", { json: { settings: settingsJSON() } });
  } catch (e) { status(e.message); return; }
  if (seq !== checkSeq) return;
  state.valid = !result.error;
  showErrors(result.key, result.error);
  if (!state.valid) return;
  preview();
  schedules();
}

function currentMedia() { return state.media.find((m) => m.path === state.input); }

async function preview() {
  const m = currentMedia();
  if (!m || !state.valid || (m.kind !== "image" && m.kind !== "video")) return;
  if (previewAbort) previewAbort.abort();
  const ctrl = previewAbort = new AbortController();
  const body = { input: state.input, settings: settingsJSON(), size: state.size, frame: state.frame,
    command: scheduleCommand() };
  if (state.audio) body.audio = state.audio;
  $("#preview-busy").hidden = false;
  $("#preview-error").textContent = "";
  const t0 = performance.now();
  try {
    if (m.kind === "video") {
      const before = await api("/api/preview", { json: { ...body, dream: false }, signal: ctrl.signal, raw: true });
      if (before.ok) setImage($("#before"), await before.blob());
    } else {
      $("#before").src = "/files/" + encodeURI(state.input);
    }
    const res = await api("/api/preview", { json: body, signal: ctrl.signal, raw: true });
    if (res.status === 409) return;
    if (!res.ok) {
      const data = await res.json();
      $("#preview-error").textContent = data.error;
      return;
    }
    setImage($("#after"), await res.blob());
    $("#after").dataset.version = String(++previewVersion);
    $("#preview-time").textContent = `${((performance.now() - t0) / 1000).toFixed(1)} s`;
  } catch (e) {
    if (e.name !== "AbortError") $("#preview-error").textContent = e.message;
  } finally {
    if (previewAbort === ctrl) { $("#preview-busy").hidden = true; previewAbort = null; }
  }
}

function setImage(img, blob) {
  const old = img.dataset.blob;
  img.src = URL.createObjectURL(blob);
  img.dataset.blob = img.src;
  if (old) setTimeout(() => URL.revokeObjectURL(old), 1000);
}

function scheduleCommand() { return state.command === "video" ? "video" : "zoom"; }

async function schedules() {
  const command = scheduleCommand();
  const body = { command, settings: settingsJSON() };
  const m = currentMedia();
  if (command === "video" && m && m.kind === "video" && m.frames) {
    body.frames = Math.min(m.frames, state.opts.preview ? Number(state.opts.preview) : m.frames);
    body.fps = m.fps;
  }
  if (state.audio) body.audio = state.audio;
  $("#schedule-error").textContent = "";
  try {
    const data = await api("/api/schedules", { json: body });
    drawGraphs(data);
  } catch (e) {
    $("#schedule-error").textContent = e.message;
    if (e.key) showErrors(e.key, e.message);
  }
}

function drawGraphs(data) {
  const box = $("#graphs");
  box.replaceChildren();
  const keys = Object.keys(data.values).filter((k) => !k.startsWith("video.") || state.command === "video");
  keys.sort((a, b) => Number(!!isConstant(data.values[a])) - Number(!!isConstant(data.values[b])));
  for (const key of keys) box.append(graph(key, data.values[key], data.frames, false));
  for (const [name, values] of Object.entries(data.audio || {})) box.append(graph(name, values, data.frames, true));
  const n = data.frames, secs = n / data.fps;
  $("#schedule-info").textContent = `${n} frames · ${secs.toFixed(1)} s at ${data.fps} fps` +
    (state.audio ? ` · audio: ${state.audio}` : "");
}

function isConstant(values) { return values.every((v) => v === values[0]); }

function graph(name, values, n, audio) {
  const canvas = el("canvas", { "data-key": name, title: name });
  const flat = !audio && isConstant(values);
  const row = el("div", { class: "graph" + (audio ? " audio" : "") + (flat ? " constant" : "") },
    el("div", { class: "name", text: name }), canvas);
  requestAnimationFrame(() => plot(canvas, values, audio));
  return row;
}

function plot(canvas, values, audio) {
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth || 300, h = canvas.clientHeight || 40;
  canvas.width = Math.round(w * dpr); canvas.height = Math.round(h * dpr);
  const g = canvas.getContext("2d");
  g.scale(dpr, dpr);
  let lo = Math.min(...values), hi = Math.max(...values);
  if (audio) { lo = 0; hi = 1; }
  const flat = hi - lo < 1e-12;
  if (flat) { lo -= 1; hi += 1; }
  const pad = 5, x = (i) => pad + (w - 2 * pad) * (values.length > 1 ? i / (values.length - 1) : 0.5);
  const y = (v) => h - pad - (h - 2 * pad) * (v - lo) / (hi - lo);
  g.strokeStyle = "#232836"; g.lineWidth = 1;
  for (let k = 0; k <= 4; k++) { const gx = pad + (w - 2 * pad) * k / 4; g.beginPath(); g.moveTo(gx, 0); g.lineTo(gx, h); g.stroke(); }
  const grad = g.createLinearGradient(0, 0, w, 0);
  grad.addColorStop(0, audio ? "#2aa6a0" : "#8b7bff"); grad.addColorStop(1, audio ? "#3fd0c9" : "#b2a8ff");
  if (audio) {
    g.fillStyle = "rgba(63, 208, 201, 0.18)";
    g.beginPath(); g.moveTo(x(0), y(0));
    values.forEach((v, i) => g.lineTo(x(i), y(v)));
    g.lineTo(x(values.length - 1), y(0)); g.closePath(); g.fill();
  }
  g.strokeStyle = grad; g.lineWidth = 1.6; g.beginPath();
  values.forEach((v, i) => (i ? g.lineTo(x(i), y(v)) : g.moveTo(x(i), y(v))));
  g.stroke();
  g.fillStyle = "#9aa3b2"; g.font = "10px system-ui, sans-serif";
  if (!audio) {
    const fmt = (v) => Math.abs(v) >= 100 ? v.toFixed(0) : Number(v.toPrecision(4)).toString();
    const label = (text, ty) => {
      const tw = g.measureText(text).width + 8;
      g.fillStyle = "rgba(13, 16, 22, 0.85)"; g.fillRect(w - tw - 4, ty - 10, tw, 13);
      g.fillStyle = "#9aa3b2"; g.fillText(text, w - tw, ty);
    };
    if (flat) label(fmt(values[0]), h / 2 + 3);
    else { label(fmt(hi), 12); label(fmt(lo), h - 3); }
  }
}

async function motionPreview() {
  const m = currentMedia();
  $("#motion-error").textContent = "";
  if (!m) { $("#motion-error").textContent = "pick a photo or a clip first"; return; }
  const command = m.kind === "video" ? "video" : "zoom";
  const frames = Math.min(96, command === "zoom" ? Number(state.texts["zoom.frames"]) || 48 : 48);
  $("#motion-go").disabled = true;
  try {
    const res = await api("/api/motion", { json: { input: state.input, command, settings: settingsJSON(), frames, size: 320 }, raw: true });
    if (res.status === 409) return;
    if (!res.ok) { $("#motion-error").textContent = (await res.json()).error; return; }
    const video = $("#motion");
    if (video.src.startsWith("blob:")) URL.revokeObjectURL(video.src);
    video.src = URL.createObjectURL(await res.blob());
    video.play().catch(() => {});
  } catch (e) {
    $("#motion-error").textContent = e.message;
  } finally { $("#motion-go").disabled = false; }
}

// ------------------------------------------------------------------ command line and render
function flagValue(spec, value) {
  if (Array.isArray(value) && value.length === 2 && value.every((v) => typeof v === "number"))
    return spec.key.endsWith("size") ? `${value[0]}x${value[1]}` : `${value[0]},${value[1]}`;
  if (spec.type === "layers" && value && typeof value === "object")
    return Object.entries(value).map(([n, w]) => `${n}=${w}`).join(",");
  if (value && typeof value === "object") return JSON.stringify(value);
  return String(value);
}

function defaultOutput() {
  const stem = (state.input.split("/").pop() || "input").replace(/\.[^.]+$/, "");
  return `renders/${stem}-${state.command}${EXT[state.command]}`;
}

function argv() {
  const args = [state.command, state.input || "INPUT", "-o", state.output || defaultOutput(), "--preset", state.preset];
  const presetOnly = [];
  for (const key of changedKeys()) {
    const spec = state.byKey[key];
    const section = key.includes(".") ? key.split(".")[0] : "dream";
    if (!SECTIONS_FOR[state.command].includes(section)) continue;
    const value = parseValue(spec, state.texts[key]);
    if (!spec.flag || (value && typeof value === "object" && !Array.isArray(value) && spec.type !== "layers")) {
      presetOnly.push(key); continue;
    }
    if (spec.type === "boolean") args.push(value ? spec.flag : spec.flag.replace(/^--/, "--no-"));
    else if (value === null) presetOnly.push(key);
    else args.push(spec.flag, flagValue(spec, value));
  }
  for (const [name, value] of Object.entries(jobOptions())) {
    if (value === "" || value === null || value === undefined || value === false) continue;
    args.push(value === true ? `--${name}` : `--${name}`, ...(value === true ? [] : [String(value)]));
  }
  return { args, presetOnly };
}

function renderCommandLine() {
  const { args, presetOnly } = argv();
  let text = "zoomdream " + args.map(shellQuote).join(" ");
  if (presetOnly.length) text += `\n# also set in a preset: ${presetOnly.join(", ")} (Save as preset, then --preset NAME)`;
  $("#cmdline").textContent = text;
}

function buildOptions() {
  const box = $("#options");
  box.replaceChildren();
  for (const opt of state.options[state.command] || []) {
    if (opt.name === "audio") continue;  // the Sound picker of the Source panel
    const id = "opt-" + opt.name;
    let input;
    if (opt.type === "flag") {
      input = el("input", { type: "checkbox", id, name: "option." + opt.name });
      input.checked = !!state.opts[opt.name];
      input.addEventListener("change", () => { state.opts[opt.name] = input.checked; optionChanged(); });
    } else if (opt.type === "path") {
      input = el("select", { id, name: "option." + opt.name }, el("option", { value: "", text: "none" }));
      for (const m of state.media.filter((m) => m.kind === "audio" || m.kind === "video" || (opt.name === "mask" && m.kind === "image")))
        input.append(el("option", { value: m.path, text: m.path }));
      input.value = state.opts[opt.name] || "";
      input.addEventListener("change", () => { state.opts[opt.name] = input.value; optionChanged(); });
    } else {
      input = el("input", { type: "text", id, name: "option." + opt.name, value: state.opts[opt.name] ?? "", placeholder: "default" });
      input.addEventListener("input", () => { state.opts[opt.name] = input.value.trim(); optionChanged(); });
    }
    box.append(el("div", { class: "control" }, el("label", { for: id, text: opt.name.replace(/-/g, " ") }),
      el("span", { class: "key", text: opt.flag }), el("div", { class: "field" }, input),
      opt.help ? el("div", { class: "help", text: opt.help }) : null));
    box.lastChild.title = opt.help || "";
  }
}

function optionChanged() { renderCommandLine(); save(); if (state.command === "video") schedules(); }

function jobOptions() {
  const out = {};
  for (const opt of state.options[state.command] || []) {
    const v = opt.name === "audio" ? state.audio : state.opts[opt.name];
    if (v === undefined || v === "" || v === false) continue;
    out[opt.name] = opt.type === "number" && NUMBER.test(v) ? Number(v) : v;
  }
  return out;
}

async function render() {
  $("#render-error").textContent = "";
  if (!state.input) { $("#render-error").textContent = "pick a photo or a clip first"; return; }
  try {
    const body = { command: state.command, input: state.input, settings: settingsJSON(), options: jobOptions() };
    if (state.output) body.output = state.output;
    const data = await api("/api/jobs", { json: body });
    await loadJobs();
    watchJob(data.id);
  } catch (e) {
    $("#render-error").textContent = e.message;
    if (e.key) showErrors(e.key, e.message);
  }
}

// ------------------------------------------------------------------ jobs
async function loadJobs() {
  try {
    const data = await api("/api/jobs");
    const list = $("#jobs");
    const jobs = data.jobs.slice().reverse();
    list.replaceChildren(...jobs.map(jobItem));
    for (const j of jobs) if (j.state === "running" || j.state === "queued") watchJob(j.id);
  } catch (e) { status(e.message); }
}

function jobItem(job) {
  const li = el("li", { class: "job", id: "job-" + job.id, "data-id": job.id });
  updateJob(li, job);
  return li;
}

function updateJob(li, job) {
  const thumbSrc = job.latest ? "/files/" + encodeURI(job.latest) + "?frame=" + job.done :
    (job.state === "done" && /\.(png|jpe?g|webp)$/i.test(job.output)) ? "/files/" + encodeURI(job.output) : null;
  const thumb = thumbSrc ? el("img", { class: "thumb", src: thumbSrc, alt: "latest frame" }) : el("div", { class: "thumb" });
  const name = job.output.split("/").pop();
  const meta = el("div", { class: "meta" }, el("span", { class: "state " + job.state, text: job.state }),
    el("span", { text: job.total ? `${job.unit} ${job.done} of ${job.total}` : job.command }),
    el("span", { class: "left", text: job.state === "running" ? fmtSeconds(job.left) : "" }));
  const bar = el("progress", { max: job.total || 1, value: job.total ? job.done : 0 });
  const actions = el("div", { class: "actions" });
  if (job.state === "running" || job.state === "queued")
    actions.append(el("button", { class: "small cancel", text: "Cancel", onclick: () => jobAction(job.id, "cancel") }));
  if (job.state === "cancelled" || job.state === "failed")
    actions.append(el("button", { class: "small resume", text: "Resume", onclick: () => jobAction(job.id, "resume") }));
  if (job.state === "done")
    actions.append(el("button", { class: "small open", text: "Open", onclick: () => openRender(job.output) }));
  const body = el("div", {}, el("div", { class: "title", title: job.command_line, text: name }), meta, bar, actions);
  li.replaceChildren(thumb, body);
  if (job.error) li.append(el("div", { class: "error", text: job.error }));
  li.dataset.state = job.state;
}

async function jobAction(id, action) {
  try {
    await api(`/api/jobs/${id}/${action}`, { json: {} });
  } catch (e) { status(e.message); }
  await loadJobs();
}

function watchJob(id) {
  if (streams[id]) return;
  const source = new EventSource(`/api/jobs/${id}/events`);
  streams[id] = source;
  const update = (ev) => {
    const job = JSON.parse(ev.data);
    const li = document.getElementById("job-" + id);
    if (li) updateJob(li, job);
  };
  source.addEventListener("progress", update);
  source.addEventListener("state", (ev) => {
    update(ev);
    source.close(); delete streams[id];
    const job = JSON.parse(ev.data);
    if (job.state === "done") { loadGallery(); loadMedia(false); }
  });
  source.onerror = () => { source.close(); delete streams[id]; };
}

// ------------------------------------------------------------------ gallery
async function loadGallery() {
  try {
    const data = await api("/api/gallery");
    const grid = $("#gallery-grid");
    grid.replaceChildren(...data.renders.map((r) => {
      const isVideo = r.kind === "video" && !/\.gif$/i.test(r.path);
      const media = isVideo ? el("video", { src: "/files/" + encodeURI(r.path) + "#t=0.5", muted: true, preload: "metadata" })
        : el("img", { src: "/files/" + encodeURI(r.path), alt: r.path });
      const tile = el("button", { class: "tile", "data-path": r.path, onclick: () => showRender(r) }, media,
        el("div", { class: "name", text: r.path.replace(/^renders\//, "") }));
      return tile;
    }));
    state.renders = data.renders;
    if (!data.renders.length) grid.append(el("div", { class: "hint", text: "No renders yet: they appear here when a job is done." }));
    // keep the render on show, else show the newest one (never an empty player)
    const current = data.renders.find((x) => x.path === $("#viewer-name").textContent) || data.renders[0];
    $("#viewer").hidden = !current;
    if (current) showRender(current);
  } catch (e) { status(e.message); }
}

function openRender(path) {
  setTab("gallery");
  loadGallery().then(() => {
    const r = (state.renders || []).find((x) => x.path === path);
    if (r) showRender(r);
  });
}

function showRender(r) {
  for (const t of $$(".tile")) t.classList.toggle("active", t.dataset.path === r.path);
  const isVideo = r.kind === "video" && !/\.gif$/i.test(r.path);
  const video = $("#viewer-video"), img = $("#viewer-image");
  video.hidden = !isVideo; img.hidden = isVideo;
  if (isVideo) { video.src = "/files/" + encodeURI(r.path); } else { video.removeAttribute("src"); img.src = "/files/" + encodeURI(r.path); }
  $("#viewer-name").textContent = r.path;
  $("#viewer-settings").textContent = r.settings ? yamlish(r.settings) : (r.problem || "");
  $("#load-settings").disabled = !r.settings;
  $("#load-settings").onclick = () => loadSettings(r.settings);
}

function yamlish(obj, indent = "") {
  return Object.entries(obj).map(([k, v]) => (v && typeof v === "object" && !Array.isArray(v) && ["video", "zoom", "meta"].includes(k))
    ? `${indent}${k}:\n${yamlish(v, indent + "  ")}` : `${indent}${k}: ${JSON.stringify(v)}`).join("\n");
}

function loadSettings(settings) {
  state.texts = {};
  for (const spec of state.catalogue) {
    const v = getIn(settings, spec.key);
    if (v !== undefined) state.texts[spec.key] = formatValue(spec, v);
  }
  buildControls();
  save();
  setTab("tune");
  refresh();
  status("settings loaded");
}

// ------------------------------------------------------------------ media, presets, state
async function loadMedia(select = true) {
  const data = await api("/api/media");
  state.media = data.media;
  const sel = $("#media"), audio = $("#audio");
  const pick = (m) => m.kind === "image" || m.kind === "video";
  sel.replaceChildren(el("option", { value: "", text: "— choose a photo or clip —" }),
    ...state.media.filter((m) => pick(m) && !m.path.startsWith("renders/")).map((m) => el("option", { value: m.path, text: m.path })));
  audio.replaceChildren(el("option", { value: "", text: "none" }),
    ...state.media.filter((m) => m.kind === "audio" || (m.kind === "video" && m.audio)).map((m) => el("option", { value: m.path, text: m.path })));
  if (state.input && !state.media.some((m) => m.path === state.input)) state.input = "";
  if (select && !state.input) {
    const first = state.media.find((m) => m.kind === "image");
    if (first) state.input = first.path;
  }
  sel.value = state.input;
  audio.value = state.audio;
  mediaInfo();
  buildOptions();
}

function mediaInfo() {
  const m = currentMedia();
  $("#media-info").textContent = !m ? "" : [m.kind, m.width && `${m.width}×${m.height}`,
    m.duration && `${m.duration.toFixed(1)} s`, m.frames && `${m.frames} frames`, `${(m.size / 1e6).toFixed(2)} MB`]
    .filter(Boolean).join(" · ");
  $("#media-error").textContent = m && m.problem ? m.problem : "";
}

async function loadPresets() {
  const data = await api("/api/presets");
  state.presets = data.presets;
  const sel = $("#preset");
  const group = (source, label) => {
    const g = el("optgroup", { label });
    for (const p of data.presets.filter((p) => p.source === source)) g.append(el("option", { value: p.name, text: p.name, title: p.description }));
    return g;
  };
  sel.replaceChildren(group("bundled", "bundled"), group("saved", "saved here"));
  if (!data.presets.some((p) => p.name === state.preset)) state.preset = "default";
  sel.value = state.preset;
}

async function choosePreset(name, keepTexts) {
  state.preset = name;
  const data = await api("/api/presets/" + encodeURIComponent(name));
  state.base = data.settings;
  if (!keepTexts) state.texts = {};
  buildControls();
  save();
  refresh();
}

async function savePreset() {
  const name = $("#preset-name").value.trim();
  $("#preset-error").textContent = "";
  try {
    await api("/api/presets", { json: { name, settings: settingsJSON() } });
    await loadPresets();
    $("#preset").value = name;
    await choosePreset(name, false);
    status(`saved presets/${name}.yaml`);
  } catch (e) {
    $("#preset-error").textContent = e.message;
  }
}

async function upload(file) {
  $("#media-error").textContent = "";
  status(`uploading ${file.name}…`);
  try {
    const data = await api("/api/upload?name=" + encodeURIComponent(file.name), { body: file });
    await loadMedia(false);
    if (data.kind === "audio") { state.audio = data.path; $("#audio").value = data.path; schedules(); }
    else { state.input = data.path; $("#media").value = data.path; mediaInfo(); refresh(); }
    status(`uploaded ${data.path}`);
    save();
  } catch (e) {
    $("#media-error").textContent = e.message;
    status("");
  }
}

function save() {
  const keep = { preset: state.preset, texts: state.texts, command: state.command, input: state.input, audio: state.audio,
    output: state.output, opts: state.opts, size: state.size, frame: state.frame, tab: state.tab };
  try { localStorage.setItem(STORE, JSON.stringify(keep)); } catch (e) { /* private mode: nothing kept */ }
}

function restore() {
  try {
    const kept = JSON.parse(localStorage.getItem(STORE) || "null");
    if (kept && typeof kept === "object") Object.assign(state, kept);
  } catch (e) { /* a damaged entry: start afresh */ }
}

function setTab(name) {
  state.tab = name;
  for (const t of $$(".tab")) { t.classList.toggle("active", t.dataset.tab === name); t.setAttribute("aria-selected", t.dataset.tab === name); }
  for (const v of $$(".view")) v.classList.toggle("active", v.id === name);
  if (name === "gallery") loadGallery();
  document.dispatchEvent(new CustomEvent("studio:tab", { detail: name }));
  save();
}

function setCommand(name) {
  state.command = name;
  for (const b of $$("#command button")) b.classList.toggle("active", b.dataset.command === name);
  buildControls();
  buildOptions();
  save();
  refresh();
}

// ------------------------------------------------------------------ start
async function start() {
  restore();
  const data = await api("/api/settings");
  state.catalogue = data.settings;
  state.options = data.options;
  state.byKey = Object.fromEntries(data.settings.map((s) => [s.key, s]));
  for (const k of Object.keys(state.texts)) if (!state.byKey[k]) delete state.texts[k];
  if (!SECTIONS_FOR[state.command]) state.command = "zoom";
  await loadPresets();
  await loadMedia(true);
  for (const b of $$("#command button")) b.classList.toggle("active", b.dataset.command === state.command);
  $("#preview-size").value = String(state.size);
  $("#source-frame").value = String(state.frame);
  $("#output").value = state.output || "";
  await choosePreset(state.preset, true);

  $("#media").addEventListener("change", (e) => { state.input = e.target.value; mediaInfo(); save(); renderCommandLine(); preview(); });
  $("#audio").addEventListener("change", (e) => { state.audio = e.target.value; save(); renderCommandLine(); refresh(); });
  $("#source-frame").addEventListener("change", (e) => { state.frame = Math.max(0, Number(e.target.value) || 0); save(); preview(); });
  $("#preview-size").addEventListener("change", (e) => { state.size = Number(e.target.value); save(); preview(); });
  $("#preset").addEventListener("change", (e) => choosePreset(e.target.value, false));
  $("#reset").addEventListener("click", () => choosePreset(state.preset, false));
  $("#save-preset").addEventListener("click", savePreset);
  $("#upload-file").addEventListener("change", (e) => { if (e.target.files[0]) upload(e.target.files[0]); e.target.value = ""; });
  $("#motion-go").addEventListener("click", motionPreview);
  $("#render").addEventListener("click", render);
  $("#output").addEventListener("input", (e) => { state.output = e.target.value.trim(); renderCommandLine(); save(); });
  $("#copy-cmd").addEventListener("click", async () => {
    try { await navigator.clipboard.writeText($("#cmdline").textContent); status("command line copied"); }
    catch (e) {
      const r = document.createRange(); r.selectNodeContents($("#cmdline"));
      const s = window.getSelection(); s.removeAllRanges(); s.addRange(r); status("selected: press Ctrl-C to copy");
    }
  });
  for (const b of $$("#command button")) b.addEventListener("click", (e) => { e.preventDefault(); setCommand(b.dataset.command); });
  for (const t of $$(".tab")) t.addEventListener("click", () => setTab(t.dataset.tab));
  $("#controls").addEventListener("submit", (e) => e.preventDefault());
  await loadJobs();
  setTab(state.tab || "tune");
  document.body.dataset.ready = "true";
  document.dispatchEvent(new CustomEvent("studio:ready"));
}

window.studio = { api, settingsJSON, state, media: () => state.media, setTab, refresh, loadJobs };
start().catch((e) => status("could not start: " + e.message));
