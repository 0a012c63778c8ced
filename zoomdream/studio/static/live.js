"use strict";
// The Live panel: an infinite zoom steered in real time (/api/live), then rendered again as a zoom job.
(() => {
  const CONTROLS = [  // the schedulable settings of the zoom; name = the setting's dotted key
    {key: "zoom.zoom", label: "zoom", min: 0.9, max: 1.15, step: 0.001, help: "zoom factor per frame (>1 moves in)"},
    {key: "zoom.rotate", label: "rotate", min: -5, max: 5, step: 0.05, help: "degrees per frame"},
    {key: "zoom.pan", label: "pan", pair: ["x", "y"], min: -20, max: 20, step: 0.5, help: "camera px per frame"},
    {key: "zoom.center", label: "centre", pair: ["x", "y"], min: 0, max: 1, step: 0.01, help: "zoom centre"},
    {key: "step", label: "step", min: 0, max: 0.1, step: 0.001, help: "dream strength per frame"},
    {key: "zoom.colour_lock", label: "colour lock", min: 0, max: 1, step: 0.01, help: "pull toward the photo's colours"},
  ];
  const $ = (sel, root = document) => root.querySelector(sel);
  const el = (tag, attrs = {}, ...kids) => {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (k === "text") e.textContent = v; else if (v !== null && v !== undefined) e.setAttribute(k, v);
    }
    e.append(...kids);
    return e;
  };
  const state = {id: null, input: null, values: {}, layers: {}, sending: {}, pending: {}, poll: null};

  async function api(method, path, body) {
    const r = await fetch(path, {method, headers: body ? {"content-type": "application/json"} : {},
                                 body: body ? JSON.stringify(body) : undefined});
    const data = (r.headers.get("content-type") || "").includes("json") ? await r.json() : await r.text();
    if (!r.ok) throw new Error((data && data.error) || `${r.status}`);
    return data;
  }

  function build(section) {
    section.textContent = "";
    const side = el("aside", {class: "sidebar live-side"});
    const photo = el("select", {id: "live-photo", name: "input", "aria-label": "photo"});
    const size = el("select", {id: "live-size", "aria-label": "live size"},
                    ...[256, 384, 512].map((s) => el("option", {value: s, text: `${s} px`, selected: s === 384 ? "" : null})));
    const record = el("input", {type: "checkbox", id: "live-record"});
    side.append(
      el("div", {class: "panel"}, el("h2", {text: "Live"}),
         el("div", {class: "row"}, photo),
         el("div", {class: "row"}, el("label", {class: "inline"}, "size ", size),
            el("label", {class: "inline", title: "keep every frame losslessly under renders/"}, record, " record")),
         el("div", {class: "row"}, el("button", {class: "primary", id: "live-start", text: "Start"}),
            el("button", {class: "small", id: "live-pause", text: "Pause", disabled: ""}),
            el("button", {class: "small", id: "live-restart", text: "Restart", disabled: "",
                          title: "back to the photo"}),
            el("button", {class: "small", id: "live-stop", text: "Stop", disabled: ""})),
         el("div", {class: "error", id: "live-error"})),
      el("form", {class: "panel controls live-controls", id: "live-controls", autocomplete: "off"},
         el("h2", {text: "Controls"}), el("div", {id: "live-sliders"})));
    const stage = el("div", {class: "stage live-stage"},
      el("div", {class: "panel live-screen"},
         el("div", {class: "panel-head"}, el("h2", {text: "Now"}), el("span", {class: "hint", id: "live-status"})),
         el("div", {class: "live-frame"}, el("img", {id: "live-image", alt: "the live zoom"}),
            el("div", {class: "live-idle", id: "live-idle", text: "Pick a photo and press Start."}))),
      el("div", {class: "panel"},
         el("div", {class: "panel-head"}, el("h2", {text: "Take"}), el("span", {class: "hint", id: "live-take-info"})),
         el("div", {class: "row"},
            el("a", {class: "button small disabled", id: "live-take", href: "#", download: "take.yaml", text: "Download take"}),
            el("label", {class: "inline"}, "render at ",
               el("select", {id: "live-render-size", "aria-label": "render size"},
                  el("option", {value: "live", text: "the live size"}), el("option", {value: "2", text: "2x"}),
                  el("option", {value: "1280", text: "1280 px"}), el("option", {value: "1920", text: "1920 px"}))),
            el("button", {id: "live-render", text: "Render this take", disabled: ""})),
         el("pre", {class: "cmd", id: "live-cmd"}),
         el("div", {class: "error", id: "live-render-error"})));
    section.append(side, stage);
    section.classList.add("live-view");
  }

  function slider(key, label, c, value) {
    const input = el("input", {type: "range", name: key, min: c.min, max: c.max, step: c.step, value,
                               "aria-label": label});
    const out = el("output", {text: String(value)});
    input.addEventListener("input", () => { out.textContent = input.value; changed(input); });
    return el("label", {class: "live-slider", title: c.help || ""}, el("span", {text: label}), input, out);
  }

  function sliders(values, layers) {
    const box = $("#live-sliders");
    box.textContent = "";
    for (const c of CONTROLS) {
      const v = values[c.key];
      if (c.pair) c.pair.forEach((axis, k) => box.append(slider(`${c.key}.${axis}`, `${c.label} ${axis}`, c, Number(v[k]))));
      else box.append(slider(c.key, c.label, c, Number(v)));
    }
    const names = Object.keys(layers);
    if (names.length) box.append(el("h2", {text: "Layer weights"}));
    for (const name of names) {
      box.append(slider(`layers.${name}`, name.replace(/_expand_activation$/, ""), {min: 0, max: 2, step: 0.01},
                        Number(layers[name])));
    }
    box.append(el("div", {class: "error", id: "live-set-error"}));
  }

  function changed(input) {  // coalesced: one request in flight per setting, the newest value goes next
    let key = input.name, value = Number(input.value);
    const pair = CONTROLS.find((c) => c.pair && key.startsWith(c.key + "."));
    if (pair) {
      key = pair.key;
      value = pair.pair.map((axis) => Number($(`#live input[name="${key}.${axis}"]`).value));
    }
    state.pending[key] = value;
    if (!state.sending[key]) send(key);
  }

  async function send(key) {
    if (!state.id || !(key in state.pending)) return;
    const value = state.pending[key];
    delete state.pending[key];
    state.sending[key] = true;
    try {
      const r = await api("POST", `/api/live/${state.id}/set`, {[key]: value});
      $("#live-set-error").textContent = "";
      $("#live-take-info").textContent = `${key} = ${value} from frame ${r.frame}`;
    } catch (e) {
      $("#live-set-error").textContent = e.message;
    } finally {
      state.sending[key] = false;
      if (key in state.pending) send(key);
    }
  }

  async function photos() {
    const data = await api("GET", "/api/media");
    const sel = $("#live-photo");
    sel.textContent = "";
    for (const m of data.media || data.files || []) {
      if (m.kind === "image") sel.append(el("option", {value: m.path, text: m.path}));
    }
    if (!sel.options.length) sel.append(el("option", {value: "", text: "(no photo in the folder)"}));
  }

  function watch(on) {  // the stream is open only while the panel is shown: the loop pauses when nobody watches
    const img = $("#live-image");
    const want = on && state.id ? `/api/live/${state.id}/stream` : "";
    if (want && !img.src.endsWith(want)) img.src = want;
    if (!want && img.getAttribute("src")) img.removeAttribute("src");
    $("#live-idle").hidden = Boolean(want);
  }
  const visible = () => document.visibilityState === "visible" && $("#live").classList.contains("active");

  async function start() {
    $("#live-error").textContent = "";
    const input = $("#live-photo").value;
    try {
      const preset = await api("GET", "/api/presets/live");
      const s = preset.settings;
      state.values = {"zoom.zoom": s.zoom.zoom, "zoom.rotate": s.zoom.rotate, "zoom.pan": s.zoom.pan,
                      "zoom.center": s.zoom.center, "step": s.step, "zoom.colour_lock": s.zoom.colour_lock};
      state.layers = s.layers;
      if (state.id) await api("POST", `/api/live/${state.id}/stop`).catch(() => {});
      const r = await api("POST", "/api/live", {input, settings: {extends: "live"},
                                                size: Number($("#live-size").value), record: $("#live-record").checked});
      state.id = r.id;
      state.input = input;
      sliders(state.values, state.layers);
      for (const b of ["#live-pause", "#live-restart", "#live-stop", "#live-render"]) $(b).disabled = false;
      $("#live-pause").textContent = "Pause";
      $("#live-take").classList.remove("disabled");
      $("#live-take").href = `/api/live/${state.id}/take`;
      watch(visible());
      clearInterval(state.poll);
      state.poll = setInterval(status, 1000);
    } catch (e) {
      $("#live-error").textContent = e.message;
    }
  }

  async function status() {
    if (!state.id) return;
    try {
      const s = await api("GET", `/api/live/${state.id}`);
      const rec = s.record ? ` · recording to ${s.record}` : "";
      $("#live-status").textContent = `${s.state} · frame ${s.frame} · ${s.fps} fps · ${(s.size || []).join("×")}${rec}`;
      if (s.error) $("#live-error").textContent = s.error;
      if (s.state === "stopped" || s.state === "failed") {
        clearInterval(state.poll);
        for (const b of ["#live-pause", "#live-restart", "#live-stop"]) $(b).disabled = true;
      }
      state.size = s.size;
    } catch (e) {
      $("#live-error").textContent = e.message;
    }
  }

  async function command(name) {
    try {
      const s = await api("POST", `/api/live/${state.id}/${name}`);
      if (name === "pause" || name === "resume") $("#live-pause").textContent = s.user_paused ? "Resume" : "Pause";
      if (name === "stop") watch(false);
      status();
    } catch (e) {
      $("#live-error").textContent = e.message;
    }
  }

  async function renderTake() {
    $("#live-render-error").textContent = "";
    try {
      const take = await api("GET", `/api/live/${state.id}/take?format=json`);
      const settings = take.settings;
      const choice = $("#live-render-size").value;
      const [w, h] = settings.zoom.size;
      let size = [w, h];
      if (choice === "2") size = [2 * w, 2 * h];
      else if (choice !== "live") {
        const k = Number(choice) / Math.max(w, h);
        size = [2 * Math.round(w * k / 2), 2 * Math.round(h * k / 2)];
      }
      settings.zoom.size = size;
      const job = await api("POST", "/api/jobs", {command: "zoom", input: state.input, settings, options: {}});
      $("#live-cmd").textContent = `zoomdream zoom ${state.input} --preset take.yaml --size ${size[0]}x${size[1]}` +
        `   (job ${job.id}: ${settings.zoom.frames} frames)`;
      if (window.studio && window.studio.loadJobs) window.studio.loadJobs();
    } catch (e) {
      $("#live-render-error").textContent = e.message;
    }
  }

  function init() {
    const section = $("#live");
    if (!section) return;
    build(section);
    photos().catch((e) => { $("#live-error").textContent = e.message; });
    $("#live-start").addEventListener("click", start);
    $("#live-pause").addEventListener("click", () => command($("#live-pause").textContent === "Pause" ? "pause" : "resume"));
    $("#live-restart").addEventListener("click", () => command("restart"));
    $("#live-stop").addEventListener("click", () => command("stop"));
    $("#live-render").addEventListener("click", renderTake);
    $("#live-controls").addEventListener("submit", (e) => e.preventDefault());
    $("#live-take").addEventListener("click", (e) => { if (!state.id) e.preventDefault(); });
    document.addEventListener("visibilitychange", () => watch(visible()));
    // the page's tabs (studio.js): the stream is open only while the Live tab is shown
    document.addEventListener("studio:tab", () => watch(visible()));
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init); else init();
})();
