// Runnel UI: the log viewer (paging by byte range, live following) and
// background refresh of run pages.
// Log text is untrusted: it is only ever inserted with textContent, and
// class names come from the server's fixed set (fg0..bg15, b, f, i, u).
"use strict";
(function () {
  var CLASS = /^(fg|bg)\d{1,2}$|^[bfiu]$/;
  var LINE_PX = 12.5 * 1.4; // font size × line height of pre.log (ui.css)
  var FRAME_LINES = 500; // most live lines rendered in one animation frame
  var LIVE_CHUNK = 100; // lines per chunk of live lines (a batch of SSE events is split into chunks)

  function lineNode(segs) {
    var line = document.createElement("span");
    line.className = "line";
    for (var i = 0; segs && i < segs.length; i++) {
      var s = segs[i], classes = (s.c || "").split(" ").filter(function (c) { return CLASS.test(c); });
      if (classes.length) {
        var node = document.createElement("span");
        node.className = classes.join(" ");
        node.textContent = s.t;
        line.appendChild(node);
      } else {
        line.appendChild(document.createTextNode(s.t));
      }
    }
    return line;
  }

  // chunkNode is one batch of lines, the unit the viewer adds and drops.
  function chunkNode(from, to, lines) {
    var el = document.createElement("span");
    el.className = "chunk";
    el.setAttribute("data-from", String(from));
    el.setAttribute("data-to", String(to));
    for (var i = 0; i < lines.length; i++) { el.appendChild(lineNode(lines[i])); }
    sizeChunk(el, lines.length);
    return el;
  }

  // sizeChunk sets the height a chunk of n lines takes until it is first
  // shown. Chunks out of view are not laid out or painted
  // (content-visibility in ui.css) and, without this, take no height:
  // the page's first chunk is not laid out yet when the viewer scrolls to
  // the end, so the log opened at the top of its last page. Setting a
  // style property from script is allowed by the CSP (only style
  // attributes in markup are not).
  function sizeChunk(el, n) {
    el.style.containIntrinsicSize = "auto " + Math.round(n * LINE_PX) + "px";
  }

  // Viewer shows a window of a log: chunks of lines for the byte range
  // [from, to), at most maxLines lines. Scrolling near the top fetches the
  // page before it, near the bottom the page after it (GET src with
  // before= or from=), dropping chunks at the other end. While the step
  // runs and the window reaches the end, it follows the log over
  // Server-Sent Events (the same endpoint, from=to) and renders whatever
  // arrived once per animation frame, as one chunk, with one layout.
  function Viewer(pre) {
    var v = this;
    v.pre = pre;
    v.src = pre.getAttribute("data-src");
    v.from = +pre.getAttribute("data-from");
    v.to = +pre.getAttribute("data-to");
    v.size = +pre.getAttribute("data-size");
    v.final = pre.getAttribute("data-final") === "true";
    v.pageLines = +pre.getAttribute("data-page-lines") || 1000;
    v.pageBytes = +pre.getAttribute("data-page-bytes") || 262144;
    v.maxLines = +pre.getAttribute("data-max-lines") || 5000;
    v.chunks = [];
    Array.prototype.forEach.call(pre.children, function (el) {
      sizeChunk(el, el.childElementCount);
      v.chunks.push({ el: el, from: +el.getAttribute("data-from"), to: +el.getAttribute("data-to"), n: el.childElementCount });
    });
    v.lines = v.chunks.reduce(function (a, c) { return a + c.n; }, 0);
    v.busy = false;
    v.queue = [];
    v.frame = 0;
    v.es = null;
    v.ended = false;
    v.state = document.getElementById("live-state");
    v.range = document.getElementById("log-range");
    v.stick = true;
    pre.addEventListener("scroll", function () { v.onScroll(); }, { passive: true });
    var earlier = document.getElementById("log-earlier");
    if (earlier) {
      earlier.addEventListener("click", function (ev) { ev.preventDefault(); v.loadBefore(); });
    }
    if (pre.getAttribute("data-follow") === "true") {
      v.follow();
    }
    v.scrollToEnd();
    v.mark();
  }

  Viewer.prototype.scrollToEnd = function () { this.pre.scrollTop = this.pre.scrollHeight; };

  // mark publishes the window for readers and tests.
  Viewer.prototype.mark = function () {
    var pre = this.pre;
    pre.setAttribute("data-from", String(this.from));
    pre.setAttribute("data-to", String(this.to));
    pre.setAttribute("data-lines", String(this.lines));
    if (this.range) { this.range.textContent = "bytes " + this.from + "–" + this.to + " of " + Math.max(this.size, this.to); }
  };

  Viewer.prototype.onScroll = function () {
    var pre = this.pre;
    var top = pre.scrollTop, bottom = pre.scrollHeight - pre.clientHeight - top;
    this.stick = bottom < 30;
    if (top < pre.clientHeight && this.from > 0) { this.loadBefore(); }
    if (bottom < pre.clientHeight && !this.es && !this.atEnd()) { this.loadAfter(); }
  };

  Viewer.prototype.atEnd = function () { return this.final ? this.to >= this.size : this.ended; };

  Viewer.prototype.fetchPage = function (q, done) {
    var v = this;
    v.busy = true;
    fetch(v.src + "&" + q + "&lines=" + v.pageLines + "&limit=" + v.pageBytes, { credentials: "same-origin", cache: "no-store" })
      .then(function (r) {
        if (!r.ok) { throw new Error("log page: HTTP " + r.status); }
        return r.json();
      })
      .then(function (p) {
        v.busy = false;
        v.size = Math.max(v.size, p.size);
        v.final = !!p.final;
        done(p);
        v.mark();
      })
      .catch(function (e) {
        v.busy = false;
        if (v.state) { v.state.textContent = String(e.message || e); }
      });
  };

  // loadBefore prepends the page before the window, keeping the lines in
  // view where they are, and drops chunks at the bottom beyond maxLines
  // (which ends live following: scrolling back down pages forward again).
  Viewer.prototype.loadBefore = function () {
    var v = this;
    if (v.busy || v.from <= 0) { return; }
    v.fetchPage("before=" + v.from, function (p) {
      if (p.to !== v.from || p.lines.length === 0) { return; }
      var el = chunkNode(p.from, p.to, p.lines);
      var h = v.pre.scrollHeight, top = v.pre.scrollTop;
      v.pre.insertBefore(el, v.pre.firstChild);
      v.chunks.unshift({ el: el, from: p.from, to: p.to, n: p.lines.length });
      v.lines += p.lines.length;
      v.from = p.from;
      v.pre.scrollTop = top + v.pre.scrollHeight - h;
      while (v.lines > v.maxLines && v.chunks.length > 1) {
        var last = v.chunks.pop();
        last.el.remove();
        v.lines -= last.n;
        v.to = last.from;
        v.unfollow();
      }
    });
  };

  // loadAfter appends the page after the window and drops chunks at the
  // top; once the rest of a running step's log is less than a page, it
  // follows the log live from there.
  Viewer.prototype.loadAfter = function () {
    var v = this;
    if (v.busy) { return; }
    v.fetchPage("from=" + v.to, function (p) {
      if (p.from !== v.to) { return; }
      if (p.lines.length > 0) {
        v.append([{ el: chunkNode(p.from, p.to, p.lines), from: p.from, to: p.to, n: p.lines.length }], false);
      }
      if (!p.final && p.size - p.to < v.pageBytes) { v.follow(); }
    });
  };

  // append adds chunks at the bottom and trims the top to maxLines.
  // Live lines keep a reader who is at the end there; otherwise the view
  // stays on the lines it shows.
  Viewer.prototype.append = function (chunks, live) {
    var v = this, pre = v.pre, stick = live && v.stick;
    chunks.forEach(function (c) {
      pre.appendChild(c.el);
      v.chunks.push(c);
      v.lines += c.n;
      v.to = c.to;
    });
    var removed = 0;
    while (v.lines > v.maxLines && v.chunks.length > 1) {
      var first = v.chunks.shift();
      if (!stick) { removed += first.el.getBoundingClientRect().height; }
      first.el.remove();
      v.lines -= first.n;
      v.from = v.chunks[0].from;
    }
    if (stick) {
      v.scrollToEnd();
    } else if (removed) {
      pre.scrollTop -= removed;
    }
  };

  Viewer.prototype.follow = function () {
    var v = this;
    if (v.es || !window.EventSource) { return; }
    var es = new EventSource(v.src + "&from=" + v.to);
    v.es = es;
    if (v.state) { v.state.textContent = "following live…"; }
    es.onmessage = function (ev) {
      var b;
      try { b = JSON.parse(ev.data); } catch (e) { return; }
      v.queue.push(b);
      if (!v.frame) { v.frame = requestAnimationFrame(function () { v.render(); }); }
    };
    es.addEventListener("end", function () {
      es.close();
      do { v.render(); } while (v.queue.length && v.es);
      v.es = null;
      v.ended = true;
      v.final = true;
      v.size = v.to;
      if (v.state) {
        v.state.textContent = "finished — reload for the final status";
        v.state.classList.add("ended");
      }
      v.pre.setAttribute("data-ended", "true");
      v.mark();
    });
    es.onerror = function () {
      if (v.state && es.readyState === EventSource.CONNECTING) { v.state.textContent = "reconnecting…"; }
    };
    es.onopen = function () { if (v.state) { v.state.textContent = "following live…"; } };
  };

  Viewer.prototype.unfollow = function () {
    if (!this.es) { return; }
    this.es.close();
    this.es = null;
    this.queue = [];
    if (this.state) { this.state.textContent = "running — scroll to the end to follow"; }
  };

  // render adds the batches that arrived since the last frame, in one
  // go (one layout, one scroll) once per animation frame. Batches that would be trimmed at once are never built: when
  // more than maxLines arrived, only the newest are rendered and the
  // window starts over there. A reader scrolled away from the end is not
  // pulled along: once the window is full, following stops (scrolling
  // back to the end pages forward and follows again).
  Viewer.prototype.render = function () {
    var v = this;
    if (v.frame) { cancelAnimationFrame(v.frame); }
    v.frame = 0;
    var q = v.queue;
    v.queue = [];
    if (!q.length || !v.es) { return; }
    var n = 0;
    q.forEach(function (b) { n += b.lines.length; });
    if (!v.stick && v.lines + n > v.maxLines) {
      v.unfollow();
      return;
    }
    var start = q.length, total = 0;
    while (start > 0 && total + q[start - 1].lines.length <= v.maxLines) {
      start--;
      total += q[start].lines.length;
    }
    if (start === q.length) { start = q.length - 1; }
    if (start > 0) {
      v.chunks.forEach(function (c) { c.el.remove(); });
      v.chunks = [];
      v.lines = 0;
      v.from = q[start].from;
    }
    // One frame renders at most FRAME_LINES lines (whole batches, at
    // least one), so a backlog (a busy machine, a burst) never becomes
    // one long task; the rest waits for the next frame.
    var end = start, count = 0;
    while (end < q.length && (end === start || count + q[end].lines.length <= FRAME_LINES)) {
      count += q[end].lines.length;
      end++;
    }
    if (end < q.length) {
      v.queue = q.slice(end).concat(v.queue);
      v.frame = requestAnimationFrame(function () { v.render(); });
      q = q.slice(0, end);
    }
    // Chunks of at most LIVE_CHUNK lines: trimming whole chunks keeps the
    // page nearly full, and of a large batch only the chunks in view are
    // laid out (content-visibility skips the others).
    var chunks = [], lines = [], from = q[start].from, to = from;
    for (var i = start; i < q.length; i++) {
      if (lines.length && lines.length + q[i].lines.length > LIVE_CHUNK) {
        chunks.push({ el: chunkNode(from, to, lines), from: from, to: to, n: lines.length });
        lines = [];
        from = to;
      }
      Array.prototype.push.apply(lines, q[i].lines);
      to = q[i].to;
    }
    if (lines.length) { chunks.push({ el: chunkNode(from, to, lines), from: from, to: to, n: lines.length }); }
    v.size = Math.max(v.size, to);
    if (chunks.length) {
      v.append(chunks, true);
    }
    v.to = to;
    v.mark();
  };

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
    if (pre) { window.runnelLog = new Viewer(pre); }
    var live = document.getElementById("live");
    if (live) { refresh(live); }
  });
})();
