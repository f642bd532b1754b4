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
            /* Finished: reload to show the run's counts and any new warnings. */
            window.location.reload();
          }
        })
        .catch(function () { window.setTimeout(poll, 5000); });
    }
    window.setTimeout(poll, 800);
  }


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
    dependentFields();
    rulesPreview();
  });
})();
