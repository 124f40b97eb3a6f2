// The modalrec page: pick a user, see their recommendations and history, click an item for similar items.
"use strict";

const $ = (id) => document.getElementById(id);
let currentUser = null;
// The service writes its token into the page only for a browser that proved it (/?token=...); the page's own
// requests then carry it. Another origin's page cannot read it.
const tokenMeta = document.querySelector('meta[name="modalrec-token"]');
const authHeaders = tokenMeta ? { Authorization: `Bearer ${tokenMeta.content}` } : {};

async function getJson(url, options) {
  const response = await fetch(url, { ...options, headers: { ...authHeaders, ...((options || {}).headers) } });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    throw new Error(body.error || `${response.status} ${response.statusText}`);
  }
  return body;
}

function showMessage(text) {
  $("message").textContent = text || "";
}

function logFeedback(events) {
  if (!$("log-feedback").checked || events.length === 0) return;
  fetch("/feedback", {
    method: "POST",
    headers: { ...authHeaders, "Content-Type": "application/json" },
    body: JSON.stringify(events),
  }).catch(() => {});
}

function card(row, onClick) {
  const element = document.createElement("button");
  element.type = "button";
  element.className = "card";
  element.dataset.item = row.item;
  if (row.image) {
    const picture = document.createElement("img");
    picture.src = row.image;
    picture.alt = row.title || row.item;
    picture.loading = "lazy";
    element.appendChild(picture);
  } else {
    const placeholder = document.createElement("div");
    placeholder.className = "placeholder";
    placeholder.textContent = "no picture";
    element.appendChild(placeholder);
  }
  const title = document.createElement("div");
  title.className = "title";
  title.textContent = row.title || row.item;
  title.title = `${row.item}${row.title ? ": " + row.title : ""}`;
  element.appendChild(title);
  if (row.score !== undefined) {
    const score = document.createElement("div");
    score.className = "score";
    score.textContent = `#${row.rank} · ${row.item} · ${Number(row.score).toFixed(3)}`;
    element.appendChild(score);
  }
  if (onClick) element.addEventListener("click", () => onClick(row, element));
  return element;
}

function fill(containerId, rows, onClick) {
  const container = $(containerId);
  container.replaceChildren(...rows.map((row) => card(row, onClick)));
}

async function showUser(user) {
  const k = Math.max(1, Math.min(100, parseInt($("k-input").value, 10) || 12));
  showMessage("");
  currentUser = user;
  $("similar-section").hidden = true;
  try {
    const recs = await getJson(`/recommend?user=${encodeURIComponent(user)}&k=${k}`);
    $("arm").textContent = recs.arm;
    $("model").textContent = recs.model;
    $("source").textContent = recs.source;
    $("rec-meta").textContent = `for ${recs.user}`;
    fill("recommendations", recs.items, showSimilar);
    $("recommendations-section").hidden = false;
    logFeedback(recs.items.map((row) => ({ user, item: row.item, event: "impression" })));
  } catch (error) {
    showMessage(error.message);
    $("recommendations-section").hidden = true;
  }
  try {
    const history = await getJson(`/history?user=${encodeURIComponent(user)}&limit=24`);
    $("history-meta").textContent = `${history.count} training items` +
      (history.count > history.items.length ? `, first ${history.items.length} shown` : "");
    fill("history", history.items, showSimilar);
    $("history-section").hidden = false;
  } catch (error) {
    $("history-section").hidden = true;  // an unknown user has no history
  }
}

async function showSimilar(row, element) {
  document.querySelectorAll(".card.selected").forEach((c) => c.classList.remove("selected"));
  element.classList.add("selected");
  if (currentUser && element.closest("#recommendations")) {
    logFeedback([{ user: currentUser, item: row.item, event: "click" }]);
  }
  try {
    const userPart = currentUser ? `&user=${encodeURIComponent(currentUser)}` : "";
    const similar = await getJson(`/similar?item=${encodeURIComponent(row.item)}&k=12${userPart}`);
    $("similar-to").textContent = row.title || row.item;
    fill("similar", similar.items, showSimilar);
    $("similar-section").hidden = false;
    $("similar-section").scrollIntoView({ behavior: "smooth", block: "nearest" });
  } catch (error) {
    showMessage(error.message);
  }
}

async function loadUsers() {
  try {
    const { users } = await getJson("/users?limit=1000");
    $("user-list").replaceChildren(...users.map((u) => {
      const option = document.createElement("option");
      option.value = u;
      return option;
    }));
    return users;
  } catch (error) {
    showMessage(error.message);
    return [];
  }
}

async function init() {
  const [health, users] = await Promise.all([getJson("/health").catch(() => null), loadUsers()]);
  // impressions and clicks are logged only when the service was started with --page-feedback (opt-in)
  $("log-feedback").checked = Boolean(health && health.page_feedback);
  if (health) {
    const arms = Object.entries(health.arms).map(([name, arm]) => `${name}: ${arm.model}`).join(", ");
    $("service-info").textContent = `${arms} · ${health.items} items`;
  }
  $("user-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const user = $("user-input").value.trim();
    if (user) showUser(user);
  });
  $("random-button").addEventListener("click", () => {
    if (users.length === 0) return;
    const user = users[Math.floor(Math.random() * users.length)];
    $("user-input").value = user;
    showUser(user);
  });
  const fromUrl = new URLSearchParams(window.location.search).get("user");
  if (fromUrl) {
    $("user-input").value = fromUrl;
    showUser(fromUrl);
  }
}

init();
