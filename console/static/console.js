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
