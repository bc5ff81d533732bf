// The dashboard page, part 3 of 3: talking to the node, the live feed, routing, the token.
// Routes live in the URL's fragment (#/, #/node/ID, #/service/NAME, #/operations, #/events); each
// page is drawn from /api JSON and drawn again when the live feed (/api/stream) brings an event,
// and every few seconds for what other nodes do.  Text from the API is only ever set as text.
"use strict";

const TOKEN_KEY = "p2p-orchestrator-dashboard-token";
const REFRESH_MS = 5000;
const MIN_GAP_MS = 700;
const state = { info: null, route: null, timer: null, pending: null, events: [], live: false, token: sessionStorage.getItem(TOKEN_KEY) || "" };

// -- talking to the node ------------------------------------------------------------------------

function headers(extra) {
  const all = Object.assign({ Accept: "application/json" }, extra || {});
  if (state.token) all.Authorization = `Bearer ${state.token}`;
  return all;
}

async function api(path) {
  const response = await fetch(path, { headers: headers(), cache: "no-store" });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw Object.assign(new Error(body.error ? body.error.message : response.statusText), { code: body.error && body.error.code, status: response.status });
  return body;
}

async function post(path, payload) {
  const response = await fetch(path, { method: "POST", headers: headers({ "Content-Type": "application/json" }), body: JSON.stringify(payload), cache: "no-store" });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw Object.assign(new Error(body.error ? body.error.message : response.statusText), { code: body.error && body.error.code, status: response.status });
  return body;
}

async function act(payload, button) {
  if (button) button.disabled = true;
  try {
    await post("/api/actions", payload);
    toast(`${payload.action} ${payload.service}: done`);
  } catch (error) {
    toast(`${payload.action} ${payload.service}: [${error.code || error.status}] ${error.message}`, true);
    if (error.code === "token_required" || error.code === "bad_token") $("#token-panel").hidden = false;
  } finally {
    if (button) button.disabled = false;
    refresh();
  }
}

// -- the live feed: server-sent events, read with fetch so the token can travel as a header -------

async function stream() {
  for (;;) {
    try {
      const response = await fetch("/api/stream", { headers: headers({ Accept: "text/event-stream" }), cache: "no-store" });
      if (!response.ok || !response.body) throw new Error(`stream: ${response.status}`);
      setLive(true);
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let cut;
        while ((cut = buffer.indexOf("\n\n")) >= 0) {
          handleMessage(buffer.slice(0, cut));
          buffer = buffer.slice(cut + 2);
        }
      }
    } catch (error) { /* the node went away or restarted: try again */ }
    setLive(false);
    await new Promise((resolve) => setTimeout(resolve, 2000));
  }
}

function handleMessage(text) {
  let kind = "message", data = "";
  for (const line of text.split("\n")) {
    if (line.startsWith("event:")) kind = line.slice(6).trim();
    else if (line.startsWith("data:")) data += line.slice(5).trim();
  }
  if (!data || kind === "hello" || kind === "busy") return; // busy: the node ends this feed; we come back
  if (kind !== "dropped") {
    try { state.events.push(Object.assign(JSON.parse(data), { fresh: true })); } catch (error) { return; }
    state.events = state.events.slice(-300);
  }
  scheduleRefresh();
}

function setLive(on) {
  state.live = on;
  const el = $("#live");
  el.className = `live${on ? " on" : ""}`;
  el.textContent = on ? "live" : "reconnecting";
}

function scheduleRefresh() {
  // events come in bursts (a distribution reports every 250 ms): draw at most every MIN_GAP_MS
  if (state.pending) return;
  const wait = Math.max(150, (state.lastDraw || 0) + MIN_GAP_MS - Date.now());
  state.pending = setTimeout(() => { state.pending = null; refresh(); }, wait);
}

// -- routing ------------------------------------------------------------------------------------

function parseRoute() {
  const parts = (location.hash || "#/").slice(2).split("/").map(decodeURIComponent);
  if (parts[0] === "node" && parts[1]) return { page: "node", arg: parts[1], nav: "fleet" };
  if (parts[0] === "service" && parts[1]) return { page: "service", arg: parts[1], nav: "fleet" };
  if (parts[0] === "operations") return { page: "operations", nav: "operations" };
  if (parts[0] === "events") return { page: "events", nav: "events" };
  return { page: "fleet", nav: "fleet" };
}

let drawing = null;

async function refresh() {
  if (drawing) { drawing.again = true; return; }
  drawing = { again: false };
  state.lastDraw = Date.now();
  const route = parseRoute();
  const hash = location.hash || "#/";
  try {
    if (route.page === "node") await loadLogs();
    const content = await PAGES[route.page](route.arg);
    const view = $("#view");
    if ((location.hash || "#/") !== hash) {
      drawing.again = true; // the page changed while its data was on the way: draw the new one
    } else if (document.activeElement && view.contains(document.activeElement) && document.activeElement.tagName === "INPUT") {
      // someone is typing in a form of this page: leave it be until they are done
    } else {
      const scroll = window.scrollY;
      view.replaceChildren(...[content].flat(Infinity).filter(Boolean));
      window.scrollTo(0, scroll);
      view.dataset.page = route.page;
      view.dataset.route = hash;
      view.dataset.drawn = String(Date.now());
    }
  } catch (error) {
    $("#view").replaceChildren(h("p", { class: "error-box" }, `[${error.code || error.status || "error"}] ${error.message}`));
    if (error.code === "token_required" || error.code === "bad_token") $("#token-panel").hidden = false;
  }
  document.querySelectorAll("nav a").forEach((a) => a.classList.toggle("active", a.dataset.nav === route.nav));
  const again = drawing.again;
  drawing = null;
  if (again) scheduleRefresh();
}

function setupToken() {
  const panel = $("#token-panel"), input = $("#token-input"), note = $("#token-state");
  const show = () => { note.textContent = state.token ? "A token is set for this tab." : "No token set: pages are read-only."; };
  $("#token-button").addEventListener("click", () => { panel.hidden = !panel.hidden; if (!panel.hidden) input.focus(); });
  $("#token-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const given = input.value.trim();
    if (!given) return;
    const previous = state.token;
    state.token = given;
    try {
      await post("/api/token", {});
      sessionStorage.setItem(TOKEN_KEY, given);
      input.value = "";
      panel.hidden = true;
      toast("Token accepted: actions are enabled");
    } catch (error) {
      state.token = previous;
      toast(`Token refused: [${error.code || error.status}] ${error.message}`, true);
    }
    show();
    refresh();
  });
  $("#token-forget").addEventListener("click", () => { state.token = ""; sessionStorage.removeItem(TOKEN_KEY); show(); });
  show();
}

window.addEventListener("hashchange", () => { state.openLogs = null; refresh(); });
setupToken();
refresh();
stream();
setInterval(refresh, REFRESH_MS);
