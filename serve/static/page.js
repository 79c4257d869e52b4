// fintag's page for analysts: tag reports through this server's API, show them, collect corrections.
// Plain JS, no build step, nothing loaded from elsewhere: every request goes to the origin that served it.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { reports: [], current: 0, files: [], editing: null, reviewId: null };
const SENT_COLOR = { positive: "#2e9d58", neutral: "#8a8f98", negative: "#d0453c" };
const THEME_COLORS = ["#3b6fd8", "#c0822b", "#8d4fc4", "#1f9aa3", "#b5487a"];

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c);
  return node;
}

function svg(tag, attrs = {}, text) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

// --- API ----------------------------------------------------------------------------------------------

function headers(extra = {}) {
  const key = $("api-key").value.trim();
  sessionStorage.setItem("fintag-key", key);
  return key ? { ...extra, Authorization: `Bearer ${key}` } : extra;
}

async function api(path, options = {}) {
  const response = await fetch(path, { ...options, headers: headers(options.headers || {}) });
  let body = null;
  try { body = await response.json(); } catch (_) { body = null; }
  if (!response.ok) {
    const message = body && body.error ? body.error : `${response.status} ${response.statusText}`;
    throw new Error(message);
  }
  return body;
}

const postJson = (path, data) =>
  api(path, { method: "POST", body: JSON.stringify(data), headers: { "Content-Type": "application/json" } });

// --- helpers ------------------------------------------------------------------------------------------

// The report's date as stated in its text (2025年2月5日, 2025-11-23, 20241216), or "" when none is found.
function reportDate(text) {
  // The first date of the report that is a real one: "2025/26/27" in "2025/26/27年EPS" is not (month 26).
  const patterns = [
    /(20\d{2})\s*[年\-\/.]\s*(\d{1,2})\s*[月\-\/.]\s*(\d{1,2})(?!\d)/g,
    /(20\d{2})(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])(?!\d)/g,
  ];
  for (const re of patterns) {
    for (const m of text.matchAll(re)) {
      const [y, mo, d] = [Number(m[1]), Number(m[2]), Number(m[3])];
      const day = new Date(Date.UTC(y, mo - 1, d));
      if (mo >= 1 && mo <= 12 && day.getUTCMonth() === mo - 1 && day.getUTCDate() === d) {
        return `${m[1]}-${m[2].padStart(2, "0")}-${m[3].padStart(2, "0")}`;
      }
    }
  }
  return "";
}

const groupLabels = (s, group) => Object.keys(s[group].scores);
// Counted in the shares and indices: sentences, each statement once (the summary's `restated` repeats are
// not), the title line aside (the report's headline, as other titles are not counted).
const isSentence = (s) => !s.kind || s.kind === "sentence";
const restatedUnits = (report) => new Set(report.summary.restated || []);
function titleUnits(report) {
  const title = report.summary.title;
  return new Set(title ? Array.from({ length: title.units }, (_, k) => title.index + k) : []);
}
const notCounted = (report) => new Set([...restatedUnits(report), ...titleUnits(report)]);

// The labels shown: the analyst's correction when there is one, else the model's.
function shown(report, i) {
  const s = report.sentences[i];
  const r = report.reviews[i];
  return r ? { sentiment: r.sentiment, themes: r.themes, rating: r.rating }
    : { sentiment: s.sentiment.label, themes: s.themes.labels, rating: s.rating.label };
}

function margin(scores) {
  const v = Object.values(scores).sort((a, b) => b - a);
  return v[0] - (v[1] || 0);
}

// How unsure the model is about a sentence, 0..1: the closest call over its label groups.
function uncertainty(s) {
  const themes = Object.values(s.themes.scores).map((p) => 1 - Math.abs(2 * p - 1));
  return Math.max(1 - margin(s.sentiment.scores), 1 - margin(s.rating.scores), ...themes);
}

function stats(report) {
  const skip = notCounted(report);
  const rows = report.sentences.map((s, i) => ({ s, i, l: shown(report, i) })).filter((x) => isSentence(x.s) && !skip.has(x.i));
  const index = (xs) => xs.length
    ? (xs.filter((x) => x.l.sentiment === "positive").length - xs.filter((x) => x.l.sentiment === "negative").length) / xs.length
    : null;
  const themes = report.sentences.length ? groupLabels(report.sentences[0], "themes") : [];
  const sentiments = report.sentences.length ? groupLabels(report.sentences[0], "sentiment") : [];
  return {
    n: rows.length,
    counts: Object.fromEntries(sentiments.map((k) => [k, rows.filter((x) => x.l.sentiment === k).length])),
    share: Object.fromEntries(themes.map((t) => [t, rows.length ? rows.filter((x) => x.l.themes.includes(t)).length / rows.length : 0])),
    index: index(rows),
    themeIndex: Object.fromEntries(themes.map((t) => [t, index(rows.filter((x) => x.l.themes.includes(t)))])),
  };
}

const fmt = (v) => (v === null || v === undefined ? "–" : v.toFixed(2));

function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = !message;
}

function toast(message) {
  const t = $("toast");
  t.textContent = message;
  t.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { t.hidden = true; }, 4000);
}

// --- charts (inline SVG) ------------------------------------------------------------------------------

// Horizontal bars; values in [lo, hi] (lo < 0 draws a zero line).
function bars(items, { lo = 0, hi = 1, fmtValue = fmt } = {}) {
  const w = 300, rowH = 22, labelW = 150, barW = w - labelW - 40;
  const box = svg("svg", { viewBox: `0 0 ${w} ${items.length * rowH + 4}`, width: "100%", role: "img" });
  const x = (v) => labelW + ((v - lo) / (hi - lo)) * barW;
  items.forEach((it, k) => {
    const y = k * rowH + 3;
    box.append(svg("text", { x: labelW - 6, y: y + 14, "text-anchor": "end", class: "axis" }, it.label));
    if (it.value !== null && it.value !== undefined) {
      const a = x(lo > 0 ? lo : 0);  // bars grow from zero
      const b = x(it.value);
      box.append(svg("rect", { x: Math.min(a, b), y, width: Math.max(1, Math.abs(b - a)), height: rowH - 6, fill: it.color, rx: 2 }));
    }
    box.append(svg("text", { x: w - 4, y: y + 14, "text-anchor": "end", class: "value" }, fmtValue(it.value)));
  });
  if (lo < 0) box.append(svg("line", { x1: x(0), x2: x(0), y1: 0, y2: items.length * rowH + 4, class: "zero" }));
  return box;
}

function trendChart(reports) {
  const dated = reports.filter((r) => r.date).sort((a, b) => a.date.localeCompare(b.date));
  const holder = $("trend-chart");
  holder.replaceChildren();
  if (dated.length === 0) {
    holder.append(el("p", { class: "muted", text: "No report states a date; nothing to chart." }));
    return;
  }
  const themes = groupLabels(dated[0].sentences[0], "themes");
  const w = 640, h = 220, left = 40, right = 150, top = 10, bottom = 40;
  const box = svg("svg", { viewBox: `0 0 ${w} ${h}`, width: "100%", role: "img", class: "trend" });
  const x = (k) => left + (dated.length === 1 ? (w - left - right) / 2 : (k / (dated.length - 1)) * (w - left - right));
  const y = (v) => top + ((1 - v) / 2) * (h - top - bottom);
  for (const v of [-1, 0, 1]) {
    box.append(svg("line", { x1: left, x2: w - right, y1: y(v), y2: y(v), class: v === 0 ? "zero" : "grid" }));
    box.append(svg("text", { x: left - 6, y: y(v) + 4, "text-anchor": "end", class: "axis" }, String(v)));
  }
  dated.forEach((r, k) => box.append(svg("text", { x: x(k), y: h - bottom + 16, "text-anchor": "middle", class: "axis" }, r.date)));
  const series = [...themes.map((t, i) => ({ name: t, color: THEME_COLORS[i % THEME_COLORS.length], v: (r) => stats(r).themeIndex[t] })),
    { name: "overall", color: "#333", v: (r) => stats(r).index }];
  series.forEach((s, i) => {
    const pts = dated.map((r, k) => [x(k), s.v(r)]).filter((p) => p[1] !== null);
    if (pts.length > 1) {
      box.append(svg("polyline", { points: pts.map((p) => `${p[0]},${y(p[1])}`).join(" "), fill: "none", stroke: s.color, "stroke-width": 2 }));
    }
    for (const p of pts) box.append(svg("circle", { cx: p[0], cy: y(p[1]), r: 3.5, fill: s.color }));
    box.append(svg("rect", { x: w - right + 12, y: top + i * 18, width: 10, height: 10, fill: s.color }));
    box.append(svg("text", { x: w - right + 28, y: top + i * 18 + 9, class: "axis" }, s.name));
  });
  holder.append(box);
  const undated = reports.length - dated.length;
  if (undated) holder.append(el("p", { class: "muted", text: `${undated} report(s) state no date and are left out.` }));
}

// --- rendering ----------------------------------------------------------------------------------------

function renderReports() {
  const many = state.reports.length > 1;
  $("reports-section").hidden = !many;
  const body = $("reports-table").tBodies[0];
  body.replaceChildren();
  state.reports.forEach((r, k) => {
    const st = stats(r);
    const row = el("tr", { "data-testid": "report-row", "data-report-id": r.report_id, class: k === state.current ? "current" : "",
      onclick: () => { state.current = k; render(); } },
    el("td", { text: r.report_id }), el("td", { text: r.date || "–" }), el("td", { text: String(r.summary.sentences) }),
    el("td", {}, el("span", { class: `badge rating-${r.summary.rating.label}`, text: r.summary.rating.label })),
    el("td", { text: fmt(st.index) }),
    el("td", { text: Object.entries(st.share).filter(([, v]) => v > 0).map(([t, v]) => `${t} ${(v * 100).toFixed(0)}%`).join(", ") || "–" }),
    el("td", { text: String(Object.keys(r.reviews).length) }));
    body.append(row);
  });
  if (many) trendChart(state.reports);
}

function renderSummary(report) {
  const st = stats(report);
  $("report-title").textContent = `${report.report_id}${report.date ? ` · ${report.date}` : ""} · ${report.summary.sentences} sentences of ${report.sentences.length} units`;
  const name = report.summary.title;
  $("report-name").textContent = name ? name.text : "(no title line)";
  const repeats = restatedUnits(report).size;
  $("report-restated").textContent = repeats ? `${repeats} sentence(s) restate an earlier one and are counted once.` : "";
  const rating = report.summary.rating;
  const badge = $("summary-rating");
  badge.textContent = rating.label;
  badge.className = `badge big rating-${rating.label}`;
  $("summary-evidence").textContent = rating.evidence ? `“${rating.evidence.text}” (${fmt(rating.score)})` : "the report states no rating";
  const sentiments = Object.keys(st.counts);
  $("chart-sentiment").replaceChildren(bars(sentiments.map((k) => ({ label: k, value: st.n ? st.counts[k] / st.n : 0, color: SENT_COLOR[k] || "#888" })),
    { fmtValue: (v) => `${Math.round(v * st.n)}` }));
  const themes = Object.keys(st.share);
  $("chart-themes").replaceChildren(bars(themes.map((t, i) => ({ label: t, value: st.share[t], color: THEME_COLORS[i % THEME_COLORS.length] })),
    { fmtValue: (v) => `${(v * 100).toFixed(0)}%` }));
  $("chart-index").replaceChildren(bars([{ label: "overall", value: st.index, color: "#333" },
    ...themes.map((t, i) => ({ label: t, value: st.themeIndex[t], color: THEME_COLORS[i % THEME_COLORS.length] }))], { lo: -1, hi: 1 }));
}

function fillFilter(id, labels) {
  const select = $(id);
  if (select.dataset.filled) return;
  for (const l of labels) select.append(el("option", { value: l, text: l }));
  select.dataset.filled = "1";
}

function tooltip(s) {
  const line = (g) => `${g}: ` + Object.entries(s[g].scores).sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${v.toFixed(3)}`).join(", ");
  return `${line("sentiment")}\n${line("themes")}\n${line("rating")}\nuncertainty ${uncertainty(s).toFixed(3)} · ${s.kind || "sentence"} · ${s.lang || ""}`;
}

function renderSentences(report) {
  const first = report.sentences[0];
  if (first) {
    fillFilter("filter-theme", groupLabels(first, "themes"));
    fillFilter("filter-sentiment", groupLabels(first, "sentiment"));
    fillFilter("filter-rating", groupLabels(first, "rating"));
  }
  const theme = $("filter-theme").value, sentiment = $("filter-sentiment").value, rating = $("filter-rating").value;
  const ev = report.summary.rating.evidence;
  const restated = restatedUnits(report), titled = titleUnits(report);
  let order = report.sentences.map((s, i) => i).filter((i) => {
    const l = shown(report, i);
    return (!theme || (theme === "-" ? l.themes.length === 0 : l.themes.includes(theme))) &&
      (!sentiment || l.sentiment === sentiment) && (!rating || l.rating === rating);
  });
  const needsReview = $("needs-review").checked;
  if (needsReview) order = order.sort((a, b) => uncertainty(report.sentences[b]) - uncertainty(report.sentences[a]));
  const list = $("sentences");
  list.replaceChildren();
  for (const i of order) {
    const s = report.sentences[i];
    const l = shown(report, i);
    const isEvidence = ev && ev.start === s.start && ev.end === s.end;
    const item = el("li", {
      "data-testid": "sentence", "data-index": String(i), "data-sentiment": l.sentiment, "data-themes": l.themes.join(" "),
      "data-rating": l.rating, "data-kind": s.kind || "sentence", "data-reviewed": report.reviews[i] ? "true" : "false",
      "data-uncertainty": uncertainty(s).toFixed(4), title: tooltip(s), tabindex: "0",
      class: `sentence sent-${l.sentiment} kind-${s.kind || "sentence"}${isEvidence ? " evidence" : ""}${report.reviews[i] ? " reviewed" : ""}`,
      // preventDefault: the Enter would otherwise also reach the dialog's focused select and open it.
      onclick: () => openReview(i), onkeydown: (e) => { if (e.key === "Enter") { e.preventDefault(); openReview(i); } },
    });
    if (isEvidence) item.setAttribute("data-evidence", "true");
    if (needsReview) item.append(el("span", { class: "unc", text: uncertainty(s).toFixed(2) }));
    if (s.kind && s.kind !== "sentence") item.append(el("span", { class: "kind", text: s.kind }));
    if (titled.has(i)) {
      item.setAttribute("data-title", "true");
      item.append(el("span", { class: "kind", text: "title", title: "the report's title line: read for its rating, not counted" }));
    }
    if (restated.has(i)) {
      item.setAttribute("data-restated", "true");
      item.append(el("span", { class: "kind", text: "restated", title: "restates an earlier sentence: counted once" }));
    }
    item.append(el("span", { class: "text", text: s.text }));
    for (const t of l.themes) item.append(el("span", { class: "chip", "data-testid": "theme-chip", text: t }));
    if (l.rating !== "none") item.append(el("span", { class: `badge rating-${l.rating}`, "data-testid": "rating-badge", text: l.rating }));
    if (report.reviews[i]) item.append(el("span", { class: "mark", text: "✓ reviewed" }));
    list.append(item);
  }
  $("shown").textContent = `${order.length} of ${report.sentences.length} shown`;
}

function render() {
  renderReports();
  const report = state.reports[state.current];
  $("report-section").hidden = !report;
  if (!report) return;
  renderSummary(report);
  renderSentences(report);
}

// --- review -------------------------------------------------------------------------------------------

function openReview(i) {
  const report = state.reports[state.current];
  const s = report.sentences[i];
  const l = shown(report, i);
  state.editing = i;
  state.reviewId = newId();
  $("review-text").textContent = s.text;
  $("review-model").textContent = `model: ${s.sentiment.label} (${fmt(s.sentiment.score)}), themes [${s.themes.labels.join(", ")}], rating ${s.rating.label} (${fmt(s.rating.score)})`;
  const sel = $("review-sentiment");
  sel.replaceChildren(...groupLabels(s, "sentiment").map((k) => el("option", { value: k, text: k })));
  sel.value = l.sentiment;
  const rat = $("review-rating");
  rat.replaceChildren(...groupLabels(s, "rating").map((k) => el("option", { value: k, text: k })));
  rat.value = l.rating;
  const fs = $("review-themes");
  fs.replaceChildren(el("legend", { text: "Themes" }), ...groupLabels(s, "themes").map((t) => {
    const box = el("input", { type: "checkbox", value: t, "data-testid": `review-theme-${t}` });
    box.checked = l.themes.includes(t);
    return el("label", { class: "check" }, box, ` ${t}`);
  }));
  $("review-error").hidden = true;
  $("review-panel").showModal();
}

// A review's id, new for each opening of the review dialog, so a retried save is stored once (getRandomValues also works on plain
// http to a non-local host, where crypto.randomUUID is missing).
function newId() {
  return [...crypto.getRandomValues(new Uint8Array(16))].map((b) => b.toString(16).padStart(2, "0")).join("");
}

async function saveReview(event) {
  event.preventDefault();
  const report = state.reports[state.current];
  const i = state.editing;
  const s = report.sentences[i];
  const body = {
    text: s.text, report_id: report.report_id, start: s.start, end: s.end, lang: s.lang || null,
    sentiment: $("review-sentiment").value, rating: $("review-rating").value,
    themes: [...$("review-themes").querySelectorAll("input:checked")].map((b) => b.value),
    model: { sentiment: s.sentiment, themes: s.themes, rating: s.rating },
    review_id: state.reviewId,
  };
  try {
    const stored = await postJson("/v1/reviews", body);
    report.reviews[i] = stored;
    $("review-panel").close();
    toast(`Correction saved (review ${stored.review_id.slice(0, 8)})`);
    render();
  } catch (e) {
    const box = $("review-error");
    box.textContent = `Not saved: ${e.message}`;
    box.hidden = false;
  }
}

// --- input --------------------------------------------------------------------------------------------

function setFiles(files) {
  state.files = [...files];
  $("files").textContent = state.files.map((f) => f.name).join(", ");
}

async function readFile(file) {
  const r = await api(`/v1/read-report?filename=${encodeURIComponent(file.name)}`,
    { method: "POST", body: file, headers: { "Content-Type": "application/octet-stream" } });
  return { report_id: r.report_id, text: r.text };
}

async function tagAll() {
  showError("");
  const inputs = [];
  const problems = [];
  const pasted = $("report-input").value;
  if (pasted.trim()) inputs.push({ report_id: $("report-id").value.trim() || "report", text: pasted });
  for (const f of state.files) {
    try { inputs.push(await readFile(f)); } catch (e) { problems.push(`${f.name}: ${e.message}`); }
  }
  if (!inputs.length && !problems.length) {
    showError(`Nothing to tag: paste a report's text or drop report files (${$("file-input").accept.split(",").join(" ")}).`);
    return;
  }
  $("busy").hidden = false;
  $("tag-button").disabled = true;
  const reports = [];
  try {
    for (const input of inputs) {
      try {
        const r = await postJson("/v1/tag-report", input);
        reports.push({ ...r, date: reportDate(input.text), reviews: {} });
      } catch (e) { problems.push(`${input.report_id}: ${e.message}`); }
    }
  } finally {
    $("busy").hidden = true;
    $("tag-button").disabled = false;
  }
  if (problems.length) showError(`Could not tag ${problems.length === 1 ? "one input" : problems.length + " inputs"}:\n${problems.join("\n")}`);
  // What this run tagged replaces the old results, also when it tagged nothing: no stale report shown as current.
  state.reports = reports;
  state.current = 0;
  render();
}

// --- downloads ----------------------------------------------------------------------------------------

function download(name, type, text) {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = el("a", { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

function jsonlText() {
  const lines = [];
  for (const r of state.reports) {
    r.sentences.forEach((s, i) => lines.push(JSON.stringify({ type: "sentence", report_id: r.report_id, ...s, review: r.reviews[i] || null })));
    lines.push(JSON.stringify({ type: "summary", report_id: r.report_id, date: r.date || null, summary: r.summary }));
  }
  return lines.join("\n") + "\n";
}

function csvText() {
  const q = (v) => `"${String(v ?? "").replaceAll('"', '""')}"`;
  const head = ["report_id", "date", "index", "start", "end", "kind", "text", "sentiment", "sentiment_score", "themes", "rating", "rating_score", "reviewed_sentiment", "reviewed_themes", "reviewed_rating"];
  const rows = [head.join(",")];
  for (const r of state.reports) {
    r.sentences.forEach((s, i) => {
      const v = r.reviews[i];
      rows.push([r.report_id, r.date, i, s.start, s.end, s.kind, s.text, s.sentiment.label, s.sentiment.score.toFixed(4),
        s.themes.labels.join(";"), s.rating.label, s.rating.score.toFixed(4), v ? v.sentiment : "", v ? v.themes.join(";") : "", v ? v.rating : ""].map(q).join(","));
    });
  }
  return "\ufeff" + rows.join("\r\n") + "\r\n";  // a BOM so spreadsheet programs read UTF-8
}

// --- wiring -------------------------------------------------------------------------------------------

function init() {
  $("api-key").value = sessionStorage.getItem("fintag-key") || "";
  $("tag-button").addEventListener("click", tagAll);
  $("clear-button").addEventListener("click", () => {
    $("report-input").value = ""; setFiles([]); $("file-input").value = ""; showError("");
    for (const id of ["filter-theme", "filter-sentiment", "filter-rating"]) $(id).value = "";
    $("needs-review").checked = false;
    state.reports = []; render();
  });
  $("file-input").addEventListener("change", (e) => setFiles(e.target.files));
  const drop = $("drop");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => { e.preventDefault(); drop.classList.remove("over"); setFiles(e.dataTransfer.files); });
  for (const id of ["filter-theme", "filter-sentiment", "filter-rating", "needs-review"]) {
    $(id).addEventListener("change", () => renderSentences(state.reports[state.current]));
  }
  $("review-form").addEventListener("submit", (e) => {
    if (e.submitter && e.submitter.value === "cancel") { $("review-panel").close(); e.preventDefault(); return; }
    saveReview(e);
  });
  $("summary-evidence").addEventListener("click", () => {
    const ev = document.querySelector('[data-evidence="true"]');
    if (ev) ev.scrollIntoView({ block: "center" });
  });
  $("download-jsonl").addEventListener("click", () => download("fintag-tags.jsonl", "application/x-ndjson", jsonlText()));
  $("download-csv").addEventListener("click", () => download("fintag-tags.csv", "text/csv", csvText()));
}

init();
