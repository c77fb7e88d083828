// What every staff page's script shares: its configuration and strings, the JSON API with the
// session's CSRF token, the office's time and how an error is shown.

export const config = JSON.parse(document.getElementById("page-config")?.textContent || "{}");
export const strings = config.strings || {};
export const $ = (id) => document.getElementById(id);
export const csrf = document.querySelector('meta[name="csrf-token"]').content;

export function t(key, values = {}) {
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
export function withOffset(local) {
  return local ? `${local}:00${config.tz_offset}` : null;
}

export function report(element, error) {
  element.textContent = t("error", { message: error.message });
  element.classList.add("error");
}
