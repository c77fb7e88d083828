// The verification page (templates/verify.html): check a PDF file someone was handed.
const input = document.getElementById("verify-file");
const result = document.getElementById("verify-result");
const zh = document.documentElement.lang !== "en";
const SAYS = zh ? {
  intact: "文件未被改动，数字签名有效。", tampered: "文件已被改动：数字签名无效，请勿采信。",
  changed: "签名后文件又被追加了内容，请勿采信。", unsigned: "此文件没有数字签名。", untrusted: "此文件的签名不是本系统的调解组织所签。",
  valid: "这是当前有效的版本。", superseded: "此版本已被新版本取代。", unsealed: "此文件签发后协议内容已修改，已失效。", unknown: "本系统没有签发过这份文件。",
} : {
  intact: "The file is unchanged and its digital signature is valid.", tampered: "The file was changed: its signature is broken. Do not rely on it.",
  changed: "Content was added after signing. Do not rely on it.", unsigned: "This file has no digital signature.", untrusted: "This file was not signed by an office of this system.",
  valid: "This is the current valid version.", superseded: "A newer version superseded this one.", unsealed: "The text changed after it was issued: no longer valid.", unknown: "This system never issued this file.",
};
input.addEventListener("change", async () => {
  const file = input.files[0];
  if (!file) return;
  const response = await fetch("/api/verify", { method: "POST", body: file, headers: { "Content-Type": "application/pdf" } });
  const data = await response.json();
  if (!response.ok) { result.textContent = data.message || data.error; result.dataset.signature = "error"; return; }
  result.dataset.signature = data.signature;
  result.dataset.status = data.found ? data.status : "unknown";
  result.textContent = `${SAYS[data.signature]} ${data.signature === "intact" ? SAYS[data.found ? data.status : "unknown"] : ""}`;
});
