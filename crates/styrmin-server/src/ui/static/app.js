// Live pages without a reload: the server sends an event over Server-Sent Events whenever
// something a page shows may have changed; the page fetches itself again and swaps its
// <main>. Forms with data-confirm ask first.
(function () {
  "use strict";
  document.addEventListener("submit", function (event) {
    var question = event.target.getAttribute("data-confirm");
    if (question && !window.confirm(question)) event.preventDefault();
  });
  if (!document.body.hasAttribute("data-live") || !window.EventSource) return;
  var pending = null;
  function refresh() {
    pending = null;
    fetch(window.location.href, { credentials: "same-origin", headers: { "X-Styrmin-Refresh": "1" } })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (!html) return;
        var next = new DOMParser().parseFromString(html, "text/html").getElementById("main");
        var main = document.getElementById("main");
        if (next && main && next.innerHTML !== main.innerHTML) main.innerHTML = next.innerHTML;
      })
      .catch(function () {});
  }
  var source = new EventSource("/events");
  source.addEventListener("change", function () {
    if (!pending) pending = setTimeout(refresh, 150);
  });
})();
