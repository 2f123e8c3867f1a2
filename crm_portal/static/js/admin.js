// What Flask-Admin's inline event handlers did, attached from here: the Content-Security-Policy
// allows no inline handlers. The admin templates in crm_portal/templates/admin/ carry data-
// attributes instead (data-confirm, data-admin-action, data-inline-add).
(function () {
  "use strict";

  function readJson(id, fallback) {
    const element = document.getElementById(id);
    return element ? JSON.parse(element.textContent) : fallback;
  }

  // Flask-Admin's tabs, dropdown toggles, filter and pager links point at "javascript:void(0)".
  // Following one would run a javascript: URL, which the CSP refuses (and reports as a violation),
  // so it is never followed; the links' own listeners still run.
  document.addEventListener("click", (event) => {
    if (event.target.closest && event.target.closest('a[href^="javascript:"]')) {
      event.preventDefault();
    }
  }, true);

  // A button or link with data-confirm (the row delete) acts only once the user confirms.
  document.addEventListener("click", (event) => {
    const element = event.target.closest("[data-confirm]");
    if (element && !window.confirm(element.dataset.confirm)) {
      event.preventDefault();
      event.stopImmediatePropagation();
    }
  });

  // "With selected": the action's name and the ticked rows go to Flask-Admin's hidden action form.
  function runAction(name) {
    const ticked = Array.from(document.querySelectorAll("input.action-checkbox:checked"));
    if (ticked.length === 0) {
      window.alert(readJson("message-data", ""));
      return;
    }
    const question = readJson("actions-confirmation-data", {})[name];
    if (question && !window.confirm(question)) {
      return;
    }
    const form = document.getElementById("action_form");
    form.querySelector("[name=action]").value = name;
    form.querySelectorAll("input[name=rowid]").forEach((input) => input.remove());
    for (const box of ticked) {
      const input = document.createElement("input");
      input.type = "hidden";
      input.name = "rowid";
      input.value = box.value;
      form.appendChild(input);
    }
    form.submit();
  }

  document.addEventListener("click", (event) => {
    const link = event.target.closest("[data-admin-action]");
    if (link) {
      event.preventDefault();
      runAction(link.dataset.adminAction);
    }
  });

  // The header checkbox ticks every row; ticking rows one by one ticks it when all are.
  document.addEventListener("change", (event) => {
    const box = event.target;
    if (box.matches("input.action-rowtoggle")) {
      document.querySelectorAll("input.action-checkbox").forEach((row) => { row.checked = box.checked; });
    } else if (box.matches("input.action-checkbox")) {
      const rows = Array.from(document.querySelectorAll("input.action-checkbox"));
      const all = rows.every((row) => row.checked);
      document.querySelectorAll("input.action-rowtoggle").forEach((toggle) => { toggle.checked = all; });
    }
  });

  // "Add <inline record>" on forms with inline models (a profile's modules, a quote's lines …).
  document.addEventListener("click", (event) => {
    const button = event.target.closest("[data-inline-add]");
    if (button && window.faForm) {
      event.preventDefault();
      window.faForm.addInlineField(button, button.dataset.inlineAdd);
    }
  });
}());
