// Runnel UI: follows a running step's log over Server-Sent Events.
// Log text is untrusted: it is only ever inserted with textContent, and
// class names come from the server's fixed set (fg0..bg15, b, f, i, u).
"use strict";
(function () {
  var CLASS = /^(fg|bg)\d{1,2}$|^[bfiu]$/;

  function appendLine(pre, segs) {
    var line = document.createElement("span");
    line.className = "line";
    (segs || []).forEach(function (s) {
      var node;
      var classes = (s.c || "").split(" ").filter(function (c) { return CLASS.test(c); });
      if (classes.length) {
        node = document.createElement("span");
        node.className = classes.join(" ");
        node.textContent = s.t;
      } else {
        node = document.createTextNode(s.t);
      }
      line.appendChild(node);
    });
    pre.appendChild(line);
  }

  function follow(pre) {
    var url = pre.getAttribute("data-events");
    if (!url || !window.EventSource) { return; }
    var state = document.getElementById("live-state");
    var es = new EventSource(url);
    es.onmessage = function (ev) {
      var atBottom = window.innerHeight + window.scrollY >= document.body.scrollHeight - 40;
      var msg;
      try { msg = JSON.parse(ev.data); } catch (e) { return; }
      appendLine(pre, msg.s);
      pre.setAttribute("data-lines", String(pre.childElementCount));
      if (atBottom) { window.scrollTo(0, document.body.scrollHeight); }
    };
    es.addEventListener("end", function () {
      es.close();
      if (state) {
        state.textContent = "finished — reload for the final status";
        state.classList.add("ended");
      }
      pre.setAttribute("data-ended", "true");
    });
    es.onerror = function () {
      if (state && es.readyState === EventSource.CONNECTING) { state.textContent = "reconnecting…"; }
    };
    es.onopen = function () { if (state) { state.textContent = "following live…"; } };
  }

  // refresh reloads the page in the background and swaps in the fresh
  // content of the element with id "live" (parsed, never executed: the
  // page holds no inline script and DOMParser runs none), as long as that
  // element has data-refresh (set while the run is unfinished).
  function refresh(box) {
    var ms = parseInt(box.getAttribute("data-refresh"), 10);
    if (!(ms >= 100)) { return; }
    function tick() {
      var busy = box.contains(document.activeElement) && document.activeElement !== document.body;
      if (document.hidden || busy) { setTimeout(tick, ms); return; }
      fetch(window.location.href, { credentials: "same-origin", cache: "no-store" }).then(function (r) {
        if (r.redirected) { return null; } // logged out: stop
        if (!r.ok) { throw new Error("refresh: HTTP " + r.status); }
        return r.text();
      }).then(function (html) {
        if (html === null) { return; }
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("live");
        if (!fresh) { return; }
        var nodes = Array.prototype.map.call(fresh.childNodes, function (n) { return document.importNode(n, true); });
        box.replaceChildren.apply(box, nodes);
        if (fresh.hasAttribute("data-refresh")) {
          setTimeout(tick, ms);
        } else {
          box.removeAttribute("data-refresh");
        }
      }).catch(function () { setTimeout(tick, ms * 4); });
    }
    setTimeout(tick, ms);
  }

  document.addEventListener("DOMContentLoaded", function () {
    var pre = document.getElementById("log");
    if (pre) { follow(pre); }
    var live = document.getElementById("live");
    if (live) { refresh(live); }
  });
})();
