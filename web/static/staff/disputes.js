// The dispute form (register or edit, its parties), reopening a closed dispute.
import { $, api, report, t, withOffset } from "./api.js";

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
