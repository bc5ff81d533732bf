// The dashboard page, part 1 of 3: DOM helpers (no framework; text from the API is only ever set as text).
"use strict";

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "style") el.style.cssText = value; // through the CSSOM: the CSP forbids inline style attributes
    else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}
const badge = (word) => h("span", { class: `badge ${word || "unknown"}` }, word || "unknown");
const $ = (selector) => document.querySelector(selector);

function toast(text, isError) {
  const el = $("#toast");
  el.textContent = text;
  el.className = `show${isError ? " error" : ""}`;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { el.className = ""; }, isError ? 6000 : 3000);
}

function uptime(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  const s = Math.floor(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
}
const bytes = (n) => (n >= 1048576 ? `${(n / 1048576).toFixed(1)} MiB` : n >= 1024 ? `${(n / 1024).toFixed(1)} KiB` : `${n} B`);
const when = (iso) => (iso ? new Date(iso).toLocaleTimeString() : "");

function nodeLabel(entry) {
  const who = entry.name ? `${entry.name} ` : "";
  return h("a", { href: `#/node/${encodeURIComponent(entry.peer_id)}`, title: entry.peer_id },
    who, h("span", { class: "mono" }, entry.short), entry.self ? h("span", { class: "muted" }, " (this node)") : null);
}

function sparkline(values, title) {
  const width = 90, height = 22;
  const svgNS = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(svgNS, "svg");
  svg.setAttribute("class", "spark");
  svg.setAttribute("width", width);
  svg.setAttribute("height", height);
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  const label = document.createElementNS(svgNS, "title");
  label.textContent = title;
  svg.append(label);
  if (values.length > 1) {
    const max = Math.max(...values, 1e-9), min = Math.min(...values, 0);
    const points = values.map((v, i) => `${(i / (values.length - 1)) * width},${height - 2 - ((v - min) / (max - min || 1)) * (height - 4)}`);
    const line = document.createElementNS(svgNS, "polyline");
    line.setAttribute("points", points.join(" "));
    svg.append(line);
  }
  return svg;
}

function rates(samples, key) {
  const out = [];
  for (let i = 1; i < samples.length; i++) {
    const dt = samples[i].t - samples[i - 1].t;
    out.push(dt > 0 ? Math.max(0, samples[i][key] - samples[i - 1][key]) / dt : 0);
  }
  return out;
}
