// The live dashboard: polls /dashboard.json every two seconds and counts down every second.
// Tokens live in sessionStorage (this tab only) and travel in the Authorization header, never
// in the URL. No request leaves this origin.
"use strict";
(function () {
  const $ = (s) => document.querySelector(s);
  const ss = window.sessionStorage;
  let skew = 0;
  let last = null;

  const esc = (v) => String(v).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
  const time = (ms) => (ms ? new Date(ms).toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z") : "");
  function left(until) {
    const s = Math.ceil((until - (Date.now() + skew)) / 1000);
    if (s <= 0) return "now";
    const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
    return (d ? d + "d " : "") + (d || h ? h + "h " : "") + (d || h || m ? m + "m " : "") + r + "s";
  }
  const countdown = (until) => `<span class="countdown" data-until="${until}">${esc(left(until))}</span>`;

  function answers(a) {
    if (!a || !a.requests) return '<span class="mute">none yet</span>';
    const parts = Object.keys(a).map((k) => `${esc(k)}&nbsp;${a[k]}`);
    return parts.length ? parts.join(", ") : '<span class="mute">none yet</span>';
  }

  const tokens = (t) => (t ? `${t.in}&nbsp;in / ${t.out}&nbsp;out` : "");
  function budget(b, at) {
    const reset = b.resets_at && b.resets_at > at ? ", resets in " + countdown(b.resets_at) : "";
    return `<li class="budget" data-budget="${esc(b.budget)}" data-kind="${esc(b.kind)}">${b.budget === "keys" ? "all keys" : esc(b.budget)} ${esc(b.kind.replace(/_/g, " "))} <b class="use">${b.used} / ${b.limit}</b> <span class="mute">(${esc(b.window)}${reset})${b.fleet ? " fleet-wide" : ""}</span></li>`;
  }

  function keyRow(p, k) {
    const admin = !!ss.getItem("akr-admin");
    let why = "";
    if (k.reason) {
      why = esc(k.reason.cause);
      if (k.reason.scope) why += ` <span class="mute">(scope ${esc(k.reason.scope)})</span>`;
      if (k.reason.provider_reset) why += ` <span class="mute">provider reset ${esc(time(k.reason.provider_reset))}</span>`;
    }
    const when = [k.since ? "since " + esc(time(k.since)) : "", k.until ? "until " + esc(time(k.until)) + " (" + countdown(k.until) + ")" : ""].filter(Boolean).join("<br>");
    let acts = "";
    if (admin) {
      const b = (a, t) => `<button data-act="${a}" data-p="${esc(p.name)}" data-fp="${esc(k.fingerprint)}">${t}</button>`;
      acts = (k.state === "disabled" || k.state === "depleted" ? b("enable", "enable") : b("disable", "disable")) + (k.state === "cooling" ? b("reset", "reset") : "") + b("probe", "probe");
    }
    return `<tr class="key" data-fp="${esc(k.fingerprint)}" data-state="${esc(k.state)}">
<td data-l="key">${esc(k.label || "")} <code class="fp">${esc(k.fingerprint)}</code></td>
<td data-l="state"><span class="state ${esc(k.state)}">${esc(k.state)}</span> ${why}</td>
<td data-l="when">${when}</td>
<td data-l="last">${k.last ? esc(k.last.class) + " " + esc(time(k.last.at)) : ""}</td>
<td data-l="used" class="used">${k.used}</td>
<td data-l="today" class="answers">${answers(k.today)}</td>
<td data-l="tokens today" class="tokens">${tokens(k.tokens_today)}</td>
<td data-l="headroom">${k.remaining == null ? "" : k.remaining}</td>
<td data-l="scope">${esc(k.scope || "")}${k.weight ? " w" + k.weight : ""}</td>
<td data-l="">${acts}</td></tr>`;
  }

  function section(p, at) {
    let next = "";
    if (p.next_at == null) next = "none will come back by itself";
    else if (p.next_at <= at) next = "now";
    else next = countdown(p.next_at);
    return `<section class="provider" data-name="${esc(p.name)}">
<h2>${esc(p.name)} <span class="mute">${esc(p.family)} · ${esc(p.strategy)}</span></h2>
<div class="facts"><span>healthy <b class="healthy">${p.healthy}/${p.total}</b></span>
<span>next key back <b class="next">${next}</b></span>
<span>last minute <b class="minute">${p.minute.requests}</b> requests, <b>${p.minute.errors}</b> errors</span>
<span>today <b class="today">${p.today.requests}</b> requests, <b>${p.today.errors}</b> errors</span>
<span>tokens today <b class="tokens">${tokens(p.tokens_today)}</b></span></div>
${p.budgets && p.budgets.length ? `<ul class="budgets">${p.budgets.map((b) => budget(b, at)).join("")}</ul>` : ""}
<div class="wrap"><table><thead><tr><th>key</th><th>state</th><th>when</th><th>last verdict</th><th>used</th><th>today</th><th>tokens today</th><th>headroom</th><th>scope</th><th></th></tr></thead>
<tbody>${p.keys.map((k) => keyRow(p, k)).join("")}</tbody></table></div></section>`;
  }

  function render(d) {
    const s = $("#store");
    s.className = "pill " + d.store.state;
    s.textContent = "store: " + d.store.state + (d.store.cause ? " (" + d.store.cause + ")" : "");
    $("#providers").innerHTML = d.providers.map((p) => section(p, d.at)).join("");
    $("#updated").textContent = "updated " + time(d.at);
    $("#reload").hidden = !ss.getItem("akr-admin");
  }

  function tick() {
    document.querySelectorAll(".countdown").forEach((e) => {
      e.textContent = left(Number(e.dataset.until));
    });
  }

  function bearer(kind) {
    const t = ss.getItem(kind);
    return t ? { authorization: "Bearer " + t } : {};
  }

  async function poll() {
    let r;
    try {
      // An admin token also reads the dashboard.
      const h = ss.getItem("akr-token") ? bearer("akr-token") : bearer("akr-admin");
      r = await fetch("/dashboard.json", { headers: h, cache: "no-store" });
    } catch (e) {
      $("#updated").textContent = "gateway unreachable";
      return;
    }
    if (r.status === 401 || r.status === 403) {
      $("#auth").hidden = false;
      $("#updated").textContent = "a token is needed";
      return;
    }
    if (!r.ok) return;
    last = await r.json();
    skew = last.at - Date.now();
    if (!window.akrShowAuth) $("#auth").hidden = true;
    render(last);
  }

  async function act(path, label) {
    $("#msg").textContent = label + "…";
    try {
      const r = await fetch(path, { method: "POST", headers: bearer("akr-admin") });
      const body = await r.json().catch(() => ({}));
      $("#msg").textContent = label + ": " + (r.ok ? body.result || "done" : (body.error || r.status));
    } catch (e) {
      $("#msg").textContent = label + ": gateway unreachable";
    }
    poll();
  }

  document.addEventListener("click", (e) => {
    const b = e.target.closest("button[data-act]");
    if (b) {
      const p = encodeURIComponent(b.dataset.p), fp = encodeURIComponent(b.dataset.fp);
      act(`/admin/keys/${p}/${fp}/${b.dataset.act}`, b.dataset.act + " " + b.dataset.fp);
    }
  });
  $("#reload").addEventListener("click", () => act("/admin/reload", "reload"));
  $("#auth").addEventListener("submit", (e) => {
    e.preventDefault();
    for (const [id, k] of [["#token", "akr-token"], ["#admin", "akr-admin"]]) {
      const v = $(id).value.trim();
      if (v) ss.setItem(k, v); else ss.removeItem(k);
      $(id).value = "";
    }
    $("#auth").hidden = true;
    window.akrShowAuth = false;
    poll();
  });
  $("#forget").addEventListener("click", () => {
    ss.removeItem("akr-token");
    ss.removeItem("akr-admin");
    $("#auth").hidden = false;
    poll();
  });
  $("#show-auth").addEventListener("click", () => {
    window.akrShowAuth = $("#auth").hidden;
    $("#auth").hidden = !$("#auth").hidden;
  });
  document.documentElement.classList.add("js");
  poll();
  setInterval(poll, 2000);
  setInterval(tick, 1000);
})();
