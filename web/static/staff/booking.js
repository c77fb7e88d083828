// Booking a panel: the slot search, its results, and booking one (again after a lost race).
import { $, api, config, report, t, withOffset } from "./api.js";

const searchForm = $("search-form");
if (searchForm) {
  $("add-seat").addEventListener("click", () => {
    const rows = $("seats").querySelector("tbody");
    const copy = rows.lastElementChild.cloneNode(true);
    copy.querySelector('[name="optional"]').checked = true;
    rows.append(copy);
  });
  searchForm.addEventListener("submit", (event) => {
    event.preventDefault();
    $("book-status").textContent = "";
    $("book-status").classList.remove("error");
    search();
  });
}

// The earliest times the panel can meet; after a booking that lost a race, asked again at once.
async function search() {
  const seats = [...document.querySelectorAll("#seats .seat")].map((row) => ({
    role: row.querySelector('[name="role"]').value,
    count: Number(row.querySelector('[name="count"]').value || 1),
    optional: row.querySelector('[name="optional"]').checked,
  }));
  const body = {
    dispute_id: config.dispute_id,
    panel: { seats },
    duration_min: Number($("duration").value || 60),
    window_start: withOffset(`${$("from").value}T00:00`),
    window_end: withOffset(`${$("to").value}T23:59`),
    limit: 8,
  };
  try {
    showSlots(await api("POST", "/api/scheduling/search", body), seats, body.duration_min);
  } catch (error) {
    report($("book-status"), error);
  }
}

function localText(iso) {
  return new Date(iso).toLocaleString("zh-CN", { timeZone: config.tz, dateStyle: "medium", timeStyle: "short" });
}

function showSlots(slots) {
  const list = $("slots");
  list.replaceChildren();
  if (!slots.length) { $("book-status").textContent = t("none"); return; }
  for (const slot of slots) {
    const item = document.createElement("li");
    item.className = "card slot";
    const when = document.createElement("strong");
    when.textContent = localText(slot.start);
    const people = document.createElement("ul");
    for (const seat of slot.seats) {
      const line = document.createElement("li");
      const who = seat.expert ? seat.expert.name : "—";
      const alternates = seat.alternates.map((a) => a.name).join("、");
      line.textContent = `${config.labels[seat.role] || seat.role}：${who}${alternates ? `（${t("alternates")}：${alternates}）` : ""}`;
      people.append(line);
    }
    const button = document.createElement("button");
    button.type = "button";
    button.className = "primary";
    button.textContent = t("choose");
    button.addEventListener("click", () => book(slot));
    item.append(when, people, button);
    list.append(item);
  }
}

async function book(slot) {
  const experts = slot.seats.filter((seat) => seat.expert).map((seat) => ({ expert_id: seat.expert.id, seat: seat.seat }));
  try {
    const session = await api("POST", "/api/sessions", {
      dispute_id: config.dispute_id, start: slot.start, end: slot.end, experts, panel: slot.panel,
    });
    location.href = `/sessions/${session.id}`;
  } catch (error) {
    // Someone else booked one of these experts meanwhile: say so, and offer the times left.
    report($("book-status"), error);
    await search();
  }
}
