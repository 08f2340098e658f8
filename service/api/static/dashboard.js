// calibserve dashboard: reads only the public JSON API and draws with the vendored uPlot (no CDN).
"use strict";

const calibDash = (() => {
  const $ = (id) => document.getElementById(id);
  const Z95 = 1.959963984540054;  // two-sided 95% normal quantile
  const charts = {};
  const state = {models: [], history: [], markers: [], report: null};

  // Wilson score interval for k successes in n trials (Wilson 1927): stays inside [0, 1] and is sensible
  // for the small bins where a plain p ± z·se interval collapses to a point.
  function wilson(k, n, z = Z95) {
    if (!n) return [null, null];
    const p = k / n, z2 = z * z, den = 1 + z2 / n;
    const centre = (p + z2 / (2 * n)) / den;
    const half = (z * Math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))) / den;
    return [Math.max(0, centre - half), Math.min(1, centre + half)];
  }

  const fmt = (x, d = 4) => (x === null || x === undefined || Number.isNaN(x) ? "–" : (+x).toFixed(d));
  const when = (iso) => (iso ? new Date(iso).toISOString().replace("T", " ").slice(0, 19) + "Z" : "–");
  const seconds = (iso) => Date.parse(iso) / 1000;
  const utc = (ts) => uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC");  // the time axis in UTC, like the table
  const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}[c]));

  async function getJSON(url) {
    const r = await fetch(url);
    const body = await r.json();
    if (!r.ok) throw new Error(body.error || `${url}: HTTP ${r.status}`);
    return body;
  }

  function option(select, value, text) {
    const o = document.createElement("option");
    o.value = value; o.textContent = text; select.appendChild(o);
  }

  // --- model/version picker and calibrator selector ------------------------------------------------
  async function loadModels(params) {
    const j = await getJSON("/v1/models");
    state.models = j.models;
    $("mv").innerHTML = "";
    for (const m of j.models) for (const v of m.versions) option($("mv"), `${m.name}/${v.version}`, `${m.name} v${v.version}`);
    const wanted = params.get("model") && `${params.get("model")}/${params.get("version") || ""}`;
    if (wanted && [...$("mv").options].some((o) => o.value === wanted)) $("mv").value = wanted;
  }

  function selected() {
    const [model, version] = $("mv").value.split("/");
    return {model, version};
  }

  async function loadHistory(keepCalibrator) {
    const {model, version} = selected();
    const j = await getJSON(`/v1/models/${encodeURIComponent(model)}/versions/${encodeURIComponent(version)}/calibrators`);
    state.history = j.calibrators;
    const previous = keepCalibrator ?? $("cal").value;
    $("cal").innerHTML = "";
    option($("cal"), "all", "all calibrators of this version");
    const active = j.calibrators.find((c) => c.state === "active");
    option($("cal"), "active", active ? `active (${active.calibrator_version}, ${active.method})` : "active");
    for (const c of [...j.calibrators].reverse()) {
      option($("cal"), String(c.calibrator_version), `${c.calibrator_version} · ${c.method} · ${c.state}`);
    }
    $("cal").value = [...$("cal").options].some((o) => o.value === previous) ? previous : "all";
    // an activation whose predecessor had a higher version number re-activated an older one: a rollback
    state.markers = j.calibrators.filter((c) => c.activated_at).map((c) => ({
      t: seconds(c.activated_at),
      label: c.previous_active !== null && c.previous_active > c.calibrator_version
        ? `rollback → ${c.calibrator_version}` : `calibrator ${c.calibrator_version} active`,
    }));
    renderHistory(j.calibrators);
  }

  function renderHistory(rows) {
    const body = $("history").querySelector("tbody");
    body.innerHTML = rows.map((c) => {
      const e = c.evaluation || {}, b = e.before || {}, a = e.after || {};
      const heldOut = a.ece === undefined ? "–"
        : `${fmt(b.ece)} → ${fmt(a.ece)} [${fmt(a.ece_lo)}, ${fmt(a.ece_hi)}] (n=${a.n ?? "–"})`;
      return `<tr data-calibrator="${c.calibrator_version}"><td>${c.calibrator_version}</td>` +
        `<td class="${esc(c.state)}">${esc(c.state)}</td><td>${esc(c.method)}</td><td>${esc(c.source ?? "–")}</td>` +
        `<td>${c.n_fit ?? "–"}</td><td>${heldOut}</td><td>${when(c.created_at)}</td>` +
        `<td>${when(c.activated_at)}</td><td>${c.previous_active ?? "–"}</td></tr>`;
    }).join("");
  }

  // --- charts ---------------------------------------------------------------------------------------
  function replaceChart(key, opts, data, target) {
    if (charts[key]) charts[key].destroy();
    charts[key] = new uPlot(opts, data, target);
  }

  function markerHook(u) {  // dashed vertical lines at calibrator activations and rollbacks
    const {ctx} = u, [lo, hi] = [u.scales.x.min, u.scales.x.max];
    ctx.save();
    ctx.font = `${11 * devicePixelRatio}px sans-serif`;
    ctx.textBaseline = "alphabetic";  // uPlot leaves its axes' text settings on the context
    state.markers.forEach((m, i) => {
      if (m.t < lo || m.t > hi) return;
      const x = u.valToPos(m.t, "x", true);
      ctx.strokeStyle = "#8250df"; ctx.fillStyle = "#8250df"; ctx.lineWidth = devicePixelRatio;
      ctx.setLineDash([5 * devicePixelRatio, 4 * devicePixelRatio]);
      ctx.beginPath(); ctx.moveTo(x, u.bbox.top); ctx.lineTo(x, u.bbox.top + u.bbox.height); ctx.stroke();
      ctx.setLineDash([]);
      // staggered, so labels of activations seconds apart do not overprint each other
      // right of the line, or left of it near the right edge, so the label stays inside the plot
      const right = x > u.bbox.left + 0.75 * u.bbox.width;
      ctx.textAlign = right ? "right" : "left";
      ctx.fillText(m.label, x + (right ? -4 : 4) * devicePixelRatio, u.bbox.top + (12 + 13 * (i % 3)) * devicePixelRatio);
    });
    ctx.restore();
  }

  function reliabilityChart(bins, width) {
    const filled = bins.filter((b) => b.count > 0).map((b) => {
      const k = Math.round(b.accuracy * b.count);
      return {...b, correct: k, ci: wilson(k, b.count)};
    });
    const drawBins = (u) => {
      const {ctx} = u, px = (v, s) => u.valToPos(v, s, true);
      ctx.save();
      for (const b of filled) {
        const x0 = px(b.lo, "x") + devicePixelRatio, x1 = px(b.hi, "x") - devicePixelRatio;
        const yAcc = px(b.accuracy, "y"), yConf = px(b.confidence, "y"), y0 = px(0, "y");
        // blue up to the lower of accuracy and mean confidence, red for the gap between them (the bin's
        // contribution to ECE), a dark edge at the accuracy itself
        const top = Math.min(yAcc, yConf), mid = Math.max(yAcc, yConf);
        ctx.setLineDash([]);
        ctx.fillStyle = "rgba(76,139,245,0.8)"; ctx.fillRect(x0, mid, x1 - x0, y0 - mid);
        ctx.fillStyle = "rgba(207,34,46,0.45)"; ctx.fillRect(x0, top, x1 - x0, mid - top);
        ctx.fillStyle = "#0a3069"; ctx.fillRect(x0, yAcc - devicePixelRatio, x1 - x0, 2 * devicePixelRatio);
        const xc = (x0 + x1) / 2, [lo, hi] = b.ci.map((v) => px(v, "y")), w = Math.min(6 * devicePixelRatio, (x1 - x0) / 3);
        ctx.strokeStyle = "#1f2328"; ctx.lineWidth = 1.5 * devicePixelRatio;
        ctx.beginPath(); ctx.moveTo(xc, lo); ctx.lineTo(xc, hi);
        ctx.moveTo(xc - w, lo); ctx.lineTo(xc + w, lo); ctx.moveTo(xc - w, hi); ctx.lineTo(xc + w, hi); ctx.stroke();
      }
      ctx.restore();
    };
    replaceChart("rel", {
      width, height: width - 40, legend: {show: false}, tzDate: utc,
      scales: {x: {time: false, range: [0, 1]}, y: {range: [0, 1]}},
      axes: [{label: "confidence (top class)"}, {label: "accuracy"}],
      series: [{label: "confidence"}, {label: "perfect calibration", stroke: "#6e7781", dash: [6, 4], points: {show: false}}],
      hooks: {drawSeries: [drawBins]},
    }, [[0, 1], [0, 1]], $("rel"));

    const centres = bins.map((b) => (b.lo + b.hi) / 2), counts = bins.map((b) => b.count);
    const labelCounts = (u) => {
      const {ctx} = u;
      ctx.save(); ctx.fillStyle = "#1f2328"; ctx.textAlign = "center";
      ctx.font = `${10 * devicePixelRatio}px sans-serif`;
      bins.forEach((b, i) => {
        if (!b.count) return;
        ctx.fillText(String(b.count), u.valToPos(centres[i], "x", true), u.valToPos(b.count, "y", true) - 3 * devicePixelRatio);
      });
      ctx.restore();
    };
    replaceChart("hist", {
      width, height: 150, legend: {show: false}, tzDate: utc,
      scales: {x: {time: false, range: [0, 1]}, y: {range: (u, lo, hi) => [0, Math.max(1, hi) * 1.3]}},
      axes: [{}, {label: "labelled"}],
      series: [{}, {label: "labelled predictions", fill: "rgba(110,119,129,0.55)", stroke: "#57606a",
        paths: uPlot.paths.bars({size: [0.92, Infinity]}), points: {show: false}}],
      hooks: {draw: [labelCounts]},
    }, [centres, counts], $("hist"));

    // the same numbers as a table (screen readers, copy-paste, and the browser test)
    $("bins").querySelector("tbody").innerHTML = filled.map((b) =>
      `<tr><td>${fmt(b.lo, 3)}–${fmt(b.hi, 3)}</td><td>${b.count}</td><td>${b.correct}</td>` +
      `<td>${fmt(b.confidence)}</td><td>${fmt(b.accuracy)}</td><td>${fmt(b.ci[0])}</td><td>${fmt(b.ci[1])}</td></tr>`).join("");
    return filled.length;
  }

  function timeChart(key, points, window, series, extra) {
    const x = points.map((p) => seconds(p.window.end));
    const data = [x, ...series.map((s) => points.map(s.value))];
    replaceChart(key, {
      width: $(key).clientWidth || 900, height: 220, tzDate: utc,
      scales: {x: {time: true, range: () => [seconds(window.start), seconds(window.end)]}, y: extra.y},
      axes: [{}, {label: extra.label}],
      series: [{label: "window end"}, ...series.map((s) => ({label: s.label, stroke: s.stroke, width: 2,
        show: s.show ?? true, points: {show: true, size: 6}, spanGaps: false}))],
      bands: extra.bands || [],
      hooks: {draw: [markerHook]},
    }, data, $(key));
  }

  // MCE is one bin's gap: say which bin and how many labels it rests on (3 rows can read 0.4 by chance)
  function mceText(j) {
    const worst = (j.reliability || []).filter((b) => b.count > 0)
      .reduce((w, b) => (!w || Math.abs(b.accuracy - b.confidence) > Math.abs(w.accuracy - w.confidence) ? b : w), null);
    return worst ? `${fmt(j.mce)} (bin ${fmt(worst.lo, 2)}–${fmt(worst.hi, 2)}, n = ${worst.count})` : fmt(j.mce);
  }

  // conformal sets and decisions, monitored from feedback (the window's `decisions` part)
  function decisionRows(dec) {
    const rows = [];
    for (const c of dec.conformal) {  // realised coverage of the served sets against their target
      const state = c.alarm ? "drifting" : "ok";
      rows.push([`set coverage @ ${c.target_coverage} (conformal v${c.conformal_version})`,
        `${fmt(c.realised_coverage)} [${fmt(c.coverage_ci[0])}, ${fmt(c.coverage_ci[1])}] n=${c.labelled}, ` +
        `mean |set| ${fmt(c.mean_set_size)}, <span class="${state}">${c.alarm ? "below target" : "ok"}</span>`]);
    }
    for (const d of dec.decisions) {  // abstention, accuracy when acting, realised vs expected cost
      const name = d.cost_matrix_version ? `cost matrix v${d.cost_matrix_version}` : "no cost matrix";
      rows.push([`decisions (${esc(name)}, min conf ${d.min_confidence ?? "–"})`,
        `abstained ${fmt(d.abstention_rate)}, accepted accuracy ${fmt(d.accepted_accuracy)}` +
        (d.costed ? `, realised cost ${fmt(d.realised_cost)} vs expected ${fmt(d.expected_cost)}` : "")]);
    }
    if (dec.selective) rows.push(["AUARC (risk–coverage)", fmt(dec.selective.auarc)]);
    return rows;
  }

  function renderSummary(j) {
    const d = j.drift || {}, shift = j.confidence_shift || {};
    const rows = [
      ["calibrator", j.calibrator_version === null ? "all of this version" : j.calibrator_version],
      ["labelled / predicted", `${j.labelled} / ${j.predicted}`],
      ["label coverage", j.label_coverage === null ? "–" : `${(100 * j.label_coverage).toFixed(1)}%`],
      [`ECE (${Math.round(100 * (j.ece_ci_level || 0.9))}% interval)`,
        j.ece === null ? "–" : `${fmt(j.ece)} [${fmt(j.ece_ci[0])}, ${fmt(j.ece_ci[1])}]`],
      ["MCE", mceText(j)], ["AdaECE", fmt(j.adaptive_ece)], ["classwise ECE", fmt(j.classwise_ece)],
      ["Brier", fmt(j.brier)], ["NLL", fmt(j.nll)],
      ["accuracy vs mean confidence", `${fmt(j.accuracy)} vs ${fmt(j.mean_confidence)}`],
      ["drift verdict", `<span id="drift-state" class="${esc(d.state)}">${esc(d.state)}</span> (n = ${j.labelled} labelled, rule ${esc(d.rule || j.rule)})`],
      ["", `<small>${esc(d.reason || "")}</small>`],
      ["confidence shift (label-free)", `<span class="${esc(shift.state)}">${esc(shift.state || "–")}</span>` +
        ` PSI ${fmt(shift.psi, 3)}, KS ${fmt(shift.ks, 3)} (n = ${shift.n_current ?? "–"} vs ${shift.n_reference ?? "–"})`],
    ];
    rows.push(...decisionRows(j.decisions || {conformal: [], decisions: [], selective: null}));
    $("kv").innerHTML = rows.map(([k, v]) => `<span>${k}</span><span>${v}</span>`).join("");
  }

  async function refresh() {
    const {model, version} = selected();
    if (!model) { $("status").textContent = "no model is served"; return; }
    const q = new URLSearchParams({window: $("win").value, step: $("step").value, calibrator: $("cal").value});
    const j = await getJSON(`/v1/models/${encodeURIComponent(model)}/versions/${encodeURIComponent(version)}/calibration?${q}`);
    state.report = j;
    renderSummary(j);
    const width = Math.min(430, $("reliability-card").clientWidth - 32);
    const filled = reliabilityChart(j.reliability || [], width);
    $("rel").dataset.bins = String(filled);
    $("rel").dataset.labelled = String(j.labelled);
    $("rel-sub").textContent = j.labelled ? `(${j.labelled} labelled, ${j.n_bins} bins)` : "(no labelled predictions in this window)";
    const points = j.series || [];
    const ci = (i) => (p) => (p.ece_ci ? p.ece_ci[i] : null);
    timeChart("ece", points, j.window, [
      {label: "ECE", stroke: "#0969da", value: (p) => p.ece},
      {label: "interval low", stroke: "rgba(9,105,218,0.3)", value: ci(0)},
      {label: "interval high", stroke: "rgba(9,105,218,0.3)", value: ci(1)},
    ], {label: "ECE", y: {range: (u, lo, hi) => [0, Math.max(0.05, hi || 0) * 1.15]},
      bands: [{series: [3, 2], fill: "rgba(9,105,218,0.15)"}]});
    timeChart("acc", points, j.window, [
      {label: "accuracy", stroke: "#1a7f37", value: (p) => p.accuracy},
      {label: "mean confidence", stroke: "#cf222e", value: (p) => p.mean_confidence},
      {label: "label coverage", stroke: "#9a6700", value: (p) => p.label_coverage},
    ], {label: "fraction", y: {range: [0, 1.05]}});
    history.replaceState(null, "", `?${new URLSearchParams({model, version, ...Object.fromEntries(q)})}`);
  }

  async function run(reloadHistory) {
    $("status").textContent = "loading…";
    document.body.dataset.state = "loading";
    try {
      if (reloadHistory) await loadHistory();
      await refresh();
      $("status").textContent = `updated ${new Date().toISOString().slice(11, 19)}Z`;
      document.body.dataset.state = "ready";
    } catch (err) {
      $("status").textContent = err.message;
      $("status").className = "error";
      document.body.dataset.state = "error";
    }
  }

  async function start() {
    const params = new URLSearchParams(location.search);
    for (const [id, key] of [["win", "window"], ["step", "step"]]) if (params.get(key)) $(id).value = params.get(key);
    try {
      await loadModels(params);
      if (state.models.length) await loadHistory(params.get("calibrator") || "all");
    } catch (err) {
      $("status").textContent = err.message;
      document.body.dataset.state = "error";
      return;
    }
    $("mv").onchange = () => run(true);
    $("cal").onchange = () => run(false);
    $("controls").onsubmit = (e) => { e.preventDefault(); run(true); };
    await run(false);
  }

  return {wilson, start, state};
})();

window.calibDash = calibDash;
calibDash.start();
