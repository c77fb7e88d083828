// Links that print the page (data-print): a script of its own, as the pages run no inline script
// (the Content-Security-Policy, server/headers.py).
for (const link of document.querySelectorAll("[data-print]")) {
  link.addEventListener("click", (event) => {
    event.preventDefault();
    window.print();
  });
}
