// The profile editor (templates/admin/profiles/editor.html). The form works without this script;
// it adds: a switched-off module's scope and actions greyed out (and not sent), buttons of
// switched-off modules unavailable, and the dashboard buttons' order changed by drag-and-drop or by
// the up/down buttons (keyboard users), announced to screen readers. The order sent is the order
// of the list.
(function () {
  "use strict";

  const form = document.querySelector("[data-profile-editor]");
  if (!form) {
    return;
  }
  const list = form.querySelector("[data-button-list]");
  const status = form.querySelector("[data-move-status]");

  function moduleSwitch(name) {
    return form.querySelector(`[data-module-switch][value="${CSS.escape(name)}"]`);
  }

  function syncButtons() {
    for (const item of form.querySelectorAll("[data-button-module]")) {
      const name = item.dataset.buttonModule;
      const box = item.querySelector("input[name=buttons]");
      const available = !name || Boolean(moduleSwitch(name) && moduleSwitch(name).checked);
      item.classList.toggle("is-unavailable", !available);
      box.disabled = !available;
    }
  }

  function syncModule(toggle, justSwitched) {
    const row = toggle.closest("[data-module]");
    const details = row.querySelector("fieldset");
    row.classList.toggle("is-off", !toggle.checked);
    details.disabled = !toggle.checked;
    if (justSwitched && toggle.checked && !details.querySelector("input[data-action]:checked")) {
      const view = details.querySelector('input[data-action="view"]');
      if (view) {
        view.checked = true; // a module is of no use without "view"
      }
    }
  }

  form.addEventListener("change", (event) => {
    if (event.target.matches("[data-module-switch]")) {
      syncModule(event.target, true);
      syncButtons();
    }
  });

  // --- ordering --------------------------------------------------------------------------
  function labelOf(item) {
    const label = item.querySelector("[data-button-label]");
    return label ? label.textContent.trim() : item.dataset.button;
  }

  function announce(item) {
    const items = Array.from(list.querySelectorAll("[data-button]"));
    const text = (status.dataset.template || "{button}: {position} / {count}")
      .replace("{button}", labelOf(item))
      .replace("{position}", String(items.indexOf(item) + 1))
      .replace("{count}", String(items.length));
    status.textContent = text;
    for (const other of items) {
      other.classList.toggle("is-moved", other === item);
    }
  }

  if (list) {
    list.addEventListener("click", (event) => {
      const button = event.target.closest("[data-move]");
      if (!button) {
        return;
      }
      event.preventDefault();
      const item = button.closest("[data-button]");
      if (button.dataset.move === "up" && item.previousElementSibling) {
        list.insertBefore(item, item.previousElementSibling);
      } else if (button.dataset.move === "down" && item.nextElementSibling) {
        list.insertBefore(item.nextElementSibling, item);
      } else {
        return;
      }
      button.focus(); // moving the row must not lose the keyboard user's place
      announce(item);
    });

    let dragged = null;

    function clearTargets() {
      list.querySelectorAll(".is-drop-target").forEach((el) => el.classList.remove("is-drop-target"));
    }

    list.addEventListener("dragstart", (event) => {
      dragged = event.target.closest("[data-button]");
      if (!dragged) {
        return;
      }
      dragged.classList.add("is-dragging");
      event.dataTransfer.effectAllowed = "move";
      event.dataTransfer.setData("text/plain", dragged.dataset.button);
    });

    list.addEventListener("dragover", (event) => {
      const over = event.target.closest("[data-button]");
      if (!dragged || !over) {
        return;
      }
      event.preventDefault();
      event.dataTransfer.dropEffect = "move";
      clearTargets();
      if (over !== dragged) {
        over.classList.add("is-drop-target");
      }
    });

    list.addEventListener("drop", (event) => {
      const over = event.target.closest("[data-button]");
      if (!dragged || !over) {
        return;
      }
      event.preventDefault();
      clearTargets();
      if (over !== dragged) {
        // Dropped on the lower half of a row: after it; on the upper half: before it.
        const box = over.getBoundingClientRect();
        const after = event.clientY > box.top + box.height / 2;
        list.insertBefore(dragged, after ? over.nextElementSibling : over);
        announce(dragged);
      }
    });

    list.addEventListener("dragend", () => {
      if (dragged) {
        dragged.classList.remove("is-dragging");
      }
      dragged = null;
      clearTargets();
    });
  }

  form.querySelectorAll("[data-module-switch]").forEach((toggle) => syncModule(toggle, false));
  syncButtons();
}());
