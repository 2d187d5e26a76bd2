// Keeps a run's page current while the run is not final: polls the run's JSON every
// 500 ms and updates the status, times, outputs, error and log in place; stops when final.
// Everything is written with textContent: run data is untrusted and never parsed as HTML.
(function () {
  "use strict";
  var root = document.getElementById("run");
  if (!root || root.dataset.final === "true") return;

  var url = root.dataset.json;
  var logEnd = Number(root.dataset.logEnd || 0);
  var LOG_LIMIT = 200 * 1024;
  var FAST = 500;
  var SLOW = 2000;

  function byId(id) { return document.getElementById(id); }
  function setText(id, text) {
    var el = byId(id);
    if (el.textContent !== text) el.textContent = text;
  }
  function when(iso) { return iso ? iso.slice(0, 19).replace("T", " ") + " UTC" : "—"; }

  function updateLog(log) {
    var pre = byId("log");
    var atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
    if (log.start !== logEnd) pre.textContent = log.text;      // cut or replaced: start over
    else if (log.text) pre.textContent += log.text;
    if (pre.textContent.length > LOG_LIMIT) {                   // keep the last 200 KB
      var text = pre.textContent.slice(-LOG_LIMIT);
      pre.textContent = text.slice(text.indexOf("\n") + 1);
      byId("log-cut").hidden = false;
    }
    if (log.cut) byId("log-cut").hidden = false;
    logEnd = log.end;
    pre.hidden = !pre.textContent;
    byId("log-empty").hidden = !!pre.textContent;
    if (atBottom) pre.scrollTop = pre.scrollHeight;
  }

  function update(run) {
    var badge = byId("status");
    badge.textContent = run.status;
    badge.className = "badge " + run.status;
    setText("attempts", run.attempts + (run.max_attempts > 1 ? " of " + run.max_attempts : ""));
    setText("started", when(run.started_at));
    setText("finished", when(run.finished_at));
    setText("duration", run.duration || "—");
    setText("outputs", run.outputs === null ? "—" : JSON.stringify(run.outputs, null, 2));
    setText("error", run.error || "");
    byId("error-section").hidden = run.error === null;
    updateLog(run.log);
    if (run.finished) {
      root.dataset.final = "true";
      var cancel = byId("cancel");
      if (cancel) cancel.hidden = true;                       // nothing left to cancel
      if (!byId("log").textContent) setText("log-empty", "No output.");
    }
  }

  function poll() {
    fetch(url + "?log_from=" + logEnd, { cache: "no-store", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.json();
      })
      .then(function (run) {
        update(run);
        if (!run.finished) setTimeout(poll, FAST);
      })
      .catch(function () { setTimeout(poll, SLOW); });  // the control plane may be restarting
  }

  var pre = byId("log");
  pre.scrollTop = pre.scrollHeight;  // follow the end of a live log
  setTimeout(poll, FAST);
})();
