// Keeps a console page's lists current: every 1.5 s, fetches the JSON named by
// <main data-live="...">, whose "html" entries are server-rendered (and escaped) pieces
// of this page, by element id, and whose "text" entries are plain text (a log), by id.
// Without JavaScript the page is complete as served; this only refreshes it.
(function () {
  "use strict";
  var main = document.querySelector("main[data-live]");
  if (!main) return;
  var url = main.dataset.live;
  var EVERY = 1500;
  var last = {};

  function put(id, value, asText) {
    if (last[id] === value) return;                        // unchanged: keep the DOM as is
    last[id] = value;
    var el = document.getElementById(id);
    if (!el) return;
    if (!asText) { el.innerHTML = value; return; }         // rendered by the console itself
    var atBottom = el.scrollTop + el.clientHeight >= el.scrollHeight - 4;
    el.textContent = value;                                  // untrusted: never parsed as HTML
    el.hidden = !value;
    var empty = document.getElementById(id + "-empty");
    if (empty) empty.hidden = !!value;
    if (atBottom) el.scrollTop = el.scrollHeight;
  }

  function poll() {
    if (document.hidden) { setTimeout(poll, EVERY); return; }
    fetch(url, { cache: "no-store", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.json();
      })
      .then(function (data) {
        Object.keys(data.html || {}).forEach(function (id) { put(id, data.html[id], false); });
        Object.keys(data.text || {}).forEach(function (id) { put(id, data.text[id], true); });
      })
      .catch(function () {})                                 // the control plane may be restarting
      .then(function () { setTimeout(poll, EVERY); });
  }

  var log = document.getElementById("log");
  if (log) log.scrollTop = log.scrollHeight;
  setTimeout(poll, EVERY);
})();
