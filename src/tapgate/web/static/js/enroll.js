// Polls the enrollment status until the new device has registered, then opens the step that
// prompts for its confirmation code.
"use strict";

(function () {
  var box = document.getElementById("enrollment");
  if (!box) {
    return;
  }
  var statusUrl = box.getAttribute("data-status-url");
  var confirmUrl = box.getAttribute("data-confirm-url");
  var label = document.getElementById("enroll-state");
  var spinner = box.querySelector(".spinner");

  function show(state) {
    var text = label.getAttribute("data-text-" + state);
    if (text) {
      label.textContent = text;
    }
  }

  function check() {
    fetch(statusUrl, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) { return response.json(); })
      .then(function (body) {
        if (body.state === "registered" || body.state === "confirmed") {
          show("registered");
          window.location.assign(confirmUrl);
        } else if (body.state === "waiting") {
          window.setTimeout(check, 1500);
        } else {
          show(body.state === "expired" ? "expired" : "failed");
          if (spinner) {
            spinner.hidden = true;
          }
        }
      })
      .catch(function () { window.setTimeout(check, 4000); });
  }
  window.setTimeout(check, 1000);
})();
