// A party confirms the agreement from their own link (templates/agreement.html).
const form = document.getElementById("confirm-form");
form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const response = await fetch(`/api/join/${form.dataset.token}/agreement`, {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ typed_name: document.getElementById("typed-name").value, agree: document.getElementById("agree").checked }),
  });
  const data = await response.json();
  if (response.ok) location.reload();
  else document.getElementById("confirm-status").textContent = data.error;
});
