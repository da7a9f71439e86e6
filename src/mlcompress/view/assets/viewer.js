/* mlcompress comparison page: rate-distortion charts and a split-view image comparer.
 *
 * Written for mlcompress; no libraries, no network. Reads the JSON block #mlc-data (see
 * mlcompress/view/page.py for its schema) and builds:
 *   - #rd-charts: PSNR and MS-SSIM (dB) against bpp as SVG; hover a point for codec, quality,
 *     bpp, dB and times; the legend toggles codecs.
 *   - #viewer: two decoded images in one stage, split by a divider (drag it, or arrow keys,
 *     Shift for larger steps; S swaps the sides), zoom fit / 1:1 / 2x / 4x shared by both sides
 *     (1:1 is one image pixel per device pixel, drawn pixelated), panning shared too, and
 *     readouts of bytes, bpp, PSNR and MS-SSIM for each side and their difference.
 */
"use strict";
(function () {
  const DATA = JSON.parse(document.getElementById("mlc-data").textContent);
  const SVGNS = "http://www.w3.org/2000/svg";
  const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                   "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];
  const ANCHOR_PALETTE = ["#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d", "#666666"];

  // ------------------------------------------------------------ helpers

  function el(tag, attrs, children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "text") e.textContent = v;
      else if (k === "className") e.className = v;
      else e.setAttribute(k, v);
    }
    for (const c of children || []) e.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
    return e;
  }

  function svg(tag, attrs, text) {
    const e = document.createElementNS(SVGNS, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    return e;
  }

  /** A JSON number of the page: "inf" is Infinity, null is NaN. */
  function num(v) {
    if (v === "inf") return Infinity;
    return (v === null || v === undefined) ? NaN : Number(v);
  }

  function fixed(v, digits) {
    v = num(v);
    if (v === Infinity) return "inf";
    return Number.isFinite(v) ? v.toFixed(digits) : "n/a";
  }

  function signed(v, digits) {
    if (!Number.isFinite(v)) return "n/a";
    const s = v.toFixed(digits);
    return (v >= 0 && !s.startsWith("-") ? "+" : "") + s;
  }

  function quality(q) {
    if (q === null || q === undefined) return "-";
    return Number.isInteger(q) ? String(q) : String(Number(q.toPrecision(4)));
  }

  function niceTicks(lo, hi, count) {
    const raw = (hi - lo) / count;
    const mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 2.5, 5, 10].map(m => m * mag).find(s => raw <= s) || 10 * mag;
    const ticks = [];
    for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) ticks.push(Number(t.toPrecision(12)));
    return ticks;
  }

  // ------------------------------------------------------------ RD charts

  function RDCharts(chartsRoot, legendRoot, curves) {
    const METRICS = [{key: "psnr", label: "PSNR-RGB (dB)", title: "PSNR"},
                     {key: "ms_ssim_db", label: "MS-SSIM (dB) = -10 log10(1 - MS-SSIM)", title: "MS-SSIM"}];
    const lossy = curves.filter(c => !c.lossless);
    const shown = new Map(lossy.map(c => [c.name, true]));
    const colour = new Map();
    let measured = 0, published = 0;
    for (const c of lossy) {
      colour.set(c.name, c.published ? ANCHOR_PALETTE[published++ % ANCHOR_PALETTE.length]
                                      : PALETTE[measured++ % PALETTE.length]);
    }
    const tip = el("div", {className: "tooltip", role: "status"});
    tip.hidden = true;
    chartsRoot.appendChild(tip);

    for (const c of lossy) {
      const b = el("button", {type: "button", className: "legend-item", "aria-pressed": "true", "data-codec": c.name}, [
        el("span", {className: "swatch" + (c.published ? " dashed" : ""), style: `border-color:${colour.get(c.name)}`}),
        c.published ? c.name + " (published)" : c.name]);
      b.addEventListener("click", () => {
        shown.set(c.name, !shown.get(c.name));
        b.setAttribute("aria-pressed", String(shown.get(c.name)));
        draw();
      });
      legendRoot.appendChild(b);
    }

    function series(metric) {
      return lossy.map(c => ({
        c, pts: c.points.filter(p => num(p.bpp) > 0 && Number.isFinite(num(p[metric.key]))),
      })).filter(s => s.pts.length);
    }

    function showTip(evt, c, p, metric) {
      tip.textContent = "";
      const lines = [
        c.published ? c.name + " (published)" : c.name,
        "quality " + quality(p.quality),
        fixed(p.bpp, 4) + " bpp",
        fixed(p[metric.key], 2) + " dB " + metric.title + (metric.key === "ms_ssim_db" ? " (MS-SSIM " + fixed(p.ms_ssim, 4) + ")" : ""),
        "encode " + fixed(p.encode_s, 3) + " s, decode " + fixed(p.decode_s, 3) + " s",
      ];
      lines.forEach((t, i) => tip.appendChild(i ? el("div", {text: t}) : el("strong", {text: t})));
      const box = chartsRoot.getBoundingClientRect();
      tip.style.left = (evt.clientX - box.left + 14) + "px";
      tip.style.top = (evt.clientY - box.top + 14) + "px";
      tip.hidden = false;
    }

    function chart(metric) {
      const W = 640, H = 400, L = 60, R = 16, T = 30, B = 46;
      const all = series(metric);
      const visible = all.filter(s => shown.get(s.c.name));
      const bpps = (visible.length ? visible : all).flatMap(s => s.pts.map(p => num(p.bpp)));
      const xmax = Math.max(1, Math.min(Math.max(...bpps, 2), 4) * 1.04);
      let ys = visible.flatMap(s => s.pts.filter(p => num(p.bpp) <= xmax).map(p => num(p[metric.key])));
      if (!ys.length) ys = [0, 1];
      let lo = Math.min(...ys), hi = Math.max(...ys);
      const pad = Math.max(0.5, 0.04 * (hi - lo));
      lo -= pad; hi += pad;
      const x = v => L + (v / xmax) * (W - L - R);
      const y = v => T + (1 - (v - lo) / (hi - lo)) * (H - T - B);
      const root = svg("svg", {viewBox: `0 0 ${W} ${H}`, class: "rd-chart", "data-metric": metric.key,
                               role: "img", "aria-label": metric.title + " against bpp"});
      root.appendChild(svg("text", {x: W / 2, y: 18, "text-anchor": "middle", class: "chart-title"},
                           metric.title + " vs rate"));
      const grid = svg("g", {class: "grid"});
      for (const t of niceTicks(0, xmax, 6)) {
        grid.appendChild(svg("line", {x1: x(t), x2: x(t), y1: T, y2: H - B}));
        root.appendChild(svg("text", {x: x(t), y: H - B + 16, "text-anchor": "middle", class: "tick"}, String(t)));
      }
      for (const t of niceTicks(lo, hi, 6)) {
        grid.appendChild(svg("line", {x1: L, x2: W - R, y1: y(t), y2: y(t)}));
        root.appendChild(svg("text", {x: L - 6, y: y(t) + 4, "text-anchor": "end", class: "tick"}, String(t)));
      }
      root.insertBefore(grid, root.firstChild.nextSibling);
      root.appendChild(svg("rect", {x: L, y: T, width: W - L - R, height: H - T - B, class: "frame"}));
      root.appendChild(svg("text", {x: (L + W - R) / 2, y: H - 8, "text-anchor": "middle", class: "axis-label"},
                           "bits per pixel (real file bytes)"));
      root.appendChild(svg("text", {x: 14, y: (T + H - B) / 2, "text-anchor": "middle", class: "axis-label",
                                    transform: `rotate(-90 14 ${(T + H - B) / 2})`}, metric.label));
      const clip = "clip-" + metric.key;
      const defs = svg("defs");
      const cp = svg("clipPath", {id: clip});
      cp.appendChild(svg("rect", {x: L, y: T, width: W - L - R, height: H - T - B}));
      defs.appendChild(cp);
      root.appendChild(defs);
      for (const s of visible) {
        const col = colour.get(s.c.name);
        const g = svg("g", {class: "series", "data-codec": s.c.name, "clip-path": `url(#${clip})`});
        const d = s.pts.map((p, i) => (i ? "L" : "M") + x(num(p.bpp)).toFixed(2) + " " + y(num(p[metric.key])).toFixed(2)).join(" ");
        g.appendChild(svg("path", {d, stroke: col, fill: "none", "stroke-width": 1.8,
                                   "stroke-dasharray": s.c.published ? "6 4" : "none"}));
        for (const p of s.pts) {
          const dot = svg("circle", {cx: x(num(p.bpp)).toFixed(2), cy: y(num(p[metric.key])).toFixed(2),
                                     r: s.c.published ? 2.5 : 4, fill: col, class: "pt"});
          dot.addEventListener("mouseenter", evt => showTip(evt, s.c, p, metric));
          dot.addEventListener("mousemove", evt => showTip(evt, s.c, p, metric));
          dot.addEventListener("mouseleave", () => { tip.hidden = true; });
          g.appendChild(dot);
        }
        root.appendChild(g);
      }
      return root;
    }

    function draw() {
      for (const old of chartsRoot.querySelectorAll("svg.rd-chart")) old.remove();
      for (const m of METRICS) chartsRoot.appendChild(chart(m));
    }
    draw();
  }

  // ------------------------------------------------------------ the split viewer

  function Viewer(root, images, defaults) {
    const dpr = () => window.devicePixelRatio || 1;
    const st = {img: 0, left: null, right: null, bpp: num(defaults.bpp), frac: 0.5, zoom: "fit",
                scale: 1, ox: 0, oy: 0, cx: null, cy: null};
    const usable = im => im.entries.filter(e => e.points.length);

    // controls
    const imageSel = el("select", {id: "image-select", "aria-label": "image"});
    images.forEach((im, i) => imageSel.appendChild(el("option", {value: String(i), text: im.name})));
    imageSel.disabled = images.length < 2;
    const leftSel = el("select", {id: "left-select", "aria-label": "left side"});
    const rightSel = el("select", {id: "right-select", "aria-label": "right side"});
    const swapBtn = el("button", {type: "button", id: "swap", title: "swap sides (S)", text: "\u21c4 swap"});
    const bppRange = el("input", {type: "range", id: "bpp-range", "aria-label": "target bpp (log scale)", step: "any"});
    const bppInput = el("input", {type: "number", id: "bpp-input", "aria-label": "target bpp", min: "0", step: "0.01"});
    const zoomBtns = ["fit", "1", "2", "4"].map(z => el("button", {type: "button", className: "zoom", "data-zoom": z,
      "aria-pressed": "false", text: z === "fit" ? "fit" : (z === "1" ? "1:1" : z + "x")}));
    root.appendChild(el("div", {className: "controls"}, [
      el("label", {}, ["image ", imageSel]),
      el("label", {}, ["left ", leftSel]), swapBtn, el("label", {}, ["right ", rightSel]),
      el("label", {}, ["target bpp ", bppRange, bppInput]),
      el("span", {className: "zooms", role: "group", "aria-label": "zoom"}, zoomBtns),
    ]));

    // stage
    const leftImg = el("img", {alt: "left side", draggable: "false"});
    const rightImg = el("img", {alt: "right side", draggable: "false"});
    const leftLayer = el("div", {className: "layer", id: "layer-left"}, [leftImg]);
    const rightLayer = el("div", {className: "layer", id: "layer-right"}, [rightImg]);
    const divider = el("div", {id: "divider", role: "slider", tabindex: "0", "aria-label": "divider",
                               "aria-valuemin": "0", "aria-valuemax": "100"}, [el("div", {className: "handle"})]);
    const leftLabel = el("div", {className: "side-label left"});
    const rightLabel = el("div", {className: "side-label right"});
    const message = el("div", {className: "stage-message", role: "alert"});
    message.hidden = true;
    const stage = el("div", {id: "stage", tabindex: "0", "aria-label": "comparison; arrow keys move the divider"},
                     [leftLayer, rightLayer, divider, leftLabel, rightLabel, message]);
    root.appendChild(stage);
    for (const img of [leftImg, rightImg]) {
      img.addEventListener("error", () => {
        message.textContent = "Cannot load " + img.getAttribute("src") +
          ": the decoded images are stored beside this page; regenerate the page to recreate them.";
        message.hidden = false;
      });
      img.addEventListener("load", () => {
        if ([leftImg, rightImg].every(i => i.complete && i.naturalWidth > 0)) message.hidden = true;
      });
    }

    // readouts
    const ROWS = [["name", "codec / file"], ["quality", "quality"], ["bytes", "bytes"], ["bpp", "bpp"],
                  ["psnr", "PSNR dB"], ["ms_ssim", "MS-SSIM"], ["encode_s", "encode s"], ["decode_s", "decode s"]];
    const table = el("table", {id: "readouts", className: "readouts"});
    table.appendChild(el("thead", {}, [el("tr", {}, [el("th", {text: ""}), el("th", {text: "left"}),
      el("th", {text: "right"}), el("th", {text: "right \u2212 left"})])]));
    const tbody = el("tbody");
    for (const [key, label] of ROWS) {
      tbody.appendChild(el("tr", {}, [el("th", {text: label, scope: "row"}),
        el("td", {"data-readout": "left-" + key}), el("td", {"data-readout": "right-" + key}),
        el("td", {"data-readout": "diff-" + key})]));
    }
    table.appendChild(tbody);
    root.appendChild(table);
    const cell = id => table.querySelector(`[data-readout="${id}"]`);

    // state
    function image() { return images[st.img]; }
    function entry(name) { return usable(image()).find(e => e.name === name); }
    function nearest(e) {
      if (e.points.length === 1 || !(st.bpp > 0)) return e.points[0];
      let best = e.points[0], bestD = Infinity;
      for (const p of e.points) {
        const d = Math.abs(Math.log(num(p.bpp) / st.bpp));
        if (d < bestD - 1e-12 || (Math.abs(d - bestD) <= 1e-12 && num(p.bpp) < num(best.bpp))) { best = p; bestD = d; }
      }
      return best;
    }

    function fillEntries() {
      const names = usable(image()).map(e => e.name);
      for (const sel of [leftSel, rightSel]) {
        sel.textContent = "";
        for (const n of names) sel.appendChild(el("option", {value: n, text: n}));
      }
      const pick = (want, avoid) => names.includes(want) ? want : (names.find(n => n !== avoid) || names[0]);
      st.left = pick(st.left || defaults.left, null);
      st.right = pick(st.right || defaults.right, st.left);
      leftSel.value = st.left;
      rightSel.value = st.right;
      // the bpp slider spans every point of this image (log scale)
      const bpps = usable(image()).filter(e => !e.reference).flatMap(e => e.points.map(p => num(p.bpp))).filter(v => v > 0);
      let lo = Math.min(...bpps, 0.1), hi = Math.max(...bpps, 2);
      bppRange.min = String(Math.log2(lo));
      bppRange.max = String(Math.log2(hi));
      if (!(st.bpp > 0)) st.bpp = Math.sqrt(lo * hi);
      showBpp();
    }

    function showBpp() {
      bppRange.value = String(Math.log2(st.bpp));
      bppInput.value = st.bpp.toFixed(3);
    }

    function place() {
      const im = image();
      const W = stage.clientWidth, H = stage.clientHeight;
      const d = dpr();
      st.scale = st.zoom === "fit" ? Math.min(W / im.width, H / im.height) : Number(st.zoom) / d;
      const w = im.width * st.scale, h = im.height * st.scale;
      if (st.cx === null) { st.cx = im.width / 2; st.cy = im.height / 2; }
      let ox = W / 2 - st.cx * st.scale, oy = H / 2 - st.cy * st.scale;
      ox = w <= W ? (W - w) / 2 : Math.min(0, Math.max(W - w, ox));
      oy = h <= H ? (H - h) / 2 : Math.min(0, Math.max(H - h, oy));
      // on whole device pixels of the page (the stage itself may sit between them): 1:1 stays one to one
      const box = stage.getBoundingClientRect();
      const fx = box.left + stage.clientLeft, fy = box.top + stage.clientTop;
      st.ox = Math.round((fx + ox) * d) / d - fx;
      st.oy = Math.round((fy + oy) * d) / d - fy;
      st.cx = (W / 2 - st.ox) / st.scale;
      st.cy = (H / 2 - st.oy) / st.scale;
      const pixelated = st.scale * d >= 1;
      for (const img of [leftImg, rightImg]) {
        img.style.left = st.ox + "px";
        img.style.top = st.oy + "px";
        img.style.width = w + "px";
        img.style.height = h + "px";
        img.classList.toggle("pixelated", pixelated);
      }
      const x = Math.round(st.frac * W);
      rightLayer.style.clipPath = `inset(0px 0px 0px ${x}px)`;
      leftLayer.style.clipPath = `inset(0px ${W - x}px 0px 0px)`;
      divider.style.left = x + "px";
      divider.setAttribute("aria-valuenow", String(Math.round(st.frac * 100)));
      for (const b of zoomBtns) b.setAttribute("aria-pressed", String(b.dataset.zoom === String(st.zoom)));
    }

    function update() {
      const l = entry(st.left), r = entry(st.right);
      const lp = nearest(l), rp = nearest(r);
      if (leftImg.getAttribute("src") !== lp.src) leftImg.setAttribute("src", lp.src);
      if (rightImg.getAttribute("src") !== rp.src) rightImg.setAttribute("src", rp.src);
      const label = (e, p) => e.name + (e.reference ? "" : " q" + quality(p.quality)) + " \u00b7 " + fixed(p.bpp, 3) + " bpp";
      leftLabel.textContent = label(l, lp);
      rightLabel.textContent = label(r, rp);
      const sides = {left: [l, lp], right: [r, rp]};
      for (const [side, [e, p]] of Object.entries(sides)) {
        cell(side + "-name").textContent = e.name;
        cell(side + "-quality").textContent = e.reference ? "-" : quality(p.quality);
        cell(side + "-bytes").textContent = String(p.bytes);
        cell(side + "-bpp").textContent = fixed(p.bpp, 4);
        cell(side + "-psnr").textContent = fixed(p.psnr, 2);
        cell(side + "-ms_ssim").textContent = fixed(p.ms_ssim, 4);
        cell(side + "-encode_s").textContent = fixed(p.encode_s, 3);
        cell(side + "-decode_s").textContent = fixed(p.decode_s, 3);
      }
      const db = rp.bytes - lp.bytes;
      cell("diff-name").textContent = "";
      cell("diff-quality").textContent = "";
      cell("diff-bytes").textContent = signed(db, 0) + (lp.bytes > 0 ? " (" + signed(100 * db / lp.bytes, 1) + " %)" : "");
      cell("diff-bpp").textContent = signed(num(rp.bpp) - num(lp.bpp), 4);
      cell("diff-psnr").textContent = signed(num(rp.psnr) - num(lp.psnr), 2);
      cell("diff-ms_ssim").textContent = signed(num(rp.ms_ssim) - num(lp.ms_ssim), 4);
      cell("diff-encode_s").textContent = signed(num(rp.encode_s) - num(lp.encode_s), 3);
      cell("diff-decode_s").textContent = signed(num(rp.decode_s) - num(lp.decode_s), 3);
      place();
    }

    function setZoom(z) { st.zoom = z; place(); }
    function moveDivider(frac) { st.frac = Math.min(1, Math.max(0, frac)); place(); }
    function swap() {
      [st.left, st.right] = [st.right, st.left];
      leftSel.value = st.left;
      rightSel.value = st.right;
      update();
    }

    imageSel.addEventListener("change", () => {
      st.img = Number(imageSel.value);
      st.cx = st.cy = null;
      fillEntries();
      update();
    });
    leftSel.addEventListener("change", () => { st.left = leftSel.value; update(); });
    rightSel.addEventListener("change", () => { st.right = rightSel.value; update(); });
    swapBtn.addEventListener("click", swap);
    bppRange.addEventListener("input", () => { st.bpp = Math.pow(2, Number(bppRange.value)); bppInput.value = st.bpp.toFixed(3); update(); });
    bppInput.addEventListener("change", () => {
      const v = Number(bppInput.value);
      if (v > 0) { st.bpp = v; bppRange.value = String(Math.log2(v)); update(); } else showBpp();
    });
    for (const b of zoomBtns) b.addEventListener("click", () => setZoom(b.dataset.zoom === "fit" ? "fit" : Number(b.dataset.zoom)));

    document.addEventListener("keydown", evt => {
      const t = evt.target;
      const page = t === document || t === document.documentElement || t === document.body;
      if (!page && !stage.contains(t)) return;  // not while typing in a control
      if (evt.ctrlKey || evt.metaKey || evt.altKey) return;
      const step = evt.shiftKey ? 0.1 : 0.01;
      const actions = {
        ArrowLeft: () => moveDivider(st.frac - step), ArrowRight: () => moveDivider(st.frac + step),
        Home: () => moveDivider(0), End: () => moveDivider(1),
        s: swap, S: swap, f: () => setZoom("fit"), "0": () => setZoom("fit"),
        "1": () => setZoom(1), "2": () => setZoom(2), "4": () => setZoom(4),
      };
      const act = actions[evt.key];
      if (act) { evt.preventDefault(); act(); }
    });

    let drag = null;
    stage.addEventListener("pointerdown", evt => {
      if (evt.button !== 0) return;
      stage.focus({preventScroll: true});
      const onDivider = divider.contains(evt.target);
      drag = onDivider ? {kind: "divider"} : {kind: "pan", x: evt.clientX, y: evt.clientY, ox: st.ox, oy: st.oy};
      stage.setPointerCapture(evt.pointerId);
      stage.classList.toggle("panning", !onDivider);
      evt.preventDefault();
    });
    stage.addEventListener("pointermove", evt => {
      if (!drag) return;
      if (drag.kind === "divider") {
        const box = stage.getBoundingClientRect();
        moveDivider((evt.clientX - box.left) / stage.clientWidth);
      } else {
        const W = stage.clientWidth, H = stage.clientHeight;
        st.cx = (W / 2 - (drag.ox + evt.clientX - drag.x)) / st.scale;
        st.cy = (H / 2 - (drag.oy + evt.clientY - drag.y)) / st.scale;
        place();
      }
    });
    const endDrag = evt => {
      if (!drag) return;
      drag = null;
      stage.classList.remove("panning");
      if (stage.hasPointerCapture(evt.pointerId)) stage.releasePointerCapture(evt.pointerId);
    };
    stage.addEventListener("pointerup", endDrag);
    stage.addEventListener("pointercancel", endDrag);
    window.addEventListener("resize", place);

    const start = Math.min(Math.max(Number(defaults.image) || 0, 0), images.length - 1);
    st.img = start;
    imageSel.value = String(start);
    fillEntries();
    update();
    // the API the page's tests (and a curious user's console) use
    window.mlcViewer = {state: st, place, update, setZoom, moveDivider, swap, nearest, entry};
  }

  if (DATA.curves && DATA.curves.length) {
    RDCharts(document.getElementById("rd-charts"), document.getElementById("rd-legend"), DATA.curves);
  }
  const shown = (DATA.images || []).filter(im => im.entries.some(e => e.points.length));
  if (shown.length) Viewer(document.getElementById("viewer"), shown, DATA.defaults || {});
  document.documentElement.dataset.ready = "true";
})();
