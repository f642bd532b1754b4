/* rolsync panel: small enhancements. Every page works without this file. */
(function () {
  "use strict";

  /* Dates arrive as UTC <time datetime="…">; show them in the reader's own time zone. */
  function localTimes(root) {
    var fmt;
    try {
      fmt = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
    } catch (e) {
      return;
    }
    root.querySelectorAll("time[datetime]").forEach(function (el) {
      var when = new Date(el.getAttribute("datetime"));
      if (!isNaN(when.getTime())) {
        el.title = el.textContent;
        el.textContent = fmt.format(when);
      }
    });
  }

  /* Provider presets fill the IMAP server, port and security. */
  function presets() {
    var select = document.querySelector("select[data-presets]");
    if (!select) { return; }
    var form = select.form;
    var hint = document.querySelector("[data-preset-hint]");
    var defaultHint = hint ? hint.textContent : "";
    select.addEventListener("change", function () {
      var option = select.options[select.selectedIndex];
      var host = option.getAttribute("data-host");
      if (host) {
        form.elements.host.value = host;
        form.elements.port.value = option.getAttribute("data-port");
        form.elements.security.value = option.getAttribute("data-security");
      }
      if (hint) { hint.textContent = option.getAttribute("data-hint") || defaultHint; }
    });
    /* Typing another server makes the choice "Other". */
    form.elements.host.addEventListener("input", function () {
      var option = select.options[select.selectedIndex];
      if (option.getAttribute("data-host") && option.getAttribute("data-host") !== form.elements.host.value.trim()) {
        select.value = "custom";
        if (hint) { hint.textContent = defaultHint; }
      }
    });
    /* Security and port go together unless the user says otherwise. */
    form.elements.security.addEventListener("change", function () {
      var port = form.elements.port;
      if (form.elements.security.value === "ssl" && port.value === "143") { port.value = "993"; }
      if (form.elements.security.value === "starttls" && port.value === "993") { port.value = "143"; }
    });
  }

  /* An uploaded CA file shows in the text box, so the user sees what will be saved. */
  function caUpload() {
    var file = document.querySelector("input[type=file][name=ca_file]");
    var text = document.querySelector("textarea[name=ca_pem]");
    if (!file || !text || !window.FileReader) { return; }
    file.addEventListener("change", function () {
      if (!file.files.length || file.files[0].size > 65536) { return; }
      var reader = new FileReader();
      reader.onload = function () { text.value = reader.result; };
      reader.readAsText(file.files[0]);
    });
  }

  /* While an import is queued or running, poll its state and move the progress bar. */
  function importProgress() {
    var box = document.querySelector("[data-import-status]");
    if (!box) { return; }
    var url = box.getAttribute("data-import-status");
    var label = box.querySelector("[data-state-label]");
    var text = box.querySelector("[data-progress-text]");
    var bar = box.querySelector("[data-progress]");
    var dot = box.querySelector(".dot");
    var wasActive = box.getAttribute("data-active") === "true";
    if (!wasActive) { return; }

    function show(state) {
      label.textContent = state.label;
      dot.className = "dot dot-" + state.state;
      if (state.state === "running" && state.total) {
        bar.max = state.total;
        bar.value = state.done || 0;
        bar.textContent = (state.done || 0) + " of " + state.total;
        text.textContent = (state.done || 0) + " of " + state.total + " messages";
      } else {
        bar.removeAttribute("value");
        text.textContent = "";
      }
      bar.hidden = !state.active;
    }

    function poll() {
      fetch(url, { headers: { "Accept": "application/json" }, credentials: "same-origin" })
        .then(function (response) {
          if (!response.ok) { throw new Error(response.status); }
          return response.json();
        })
        .then(function (state) {
          show(state);
          if (state.active) {
            window.setTimeout(poll, 1000);
          } else {
            /* Finished: show the run's counts and any new warnings in place. A reload
               would throw away whatever the person is typing in the settings form. */
            refreshImportCard();
          }
        })
        .catch(function () { window.setTimeout(poll, 5000); });
    }
    window.setTimeout(poll, 800);
  }

  /* Replace the Import card and the warnings count with the server's fresh copy; nothing else moves. */
  function refreshImportCard() {
    var card = document.getElementById("import");
    if (!card || !window.DOMParser) { return; }
    fetch(window.location.pathname, { headers: { "Accept": "text/html" }, credentials: "same-origin" })
      .then(function (response) {
        if (!response.ok) { throw new Error(response.status); }
        return response.text();
      })
      .then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html");
        var freshCard = fresh.getElementById("import");
        if (freshCard) {
          card.innerHTML = freshCard.innerHTML;
          localTimes(card);
          busyForms(card);
          card.setAttribute("data-refreshed", "true");
        }
        var badge = document.querySelector("[data-open-warnings]");
        var freshBadge = fresh.querySelector("[data-open-warnings]");
        if (badge && freshBadge) {
          badge.textContent = freshBadge.textContent;
          badge.className = freshBadge.className;
        }
      })
      .catch(function () { /* the card keeps its last state; the next page view shows the result */ });
  }

  /* A form that was sent shows that it is working and cannot be sent twice. */
  function busyForms(root) {
    root.querySelectorAll("form").forEach(function (form) {
      if ((form.getAttribute("method") || "get").toLowerCase() !== "post" || form.hasAttribute("data-busy-ready")) {
        return;
      }
      form.setAttribute("data-busy-ready", "");
      form.addEventListener("submit", function (event) {
        if (form.hasAttribute("data-submitting")) {
          event.preventDefault();
          return;
        }
        form.setAttribute("data-submitting", "");
        form.setAttribute("aria-busy", "true");
        var submitter = event.submitter;
        /* After this turn: a button disabled now would drop its own name and value from what is sent. */
        window.setTimeout(function () {
          form.querySelectorAll("button[type=submit], input[type=submit], button:not([type])").forEach(function (button) {
            if (!button.disabled) {
              button.setAttribute("data-was-enabled", "");
              button.disabled = true;
            }
          });
          var button = submitter || form.querySelector("[data-busy-label]");
          var label = button && button.getAttribute("data-busy-label");
          if (button && label) {
            button.setAttribute("data-idle-label", button.tagName === "INPUT" ? button.value : button.textContent);
            if (button.tagName === "INPUT") { button.value = label; } else { button.textContent = label; }
          }
          form.querySelectorAll("[data-busy-note]").forEach(function (note) { note.hidden = false; });
        }, 0);
      });
    });
  }

  /* Coming back with the Back button: the page may come from the cache with its buttons still busy. */
  window.addEventListener("pageshow", function (event) {
    if (!event.persisted) { return; }
    document.querySelectorAll("form[data-submitting]").forEach(function (form) {
      form.removeAttribute("data-submitting");
      form.removeAttribute("aria-busy");
      form.querySelectorAll("[data-was-enabled]").forEach(function (b) {
        b.disabled = false;
        b.removeAttribute("data-was-enabled");
      });
      form.querySelectorAll("[data-idle-label]").forEach(function (b) {
        if (b.tagName === "INPUT") { b.value = b.getAttribute("data-idle-label"); } else { b.textContent = b.getAttribute("data-idle-label"); }
        b.removeAttribute("data-idle-label");
      });
      form.querySelectorAll("[data-busy-note]").forEach(function (note) { note.hidden = true; });
    });
  });


  /* Rule editor: a header name only for "a header", a record only for "put the note on this record". */
  function dependentFields() {
    document.querySelectorAll("[data-show-if]").forEach(function (box) {
      var rule = box.getAttribute("data-show-if").split("=");
      var select = document.getElementById(rule[0]);
      if (!select) { return; }
      function update() {
        var show = select.value === rule[1];
        box.hidden = !show;
      }
      select.addEventListener("change", update);
      update();
    });
  }

  /* A mailbox preview runs on a worker: poll it, then show the table the server rendered. */
  function rulesPreview() {
    var box = document.querySelector("[data-preview-status]");
    if (!box || box.getAttribute("data-active") !== "true") { return; }
    var url = box.getAttribute("data-preview-status");

    function poll() {
      fetch(url, { headers: { "Accept": "application/json" }, credentials: "same-origin" })
        .then(function (response) {
          if (!response.ok) { throw new Error(response.status); }
          return response.json();
        })
        .then(function (state) {
          box.innerHTML = state.html;  /* escaped by the server's templates */
          if (state.active) {
            window.setTimeout(poll, 1000);
          } else {
            box.setAttribute("data-active", "false");
            localTimes(box);
          }
        })
        .catch(function () { window.setTimeout(poll, 5000); });
    }
    window.setTimeout(poll, 800);
  }

  document.addEventListener("DOMContentLoaded", function () {
    localTimes(document);
    presets();
    caUpload();
    importProgress();
    busyForms(document);
    dependentFields();
    rulesPreview();
  });
})();
