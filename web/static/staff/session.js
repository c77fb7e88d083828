// The session page: links, cancel, reschedule, replace an expert, the outcome, the record, identity checks, the application for judicial confirmation, follow-up visits.
import { $, api, config, report, t, withOffset } from "./api.js";

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
