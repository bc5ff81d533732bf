// The dashboard page, part 2 of 3: the pages, each drawn from /api JSON into a list of elements.
"use strict";

function actionButtons(service, peer, names) {
  return h("div", { class: "actions" }, names.map((name) =>
    h("button", { class: `small${name === "stop" || name === "rollback" ? " danger" : ""}`, type: "button", "data-action": name,
      onclick: (event) => act({ action: name, service, peer }, event.currentTarget) }, name)));
}


async function fleetPage() {
  const data = await api("/api/fleet");
  const nodes = data.nodes;
  const running = nodes.reduce((sum, n) => sum + (n.services_running || 0), 0);
  const rows = nodes.map((n) => h("tr", { "data-peer": n.peer_id },
    h("td", { "data-label": "node" }, nodeLabel(n)),
    h("td", { "data-label": "link" }, badge(n.self ? "self" : n.connected ? "connected" : "offline")),
    h("td", { "data-label": "role" }, n.self ? "—" : n.role || h("span", { class: "muted" }, "none")),
    h("td", { "data-label": "services" }, n.services_total === null ? h("span", { class: "muted", title: n.error ? n.error.message : "" }, n.error ? `no access (${n.error.code})` : "—") : `${n.services_running}/${n.services_total}`),
    h("td", { "data-label": "health" }, badge(n.health)),
    h("td", { "data-label": "versions", class: "versions" }, Object.entries(n.services).map(([name, s]) =>
      h("a", { class: `chip ${s.state}`, href: `#/service/${encodeURIComponent(name)}`, "data-service": name, "data-version": s.version, title: `${s.state}, ${s.health || "health unknown"}` }, `${name} ${s.version}`)))));
  return [
    h("h1", {}, "Fleet"),
    h("div", { class: "sub" }, `${nodes.length} node(s) this node knows`),
    h("div", { class: "grid" },
      h("div", { class: "stat" }, h("b", {}, nodes.length), h("span", {}, "nodes")),
      h("div", { class: "stat" }, h("b", {}, nodes.filter((n) => n.self || n.connected).length), h("span", {}, "connected")),
      h("div", { class: "stat" }, h("b", {}, running), h("span", {}, "services running")),
      h("div", { class: "stat" }, h("b", {}, nodes.filter((n) => n.health === "degraded").length), h("span", {}, "degraded"))),
    h("table", { class: "cards", id: "fleet" },
      h("thead", {}, h("tr", {}, ["Node", "Link", "Role here", "Services", "Health", "Versions"].map((t) => h("th", {}, t)))),
      h("tbody", {}, rows)),
  ];
}

async function nodePage(peer) {
  const data = await api(`/api/nodes/${encodeURIComponent(peer)}`);
  const history = data.history || {};
  const rows = [];
  for (const s of data.services) {
    const samples = history[s.name] || [];
    const gauges = samples.length ? Object.keys(samples[samples.length - 1].gauges || {}) : [];
    rows.push(h("tr", { "data-service": s.name },
      h("td", { "data-label": "service" }, h("a", { href: `#/service/${encodeURIComponent(s.name)}` }, s.name)),
      h("td", { "data-label": "state", class: "state" }, badge(s.state)),
      h("td", { "data-label": "version", class: "mono" }, s.version),
      h("td", { "data-label": "uptime" }, uptime(s.uptime_seconds)),
      h("td", { "data-label": "restarts" }, s.restart_count ?? "—"),
      h("td", { "data-label": "health" }, badge(s.health)),
      h("td", { "data-label": "calls/s" }, sparkline(rates(samples, "calls"), "calls per second"), " ", h("span", { class: "muted" }, s.calls ?? ""),
        gauges.slice(0, 1).map((g) => [" ", sparkline(samples.map((x) => (x.gauges || {})[g] || 0), g)])),
      h("td", { "data-label": "actions" }, actionButtons(s.name, data.peer_id, ["start", "stop", "restart", "rollback"]),
        h("button", { class: "small ghost log-toggle", type: "button", onclick: () => toggleLogs(data.peer_id, s.name) }, "logs"))));
    if (state.openLogs === `${data.peer_id}/${s.name}`) {
      rows.push(h("tr", { class: "log-row" }, h("td", { colspan: 8 }, h("pre", { class: "logs", id: "logs" }, state.logText || "…"))));
    }
  }
  const figures = data.node || {};
  return [
    h("h1", {}, data.name || (data.self ? "This node" : "Node"), " ", badge(data.self ? "self" : data.connected ? "connected" : "offline")),
    h("div", { class: "sub mono" }, data.peer_id, data.role && !data.self ? h("span", { class: "muted" }, ` — role here: ${data.role}`) : null),
    data.error ? h("p", { class: "error-box" }, `This node cannot read it: [${data.error.code}] ${data.error.message}`) : null,
    h("div", { class: "grid" },
      h("div", { class: "stat" }, h("b", {}, data.services.length), h("span", {}, "services")),
      h("div", { class: "stat" }, h("b", {}, data.services.filter((s) => s.state === "running").length), h("span", {}, "running")),
      h("div", { class: "stat" }, h("b", {}, uptime(figures.uptime_seconds)), h("span", {}, "node uptime")),
      h("div", { class: "stat" }, h("b", {}, figures.peers_connected ?? "—"), h("span", {}, "peers connected"))),
    h("table", { class: "cards", id: "services" },
      h("thead", {}, h("tr", {}, ["Service", "State", "Version", "Uptime", "Restarts", "Health", "Calls", "Actions"].map((t) => h("th", {}, t)))),
      h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { colspan: 8, class: "muted" }, "No service installed")))),
  ];
}

async function toggleLogs(peer, service) {
  const key = `${peer}/${service}`;
  if (state.openLogs === key) { state.openLogs = null; refresh(); return; }
  state.openLogs = key;
  state.logText = "…";
  await loadLogs();
  refresh();
}

async function loadLogs() {
  if (!state.openLogs) return;
  const [peer, service] = state.openLogs.split("/");
  try {
    const data = await api(`/api/nodes/${encodeURIComponent(peer)}/logs/${encodeURIComponent(service)}`);
    state.logText = data.error ? `[${data.error.code}] ${data.error.message}` : data.lines.join("\n") || "(no output yet)";
  } catch (error) { state.logText = error.message; }
}

async function servicePage(name) {
  const data = await api(`/api/services/${encodeURIComponent(name)}`);
  const fleet = await api("/api/fleet");
  const names = Object.fromEntries(fleet.nodes.map((n) => [n.peer_id, n.name || n.short]));
  const rows = data.nodes.map((n) => h("tr", { "data-peer": n.peer_id },
    h("td", { "data-label": "node" }, nodeLabel(n)),
    h("td", { "data-label": "version", class: "mono" }, n.version),
    h("td", { "data-label": "state" }, badge(n.state)),
    h("td", { "data-label": "health" }, badge(n.health)),
    h("td", { "data-label": "actions" }, actionButtons(name, n.peer_id, ["start", "stop", "restart", "rollback"]))));
  const replicas = data.replicas || {};
  const rule = replicas.rule;
  const count = h("input", { type: "number", min: 0, value: rule ? rule.count : 1, "aria-label": "copies" });
  const others = fleet.nodes.filter((n) => !n.self);
  const picks = others.map((n) => h("input", { type: "checkbox", value: n.peer_id, checked: n.services[name] ? true : null }));
  const canary = h("input", { type: "number", min: 0, value: 1, "aria-label": "canary" });
  const wave = h("input", { type: "number", min: 1, value: 1, "aria-label": "wave" });
  const healthWait = h("input", { type: "number", min: 0, step: "any", value: 30, "aria-label": "health wait", name: "health_wait" });
  return [
    h("h1", {}, name),
    h("div", { class: "sub" }, `version(s) in the fleet: ${data.versions.join(", ") || "none"}`),
    h("table", { class: "cards" },
      h("thead", {}, h("tr", {}, ["Node", "Version", "State", "Health", "Actions"].map((t) => h("th", {}, t)))),
      h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { colspan: 5, class: "muted" }, "No node this node can read runs it")))),
    h("h2", {}, "Replicas"),
    h("div", { class: "card" },
      rule ? h("p", {}, `Rule v${rule.version}: ${rule.count} cop${rule.count === 1 ? "y" : "ies"}`,
        rule.label ? ` on nodes labelled ${rule.label}` : rule.peers.length ? ` among ${rule.peers.length} listed node(s)` : " on any node",
        h("span", { class: "muted" }, ` — set by ${names[rule.set_by] || (rule.set_by || "").slice(-6)}`)) : h("p", { class: "muted" }, "No replica rule."),
      rule ? h("p", {}, "Placed on: ", (replicas.desired || []).map((p) => h("span", { class: "chip", title: p }, names[p] || p.slice(-6))),
        h("br"), "Running on: ", (replicas.running || []).map((p) => h("span", { class: "chip running", title: p }, names[p] || p.slice(-6)))) : null,
      h("div", { class: "form" }, h("label", {}, "Copies ", count),
        h("button", { type: "button", "data-action": "replicas", onclick: (e) => act({ action: "replicas", service: name, count: Number(count.value) }, e.currentTarget) }, "Set"))),
    h("h2", {}, "Roll out this node's version"),
    h("div", { class: "card" },
      others.length ? h("div", { class: "form" }, others.map((n, i) => h("label", {}, picks[i], n.name || n.short))) : h("p", { class: "muted" }, "No other node known."),
      h("div", { class: "form" }, h("label", {}, "Canary ", canary), h("label", {}, "Wave ", wave), h("label", {}, "Healthy for (s) ", healthWait),
        h("button", { type: "button", "data-action": "rollout", onclick: (e) => act({ action: "rollout", service: name, targets: picks.filter((p) => p.checked).map((p) => p.value), canary: Number(canary.value), wave: Number(wave.value), health_wait: Number(healthWait.value) }, e.currentTarget) }, "Roll out"))),
    h("h2", {}, "Releases on this node"),
    data.releases.length ? h("table", { class: "cards", id: "releases" },
      h("thead", {}, h("tr", {}, ["Version", "Installed", "Size", "Signed", ""].map((t) => h("th", {}, t)))),
      h("tbody", {}, data.releases.map((r) => h("tr", {},
        h("td", { "data-label": "version", class: "mono" }, r.version),
        h("td", { "data-label": "installed" }, r.installed_at ? new Date(r.installed_at).toLocaleString() : ""),
        h("td", { "data-label": "size" }, bytes(r.archive_size || 0)),
        h("td", { "data-label": "signed" }, r.signed ? "signed" : h("span", { class: "muted" }, "unsigned")),
        h("td", {}, r.current ? badge("current") : null))))) : h("p", { class: "muted" }, "Not installed on this node."),
    h("h2", {}, "Updates"),
    h("div", { class: "card" }, data.updates ? h("p", {},
      `Followed: this node runs ${data.updates.current_version || "nothing"}, the newest trusted release seen is ${data.updates.newest_version || "none"}`,
      data.updates.from_peer ? ` (from ${data.updates.from_peer.slice(-6)})` : "",
      data.updates.failed_versions && data.updates.failed_versions.length ? h("span", { class: "error-box" }, ` — failed: ${data.updates.failed_versions.join(", ")}`) : "")
      : h("p", { class: "muted" }, "This node does not follow it ([updates] follow).")),
    data.rollouts.length ? [h("h2", {}, "Rollouts"), data.rollouts.map((r) => rolloutCard(r, names))] : null,
    data.distributions.length ? [h("h2", {}, "Distributions"), data.distributions.map((d) => distributionCard(d, names))] : null,
  ];
}

function distributionCard(d, names) {
  const ratio = d.bytes_total ? Math.min(1, d.bytes_received / d.bytes_total) : d.finished ? 1 : 0;
  const bar = (r, cls) => h("div", { class: `bar ${cls || ""}` }, h("i", { style: `width:${Math.round(r * 100)}%` }));
  const size = d.bytes_total && d.targets_total ? d.bytes_total / d.targets_total : 0;
  return h("div", { class: "card distribution", "data-service": d.service, "data-done": d.targets_done, "data-total": d.targets_total },
    h("div", { class: "form" }, h("b", {}, `${d.service} ${d.version || ""}`), badge(d.finished ? (d.targets_failed ? "failed" : "succeeded") : "transferring"),
      h("span", { class: "progress-text" }, `${d.targets_done}/${d.targets_total} node(s)`, d.targets_failed ? `, ${d.targets_failed} failed` : "", ` — ${bytes(d.bytes_received)} of ${bytes(d.bytes_total)}`),
      h("span", { class: "muted" }, when(d.updated))),
    bar(ratio, d.finished ? (d.targets_failed ? "failed" : "done") : ""),
    h("div", { class: "targets" }, Object.entries(d.targets).map(([peer, t]) => [
      h("span", { class: "mono", title: peer }, names[peer] || peer.slice(-6)),
      bar(size ? t.bytes_received / size : 0, t.state === "succeeded" ? "done" : t.state === "failed" ? "failed" : ""),
      badge(t.state)])));
}

function rolloutCard(r, names) {
  return h("div", { class: "card rollout", "data-rollout": r.id, "data-service": r.service_name },
    h("div", { class: "form" }, h("b", {}, `${r.service_name} → ${r.version}`), badge(r.phase), h("span", { class: "muted mono" }, r.id),
      h("span", { class: "muted" }, `canary ${r.canary}, waves of ${r.wave}, healthy for ${r.health_wait}s; ${r.failures} failed (${r.max_failures} allowed)`)),
    r.reason ? h("p", { class: "error-box" }, r.reason) : null,
    r.waves.map((peers, i) => h("div", { class: "wave" }, h("span", {}, i === 0 && r.canary ? "canary" : `wave ${i}`),
      peers.map((peer) => { const t = r.targets[peer] || {}; return h("span", { class: `chip ${t.state}`, title: `${peer}${t.reason ? `: ${t.reason}` : ""}` }, `${names[peer] || peer.slice(-6)} `, badge(t.state)); }))));
}

async function operationsPage() {
  const data = await api("/api/operations");
  return [
    h("h1", {}, "Operations"),
    h("div", { class: "sub" }, "Distributions and rollouts this node runs"),
    h("h2", {}, "Distributions"),
    data.distributions.length ? data.distributions.map((d) => distributionCard(d, data.names)) : h("p", { class: "muted" }, "None since the node started."),
    h("h2", {}, "Rollouts"),
    data.rollouts.length ? data.rollouts.map((r) => rolloutCard(r, data.names)) : h("p", { class: "muted" }, "None kept."),
  ];
}

function eventTone(type) {
  if (/failed|refused|reverted|rolled_back|unhealthy/.test(type)) return "failed";
  if (/stopped|uninstalled/.test(type)) return "stopped";
  if (/progress|waiting/.test(type)) return "transferring";
  return "running";
}

function eventSummary(e) {
  const d = e.data || {};
  if (e.type === "distribution_progress") {
    return `${d.targets_done}/${d.targets_total} node(s)${d.targets_failed ? `, ${d.targets_failed} failed` : ""}, ${bytes(d.bytes_received || 0)} of ${bytes(d.bytes_total || 0)}`;
  }
  if (e.type === "service_distributed") return `${d.successful}/${d.targets_total} node(s) in ${d.seconds}s`;
  const text = Object.keys(d).length ? JSON.stringify(d) : "";
  return text.length > 200 ? `${text.slice(0, 200)}…` : text;
}

async function eventsPage() {
  if (!state.eventsLoaded) {
    const data = await api("/api/events");
    const key = (e) => `${e.time} ${e.type} ${e.service} ${JSON.stringify(e.data)}`;
    const known = new Set(data.events.map(key));
    state.events = data.events.concat(state.events.filter((e) => !known.has(key(e)))).slice(-300);
    state.eventsLoaded = true;
  }
  const items = state.events.slice().reverse().map((e) => {
    const li = h("li", { class: e.fresh ? "fresh" : "", "data-type": e.type },
      h("time", {}, when(e.time)), h("span", { class: `badge ${eventTone(e.type)}` }, e.type), e.service ? h("a", { href: `#/service/${encodeURIComponent(e.service)}` }, e.service) : null,
      e.version ? h("span", { class: "mono" }, e.version) : null,
      h("span", { class: "data" }, eventSummary(e)));
    e.fresh = false;
    return li;
  });
  return [h("h1", {}, "Events"), h("div", { class: "sub" }, "This node's events, newest first, as they happen"),
    h("ul", { class: "events card", id: "events" }, items.length ? items : h("li", { class: "muted" }, "No event yet."))];
}


const PAGES = { fleet: fleetPage, node: nodePage, service: servicePage, operations: operationsPage, events: eventsPage };
