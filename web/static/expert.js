// Expert portal: the weekly availability grid, date overrides, accepting or declining.

import { api } from "./staff/api.js";

const config = JSON.parse(document.getElementById("page-config").textContent);
const $ = (id) => document.getElementById(id);
const cells = [...document.querySelectorAll("#week button")];
let overrides = config.availability.overrides.map((o) => ({ ...o }));

const toSlot = (hhmm) => { const [h, m] = hhmm.split(":").map(Number); return h * 2 + (m >= 30 ? 1 : 0); };
const toTime = (slot) => `${String(Math.floor(slot / 2)).padStart(2, "0")}:${slot % 2 ? "30" : "00"}`;

for (const window of config.availability.windows) {
  const end = window.end === "00:00" ? 48 : toSlot(window.end);
  for (const cell of cells) {
    const slot = Number(cell.dataset.slot);
    if (Number(cell.dataset.day) === window.weekday && slot >= toSlot(window.start) && slot < end) cell.setAttribute("aria-pressed", "true");
  }
}
for (const cell of cells) {
  cell.addEventListener("click", () => cell.setAttribute("aria-pressed", cell.getAttribute("aria-pressed") === "true" ? "false" : "true"));
}

function windows() {
  const result = [];
  for (let day = 0; day < 7; day += 1) {
    const on = cells.filter((c) => Number(c.dataset.day) === day && c.getAttribute("aria-pressed") === "true")
      .map((c) => Number(c.dataset.slot)).sort((a, b) => a - b);
    let start = null;
    on.forEach((slot, n) => {
      if (start === null) start = slot;
      if (on[n + 1] !== slot + 1) { result.push({ weekday: day, start: toTime(start), end: toTime(slot + 1) }); start = null; }
    });
  }
  return result;
}

function renderOverrides() {
  $("overrides").replaceChildren(...overrides.map((o, n) => {
    const item = document.createElement("li");
    item.textContent = `${o.date} ${o.start ? `${o.start}–${o.end}` : config.strings.day_off} `;
    const remove = document.createElement("button");
    remove.type = "button";
    remove.textContent = "×";
    remove.setAttribute("aria-label", `${o.date} ×`);
    remove.addEventListener("click", () => { overrides.splice(n, 1); renderOverrides(); });
    item.append(remove);
    return item;
  }));
}
renderOverrides();

$("add-override").addEventListener("click", () => {
  const date = $("override-date").value;
  if (!date) return;
  overrides.push($("override-off").checked ? { date, start: null, end: null, note: "" }
    : { date, start: $("override-start").value, end: $("override-end").value, note: "" });
  renderOverrides();
});

$("save-availability").addEventListener("click", async () => {
  try {
    await api("PUT", `/api/experts/${config.expert_id}/availability`, { windows: windows(), overrides });
    $("availability-status").textContent = config.strings.saved;
  } catch (error) {
    $("availability-status").textContent = config.strings.error.replace("{message}", error.message);
  }
});

for (const button of document.querySelectorAll("button.respond")) {
  button.addEventListener("click", async () => {
    await fetch(`/api/join/${button.dataset.token}/${button.dataset.answer}`, { method: "POST" });
    location.reload();
  });
}
