// Live alert queue: refetch the table body every few seconds with the page's own filters, no page reload.
(function () {
  "use strict";
  var body = document.getElementById("queue-rows");
  if (!body) { return; }
  var live = document.getElementById("live");
  var url = body.getAttribute("data-rows-url");
  function refresh() {
    fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (response) {
        if (!response.ok) { throw new Error("HTTP " + response.status); }
        return response.text();
      })
      .then(function (html) {
        if (html !== body.innerHTML) { body.innerHTML = html; }
        if (live) { live.classList.remove("stale"); live.textContent = "live"; }
      })
      .catch(function () {
        if (live) { live.classList.add("stale"); live.textContent = "offline"; }
      });
  }
  window.setInterval(refresh, 2000);
})();

// A training run's or backtest's page: refetch its status block every 2 s; once it has finished, reload the page
// once to show the report.
(function () {
  "use strict";
  var box = document.getElementById("run-status-poll");
  if (!box) { return; }
  var url = box.getAttribute("data-status-url");
  if (box.querySelector("[data-finished]")) { return; }
  var timer = window.setInterval(function () {
    fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (response) {
        if (!response.ok) { throw new Error("HTTP " + response.status); }
        return response.text();
      })
      .then(function (html) {
        box.innerHTML = html;
        if (box.querySelector("[data-finished]")) { window.clearInterval(timer); window.location.reload(); }
      })
      .catch(function () { /* keep polling: the console may be restarting */ });
  }, 2000);
})();
