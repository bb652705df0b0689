// Follows a pending sign-in: an event stream from /login/events, falling back to polling
// /login/status, and moves on to the result page when the transaction is final.
"use strict";

(function () {
  var box = document.getElementById("waiting");
  if (!box) {
    return;
  }
  var doneUrl = box.getAttribute("data-done-url");
  var statusUrl = box.getAttribute("data-status-url");
  var expiresAt = Date.parse(box.getAttribute("data-expires-at"));
  var countdown = document.getElementById("countdown");
  var finished = false;

  // A form on the page (the code form, cancel) navigates by itself. Following the stream as
  // well would send a second request for the result page, which finds the sign-in already
  // consumed by the first and falls back to the sign-in form.
  Array.prototype.forEach.call(document.querySelectorAll("form"), function (form) {
    form.addEventListener("submit", function () { finished = true; });
  });

  function finish() {
    if (!finished) {
      finished = true;
      window.location.assign(doneUrl);
    }
  }

  function poll() {
    if (finished) {
      return;
    }
    fetch(statusUrl, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) { return response.json(); })
      .then(function (body) {
        if (body.final) {
          finish();
        } else {
          window.setTimeout(poll, 2000);
        }
      })
      .catch(function () { window.setTimeout(poll, 4000); });
  }

  function tick() {
    if (!countdown || isNaN(expiresAt)) {
      return;
    }
    var seconds = Math.max(0, Math.round((expiresAt - Date.now()) / 1000));
    countdown.textContent = countdown.getAttribute("data-template").replace("{seconds}", String(seconds));
    if (seconds === 0) {
      // The server expires the request; one more look fetches the final page.
      window.setTimeout(poll, 1500);
      return;
    }
    window.setTimeout(tick, 1000);
  }
  tick();

  if (!window.EventSource) {
    poll();
    return;
  }
  var source = new EventSource(box.getAttribute("data-events-url"));
  source.addEventListener("status", function (event) {
    source.close();
    var data = JSON.parse(event.data);
    if (data.final) {
      finish();
    } else {
      poll();
    }
  });
  source.onerror = function () {
    if (source.readyState === EventSource.CLOSED) {
      poll();
    }
  };
})();
