// Staff console: every change goes through the JSON API with the session's CSRF token.

const config = JSON.parse(document.getElementById("page-config")?.textContent || "{}");
const strings = config.strings || {};
const $ = (id) => document.getElementById(id);
const csrf = document.querySelector('meta[name="csrf-token"]').content;

function t(key, values = {}) {
  let text = strings[key] || key;
  for (const [name, value] of Object.entries(values)) text = text.replace(`{${name}}`, value);
  return text;
}

export async function api(method, url, body) {
  const response = await fetch(url, {
    method,
    headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(data.message || data.error || response.statusText);
  return data;
}

// A datetime-local value ("2026-11-30T10:00") in the office's zone, as ISO with offset.
function withOffset(local) {
  return local ? `${local}:00${config.tz_offset}` : null;
}

function report(element, error) {
  element.textContent = t("error", { message: error.message });
  element.classList.add("error");
}

// ---------------------------------------------------------------- dispute form

const disputeForm = $("dispute-form");
if (disputeForm) {
  disputeForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = new FormData(disputeForm);
    const body = {};
    for (const name of ["title", "dispute_type", "risk_level", "place", "nature", "cause", "people_involved", "development"]) {
      body[name] = form.get(name) || "";
    }
    body.scale = Number(form.get("scale") || 1);
    const occurred = withOffset(form.get("occurred_at"));
    if (occurred) body.occurred_at = occurred;
    const id = disputeForm.dataset.id;
    try {
      if (id) {
        await api("PATCH", `/api/disputes/${id}`, body);
        $("form-status").classList.remove("error");
        $("form-status").textContent = t("saved");
      } else {
        body.parties = [...disputeForm.querySelectorAll(".party-row")].map((row) => ({
          side: row.dataset.side,
          name: row.querySelector('[name="party_name"]').value.trim(),
          phone: row.querySelector('[name="party_phone"]').value.trim(),
          language: row.querySelector('[name="party_language"]').value.trim() || "普通话",
        })).filter((party) => party.name);
        const created = await api("POST", "/api/disputes", body);
        location.href = `/disputes/${created.id}?saved=1`;
      }
    } catch (error) {
      report($("form-status"), error);
    }
  });
}

// A closed dispute is registered again before a new mediation is booked for it.
$("reopen")?.addEventListener("click", async () => {
  try {
    await api("POST", `/api/disputes/${$("reopen").dataset.dispute}/status`, { status: "registered" });
    window.location.reload();
  } catch (error) {
    report($("reopen-status"), error);
  }
});

$("add-party")?.addEventListener("click", async () => {
  const row = $("new-party");
  const name = row.querySelector('[name="party_name"]').value.trim();
  if (!name) return;
  try {
    await api("POST", `/api/disputes/${disputeForm.dataset.id}/parties`, {
      name, side: row.querySelector('[name="party_side"]').value,
      phone: row.querySelector('[name="party_phone"]').value.trim(),
    });
    location.reload();
  } catch (error) {
    report($("form-status"), error);
  }
});

// ---------------------------------------------------------------- booking

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

// ---------------------------------------------------------------- session page

for (const button of document.querySelectorAll("button.copy")) {
  button.addEventListener("click", async () => {
    try { await navigator.clipboard.writeText(button.dataset.link); } catch (error) { /* no clipboard: the link is in the page */ }
    button.textContent = t("copied");
  });
}

if (config.session_id) {
  const done = () => location.reload();
  $("cancel-form")?.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      await api("POST", `/api/sessions/${config.session_id}/cancel`, { reason: $("cancel-reason").value });
      done();
    } catch (error) { report($("session-status"), error); }
  });
  $("reschedule-form")?.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      await api("POST", `/api/sessions/${config.session_id}/reschedule`, { start: withOffset($("new-start").value) });
      done();
    } catch (error) { report($("session-status"), error); }
  });
  for (const button of document.querySelectorAll("button.replace")) {
    button.addEventListener("click", async () => {
      const participant_id = Number(button.dataset.participant);
      try {
        const { alternates } = await api("POST", `/api/sessions/${config.session_id}/replace`, { participant_id });
        const box = $("replace-options");
        box.replaceChildren(...alternates.map((expert) => {
          const choice = document.createElement("button");
          choice.type = "button";
          choice.textContent = `${expert.name}（${expert.organisation}）`;
          choice.addEventListener("click", async () => {
            try {
              await api("POST", `/api/sessions/${config.session_id}/replace`, { participant_id, expert_id: expert.id });
              done();
            } catch (error) { report($("session-status"), error); }
          });
          return choice;
        }));
      } catch (error) { report($("session-status"), error); }
    });
  }
}

// ---------------------------------------------------------------- weekly review

$("build-review")?.addEventListener("click", async () => {
  try {
    const review = await api("POST", "/api/reviews", { week_of: new Date().toLocaleDateString("sv-SE", { timeZone: config.timezone }) });
    window.location.href = `/reviews/${review.id}`;
  } catch (error) { report($("form-status"), error); }
});

// ---------------------------------------------------------------- outcome of a session

const outcomeForm = $("outcome-form");
if (outcomeForm) {
  const kind = $("outcome-kind");
  const terms = $("outcome-terms");
  const useTemplate = async () => {
    const draft = await api("GET", `/api/sessions/${config.session_id}/agreement-draft`);
    terms.value = draft.terms;
  };
  const showFields = () => {
    $("terms-box").hidden = kind.value !== "agreement";
    $("referral-box").hidden = !["referred", "no_agreement"].includes(kind.value);
    if (kind.value === "agreement" && !terms.value) useTemplate().catch((error) => report($("outcome-status"), error));
  };
  kind.addEventListener("change", showFields);
  $("use-template").addEventListener("click", () => useTemplate().catch((error) => report($("outcome-status"), error)));
  showFields();
  outcomeForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = { kind: kind.value, summary: $("outcome-summary").value };
    if (kind.value === "agreement") body.terms = terms.value;
    if (!$("referral-box").hidden && $("referral-to").value) {
      body.referral_to = $("referral-to").value;
      body.referral_reason = $("referral-reason").value;
    }
    try {
      await api("POST", `/api/sessions/${config.session_id}/outcome`, body);
      window.location.reload();
    } catch (error) { report($("outcome-status"), error); }
  });
}

// ---------------------------------------------------------------- the record, identity, the application

const recordForm = $("record-form");
if (recordForm) {
  recordForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const saved = await api("PUT", `/api/sessions/${recordForm.dataset.session}/record`,
        { text: $("record-text").value, revision: Number(recordForm.dataset.revision) });
      recordForm.dataset.revision = saved.revision;
      $("record-status").textContent = t("saved");
    } catch (error) { report($("record-status"), error); }
  });
}

for (const form of document.querySelectorAll(".identity-form")) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      await api("POST", `/api/sessions/${form.dataset.session}/participants/${form.dataset.participant}/identity`,
        { document_type: form.elements.document_type.value, number: form.elements.number.value });
      window.location.reload();
    } catch (error) { form.append(error.message); }
  });
}

const prepare = $("prepare-application");
if (prepare) {
  prepare.addEventListener("click", async () => {
    try {
      await api("POST", `/api/sessions/${prepare.dataset.session}/application`);
      window.location.reload();
    } catch (error) { prepare.after(error.message); }
  });
}

// ---------------------------------------------------------------- the office's seal and settings

const sealFile = $("seal-file");
if (sealFile) {
  sealFile.addEventListener("change", async () => {
    const file = sealFile.files[0];
    if (!file) return;
    const response = await fetch("/api/office/seal", { method: "PUT", body: file, headers: { "X-CSRF-Token": csrf } });
    const data = await response.json().catch(() => ({}));
    if (!response.ok) { report($("seal-status"), new Error(data.message || data.error)); return; }
    $("seal-status").textContent = t("saved");
    $("seal-status").classList.remove("error");
    $("seal-preview").src = `/office/seal.png?${Date.now()}`;
    $("seal-preview").hidden = false;
    $("no-seal")?.remove();
  });
  $("office-signing-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      await api("PUT", "/api/office/signing", { court: $("court").value, full_id_numbers: $("full-id-numbers").checked });
      $("office-signing-status").textContent = t("saved");
    } catch (error) { report($("office-signing-status"), error); }
  });
}

// ---------------------------------------------------------------- follow-up visits

for (const button of document.querySelectorAll("button.follow-up")) {
  button.addEventListener("click", async () => {
    const item = button.closest("[data-follow-up]");
    const note = item.querySelector(".follow-up-note").value;
    try {
      await api("POST", `/api/follow-ups/${item.dataset.followUp}`, { result: button.dataset.result, note });
      window.location.reload();
    } catch (error) { report($("session-status"), error); }
  });
}

// ---------------------------------------------------------------- agreement templates

for (const form of document.querySelectorAll("form.template-form")) {
  const status = form.querySelector(".template-status");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      await api("PUT", `/api/agreement-templates/${form.dataset.type}`, { body: form.querySelector("textarea").value });
      window.location.reload();
    } catch (error) { report(status, error); }
  });
  form.querySelector(".reset-template")?.addEventListener("click", async () => {
    try {
      await api("DELETE", `/api/agreement-templates/${form.dataset.type}`);
      window.location.reload();
    } catch (error) { report(status, error); }
  });
}

// ---------------------------------------------------------------- accounts, offices and levels

$("account-form")?.addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = new FormData(event.target);
  const body = Object.fromEntries(["username", "display_name", "password", "role"].map((name) => [name, form.get(name)]));
  body.office_id = Number(form.get("office_id"));
  try {
    await api("POST", "/api/staff", body);
    window.location.reload();
  } catch (error) { report($("account-status"), error); }
});

for (const button of document.querySelectorAll("button.account-active")) {
  button.addEventListener("click", async () => {
    try {
      await api("PATCH", `/api/staff/${button.closest("[data-account]").dataset.account}`, { active: button.dataset.active === "true" });
      window.location.reload();
    } catch (error) { report($("accounts-status"), error); }
  });
}

$("office-form")?.addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = new FormData(event.target);
  const parent = form.get("parent_id");
  try {
    await api("POST", "/api/offices", { name: form.get("name"), kind: form.get("kind"), parent_id: parent ? Number(parent) : null });
    window.location.reload();
  } catch (error) { report($("office-status"), error); }
});
