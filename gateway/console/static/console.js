// The console's only script (no inline script: the Content-Security-Policy forbids it).
// A file picked for an evidence bundle is read into the text area the form sends.
document.addEventListener("change", (event) => {
  const input = event.target;
  const target = input.dataset && document.getElementById(input.dataset.fills || "");
  if (!target || !input.files || !input.files[0]) return;
  input.files[0].text().then((text) => { target.value = text; });
});
