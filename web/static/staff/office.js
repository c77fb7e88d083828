// The office's pages: the weekly review, the seal and signing settings, agreement templates, accounts and offices.
import { $, api, config, csrf, report, t } from "./api.js";

$("build-review")?.addEventListener("click", async () => {
  try {
    const review = await api("POST", "/api/reviews", { week_of: new Date().toLocaleDateString("sv-SE", { timeZone: config.timezone }) });
    window.location.href = `/reviews/${review.id}`;
  } catch (error) { report($("form-status"), error); }
});

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
