// Evidence files of a dispute: list them, open them, upload one; staff share them with the parties.

const box = document.getElementById("evidence");
const strings = JSON.parse(document.getElementById("evidence-strings").textContent);
const csrf = document.querySelector('meta[name="csrf-token"]')?.content || "";
const headers = box.dataset.staff ? { "X-CSRF-Token": csrf } : {};
const status = document.getElementById("evidence-status");

function size(bytes) {
  return bytes < 1024 * 1024 ? `${Math.ceil(bytes / 1024)} KB` : `${(bytes / 1048576).toFixed(1)} MB`;
}

async function request(method, url, body, contentType) {
  const response = await fetch(url, {
    method, body, headers: contentType ? { ...headers, "Content-Type": contentType } : headers,
  });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(data.message || data.error || response.statusText);
  return data;
}

async function refresh() {
  const list = document.getElementById("evidence-list");
  const items = await request("GET", box.dataset.list);
  list.replaceChildren(...items.map((item) => {
    const row = document.createElement("li");
    const link = document.createElement("a");
    link.href = box.dataset.file.replace("{id}", item.id);
    link.target = "_blank";
    link.rel = "noopener";
    link.textContent = item.filename;
    row.append(link, ` · ${size(item.size_bytes)}`);
    if (item.description) row.append(` · ${item.description}`);
    if (item.from_staff) row.append(` · ${strings.from_staff}`);
    if (item.shared) row.append(` · ${strings.shared}`);
    if (box.dataset.staff) {
      const toggle = document.createElement("button");
      toggle.type = "button";
      toggle.textContent = item.shared ? strings.unshare : strings.share;
      toggle.addEventListener("click", async () => {
        await request("POST", `/api/evidence/${item.id}/share`, JSON.stringify({ shared: !item.shared }), "application/json");
        await refresh();
      });
      row.append(" ", toggle);
    }
    return row;
  }));
  if (!items.length) list.textContent = strings.empty;
}

document.getElementById("evidence-form")?.addEventListener("submit", async (event) => {
  event.preventDefault();
  const file = document.getElementById("evidence-file").files[0];
  if (!file) return;
  const query = new URLSearchParams({ name: file.name, description: document.getElementById("evidence-description").value });
  status.classList.remove("error");
  try {
    await request("POST", `${box.dataset.upload}?${query}`, file, "application/octet-stream");
    status.textContent = strings.uploaded;
    event.target.reset();
    await refresh();
  } catch (error) {
    status.textContent = strings.error.replace("{message}", error.message);
    status.classList.add("error");
  }
});

refresh().catch((error) => { status.textContent = error.message; });
