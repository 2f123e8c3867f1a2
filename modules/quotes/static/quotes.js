// Printable quote: the Print button opens the browser's print dialog.
document.addEventListener("click", function (event) {
  var button = event.target.closest("[data-print]");
  if (button) { window.print(); }
});
