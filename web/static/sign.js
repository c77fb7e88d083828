// The documents to sign (templates/sign.html): read to the end, ask for the code (parties),
// draw the signature with a finger or a mouse (pointer events, pressure ignored), send it.
const t = (key) => document.documentElement.lang === "en" ? EN[key] : ZH[key];
const ZH = {
  tooSmall: "签名太小或为空，请在框内用手指写下您的姓名",
  sent: "验证码已发送至 ", again: " 秒后可重新获取", failed: "操作失败：",
};
const EN = {
  tooSmall: "The signature is empty or too small: write your name across the box",
  sent: "The code was sent to ", again: " s until you can ask again", failed: "Failed: ",
};
const MIN_LENGTH = 120; // pixels of pen travel on the pad: less is a dot or a tick, not a name

async function api(url, body) {
  const response = await fetch(url, {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body || {}),
  });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(data.message || data.error || response.statusText);
  return data;
}

function pad(canvas) {
  const pen = canvas.getContext("2d");
  let last = null, travelled = 0;
  const at = (event) => {
    const box = canvas.getBoundingClientRect();
    return [(event.clientX - box.left) * canvas.width / box.width, (event.clientY - box.top) * canvas.height / box.height];
  };
  pen.lineWidth = 5; pen.lineCap = "round"; pen.lineJoin = "round"; pen.strokeStyle = "#14143c";
  canvas.addEventListener("pointerdown", (event) => {
    canvas.setPointerCapture(event.pointerId);
    last = at(event);
    event.preventDefault();
  });
  canvas.addEventListener("pointermove", (event) => {
    if (!last) return;
    const next = at(event);
    pen.beginPath(); pen.moveTo(...last); pen.lineTo(...next); pen.stroke();
    travelled += Math.hypot(next[0] - last[0], next[1] - last[1]);
    canvas.dataset.travelled = Math.round(travelled);  // what the page has seen drawn (the tests read it)
    last = next;
    event.preventDefault();
  });
  const up = () => { last = null; };
  canvas.addEventListener("pointerup", up);
  canvas.addEventListener("pointercancel", up);
  return {
    clear() { pen.clearRect(0, 0, canvas.width, canvas.height); travelled = 0; canvas.dataset.travelled = 0; },
    enough: () => travelled >= MIN_LENGTH,
    image: () => canvas.toDataURL("image/png"),
  };
}

for (const section of document.querySelectorAll(".sign-document")) {
  const { kind, token, sha } = section.dataset;
  const base = `/api/join/${token}/documents/${kind}`;
  const form = section.querySelector("[data-form]");
  const error = section.querySelector("[data-error]");
  const fail = (e) => { if (error) error.textContent = t("failed") + e.message; };
  const seal = section.querySelector("[data-seal]");
  if (seal) seal.addEventListener("click", () => api(`${base}/seal`).then(() => location.reload(), (e) => { seal.after(e.message); }));
  if (!form) continue;
  // The form appears once the reader reached the end of the text.
  const end = section.querySelector("[data-end]");
  new IntersectionObserver((seen, observer) => {
    if (!seen.some((entry) => entry.isIntersecting)) return;
    form.hidden = false;
    section.querySelector("[data-read-first]")?.remove();
    observer.disconnect();
  }).observe(end);
  const send = section.querySelector("[data-send-code]");
  if (send) send.addEventListener("click", async () => {
    try {
      const sent = await api(`${base}/code`);
      section.querySelector("[data-code-status]").textContent = t("sent") + sent.sent_to;
      send.disabled = true;
      setTimeout(() => { send.disabled = false; }, sent.again_after_s * 1000);
    } catch (e) { fail(e); }
  });
  const canvas = section.querySelector("[data-pad]");
  if (!canvas) continue;
  const drawing = pad(canvas);
  canvas.addEventListener("pointerdown", () => { error.textContent = ""; });  // a new try: the last refusal goes
  section.querySelector("[data-clear]").addEventListener("click", () => drawing.clear());
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!drawing.enough()) { error.textContent = t("tooSmall"); return; }
    const code = section.querySelector("[data-code]");
    try {
      await api(`${base}/sign`, { text_sha256: sha, signature: drawing.image(), code: code ? code.value : "" });
      location.reload();
    } catch (e) { fail(e); }
  });
}
