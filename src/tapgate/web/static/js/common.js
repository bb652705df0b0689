// Small behaviours shared by every page: confirmation prompts and copy buttons.
"use strict";

document.addEventListener("submit", function (event) {
  var form = event.target;
  var question = form.getAttribute && form.getAttribute("data-confirm");
  if (question && !window.confirm(question)) {
    event.preventDefault();
  }
});

document.addEventListener("click", function (event) {
  var button = event.target.closest ? event.target.closest("[data-copy]") : null;
  if (!button || !navigator.clipboard) {
    return;
  }
  var source = document.querySelector(button.getAttribute("data-copy"));
  if (!source) {
    return;
  }
  navigator.clipboard.writeText(source.textContent.trim()).then(function () {
    button.textContent = button.getAttribute("data-copied") || button.textContent;
  });
});
