// Small behaviours that would otherwise need inline handlers (the CSP forbids those).
(function () {
  "use strict";

  // <select data-autosubmit> submits its form on change (htmx forms via htmx).
  document.addEventListener("change", function (event) {
    var el = event.target;
    if (!(el instanceof HTMLSelectElement) || !el.hasAttribute("data-autosubmit")) return;
    var form = el.form;
    if (!form) return;
    if (form.hasAttribute("hx-post") && window.htmx) {
      window.htmx.trigger(form, "submit");
    } else {
      form.requestSubmit();
    }
  });

  // <button data-copy="#selector"> copies that input's value to the clipboard.
  document.addEventListener("click", function (event) {
    var button = event.target instanceof Element ? event.target.closest("[data-copy]") : null;
    if (!button) return;
    var source = document.querySelector(button.getAttribute("data-copy"));
    if (!source) return;
    var text = "value" in source ? source.value : source.textContent;
    var done = function () {
      button.textContent = "Copied";
      button.setAttribute("data-copied", "true");
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, function () { source.select(); document.execCommand("copy"); done(); });
    } else {
      source.select();
      document.execCommand("copy");
      done();
    }
  });

  // An htmx request that failed (403, 404, 500, network) says so instead of doing nothing.
  var failureText = {
    403: "You do not have permission to do that.",
    404: "That no longer exists. Reload the page.",
    413: "That is too large.",
    429: "Too many requests. Wait a moment and try again.",
  };
  function showError(text) {
    var box = document.getElementById("messages");
    if (!box) return;
    var alert = document.createElement("div");
    alert.className = "alert error";
    alert.setAttribute("role", "alert");
    alert.textContent = text;
    box.appendChild(alert);
  }
  document.addEventListener("htmx:responseError", function (event) {
    var status = event.detail.xhr.status;
    showError(failureText[status] || "Something went wrong (" + status + "). Try again.");
  });
  document.addEventListener("htmx:sendError", function () {
    showError("The server cannot be reached. Check your connection and try again.");
  });

  // Close the user menu when clicking elsewhere.
  document.addEventListener("click", function (event) {
    document.querySelectorAll("details.menu[open]").forEach(function (menu) {
      if (!menu.contains(event.target)) menu.removeAttribute("open");
    });
  });
})();
