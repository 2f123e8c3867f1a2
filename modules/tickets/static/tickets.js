// Tickets: drag and drop for attachments, guided questions by category, FAQ suggestions while
// typing the title, older comments loaded in place. Every page works without this file.
(function () {
  "use strict";

  // Drag and drop: files dropped on a zone go into its file input; on the ticket page the form
  // is submitted at once.
  document.querySelectorAll("[data-dropzone]").forEach(function (zone) {
    const input = zone.querySelector("input[type=file]");
    if (!input) { return; }
    ["dragenter", "dragover"].forEach(function (name) {
      zone.addEventListener(name, function (event) {
        event.preventDefault();
        zone.classList.add("is-dragover");
      });
    });
    ["dragleave", "drop"].forEach(function (name) {
      zone.addEventListener(name, function () { zone.classList.remove("is-dragover"); });
    });
    zone.addEventListener("drop", function (event) {
      event.preventDefault();
      if (!event.dataTransfer || !event.dataTransfer.files.length) { return; }
      input.files = event.dataTransfer.files;
      if (zone.tagName === "FORM") { zone.requestSubmit(); }
    });
  });

  // Guided questions: show those of the chosen category (and those for every category).
  const category = document.getElementById("category");
  function syncQuestions() {
    document.querySelectorAll("[data-question-category]").forEach(function (box) {
      const wanted = box.dataset.questionCategory;
      box.classList.toggle("is-hidden", wanted !== "" && wanted !== category.value);
    });
  }
  if (category) {
    category.addEventListener("change", syncQuestions);
    syncQuestions();
  }

  // FAQ suggestions for the title (only when the FAQ module offers its endpoint).
  const box = document.querySelector("[data-suggest-url]");
  const title = document.getElementById("title");
  const panel = document.getElementById("faq-suggestions");
  if (box && title && panel) {
    const list = panel.querySelector("ul");
    let timer = null;
    let lastQuery = "";
    title.addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(function () {
        const q = title.value.trim();
        if (q.length < 3 || q === lastQuery) {
          if (q.length < 3) { panel.classList.add("d-none"); }
          return;
        }
        lastQuery = q;
        const url = box.dataset.suggestUrl + (box.dataset.suggestUrl.indexOf("?") < 0 ? "?" : "&") + "q=" + encodeURIComponent(q);
        fetch(url, { headers: { "Accept": "application/json" }, credentials: "same-origin" })
          .then(function (response) { return response.ok ? response.json() : []; })
          .then(function (data) {
            const items = Array.isArray(data) ? data : (data.results || data.articles || data.items || []);
            list.replaceChildren();
            items.slice(0, 5).forEach(function (item) {
              const li = document.createElement("li");
              const a = document.createElement("a");
              a.textContent = item.title || item.question || item.name || "";
              const href = item.url || item.link || "";
              if (href.charAt(0) === "/" && href.charAt(1) !== "/") { a.href = href; }
              a.target = "_blank";
              a.rel = "noopener";
              li.appendChild(a);
              list.appendChild(li);
            });
            panel.classList.toggle("d-none", items.length === 0);
          })
          .catch(function () { panel.classList.add("d-none"); });
      }, 300);
    });
  }

  // Older comments: the link opens the ticket page on the older page; with this script the
  // older comments (a fragment with the next link) are appended under the ones shown instead.
  document.addEventListener("click", function (event) {
    const link = event.target.closest ? event.target.closest("[data-fragment-url]") : null;
    if (!link) { return; }
    event.preventDefault();
    const box = link.closest("[data-older-box]");
    link.classList.add("disabled");
    link.setAttribute("aria-busy", "true");
    fetch(link.dataset.fragmentUrl, { headers: { "Accept": "text/html" }, credentials: "same-origin" })
      .then(function (response) {
        if (!response.ok) { throw new Error(String(response.status)); }
        return response.text();
      })
      .then(function (html) {
        const template = document.createElement("template");
        template.innerHTML = html;  // our own server's escaped HTML, without scripts
        const first = template.content.querySelector("article");
        box.replaceWith(template.content);
        if (first) {  // keyboard and screen reader users continue from the first older comment
          first.setAttribute("tabindex", "-1");
          first.focus();
        }
      })
      .catch(function () { window.location.href = link.href; });
  });
})();
