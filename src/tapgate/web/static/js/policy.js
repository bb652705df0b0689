// The policy form: checks every value as it is typed (one JSON request per pause) and offers
// values found in the chosen auth profile.
"use strict";

(function () {
  var form = document.getElementById("policy-form");
  if (!form) {
    return;
  }
  var values = document.getElementById("field-values");
  var attribute = document.getElementById("field-attribute");
  var authProfile = document.getElementById("field-auth_profile");
  var checks = document.getElementById("value-checks");
  var suggestInput = document.getElementById("suggest-input");
  var suggestions = document.getElementById("suggestions");
  var addButton = document.getElementById("suggest-add");
  var checkTimer = null;
  var suggestTimer = null;

  function kindText(kind) {
    return checks.getAttribute("data-text-" + kind) || kind;
  }

  function renderChecks(results) {
    checks.textContent = "";
    var invalid = false;
    results.forEach(function (result) {
      var item = document.createElement("li");
      var code = document.createElement("code");
      code.textContent = result.value;
      item.appendChild(code);
      var note = document.createElement("span");
      if (result.valid) {
        note.className = "ok";
        note.textContent = " ✓ " + kindText(result.kind);
      } else {
        invalid = true;
        note.className = "bad";
        note.textContent = " ✕ " + result.message;
      }
      item.appendChild(note);
      checks.appendChild(item);
    });
    values.setAttribute("aria-invalid", invalid ? "true" : "false");
  }

  function checkValues() {
    var lines = values.value.split("\n").map(function (line) { return line.trim(); })
      .filter(function (line) { return line.length > 0; });
    if (lines.length === 0) {
      checks.textContent = "";
      return;
    }
    var query = new URLSearchParams();
    query.append("attribute", attribute.value);
    lines.slice(0, 50).forEach(function (line) { query.append("value", line); });
    fetch(form.getAttribute("data-check-url") + "?" + query.toString(), {
      credentials: "same-origin", headers: { Accept: "application/json" }
    })
      .then(function (response) { return response.json(); })
      .then(function (body) { renderChecks(body.results || []); })
      .catch(function () { checks.textContent = ""; });
  }

  function scheduleCheck() {
    window.clearTimeout(checkTimer);
    checkTimer = window.setTimeout(checkValues, 250);
  }

  function suggest() {
    var query = new URLSearchParams({
      auth_profile: authProfile.value, attribute: attribute.value, prefix: suggestInput.value
    });
    fetch(form.getAttribute("data-suggest-url") + "?" + query.toString(), {
      credentials: "same-origin", headers: { Accept: "application/json" }
    })
      .then(function (response) { return response.json(); })
      .then(function (body) {
        suggestions.textContent = "";
        (body.values || []).forEach(function (value) {
          var option = document.createElement("option");
          option.value = value;
          suggestions.appendChild(option);
        });
      })
      .catch(function () { suggestions.textContent = ""; });
  }

  values.addEventListener("input", scheduleCheck);
  attribute.addEventListener("change", scheduleCheck);
  suggestInput.addEventListener("input", function () {
    window.clearTimeout(suggestTimer);
    suggestTimer = window.setTimeout(suggest, 250);
  });
  suggestInput.addEventListener("focus", suggest);
  addButton.addEventListener("click", function () {
    var value = suggestInput.value.trim();
    if (!value) {
      return;
    }
    values.value = values.value.replace(/\s*$/, "") + (values.value.trim() ? "\n" : "") + value;
    suggestInput.value = "";
    scheduleCheck();
    values.focus();
  });
  checkValues();
})();
