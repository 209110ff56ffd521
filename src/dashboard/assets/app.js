// kale dashboard: the page's interaction and its live updates. The server renders
// every page and plot; this script
//  - keeps the open page current while a tune writes to the store: on each change
//    event (server-sent events from /api/events, polling as a fallback) it fetches
//    the same URL again and swaps in the new <main>;
//  - makes the plots interactive: a tooltip over a trial's mark (from its <title>),
//    a click opens the trial, drag zooms, shift-drag pans, the wheel zooms, a
//    double-click resets (each asks the server for the plot again with the ranges);
//  - applies the pickers and the trial filter as they change (they are inputs of the
//    page's `view` form, whose state lives in the page's query string);
//  - keeps the notes token from the address kale printed (#token=...) and saves notes.
(function () {
  "use strict";
  var badge = document.getElementById("live");
  var tip = document.getElementById("tip");
  var pending = false, busy = false;
  var TOKEN_KEY = "kale-notes-token:" + location.host;

  // ---------------------------------------------------------------- helpers
  function all(root, sel) { return Array.prototype.slice.call(root.querySelectorAll(sel)); }

  function duration(s) {
    s = Math.max(0, s);
    if (s < 60) return s.toFixed(1) + "s";
    if (s < 3600) return Math.floor(s / 60) + "m " + ("0" + Math.floor(s % 60)).slice(-2) + "s";
    return Math.floor(s / 3600) + "h " + ("0" + Math.floor((s % 3600) / 60)).slice(-2) + "m";
  }

  function localTimes(root) {
    all(root, "td.time[data-t]").forEach(function (td) {
      var t = parseFloat(td.getAttribute("data-t"));
      if (!isNaN(t)) td.textContent = new Date(t * 1000).toLocaleString();
    });
  }

  function sortable(root) {
    all(root, "table.sortable").forEach(function (table) {
      var heads = table.tHead ? table.tHead.rows[0].cells : [];
      Array.prototype.forEach.call(heads, function (th, col) {
        th.addEventListener("click", function () {
          var asc = !th.classList.contains("asc");
          Array.prototype.forEach.call(heads, function (h) { h.classList.remove("asc", "desc"); });
          th.classList.add(asc ? "asc" : "desc");
          var body = table.tBodies[0];
          var rows = Array.prototype.slice.call(body.rows);
          rows.sort(function (a, b) {
            var x = a.cells[col].textContent.trim(), y = b.cells[col].textContent.trim();
            var nx = parseFloat(x), ny = parseFloat(y);
            var c = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
            return asc ? c : -c;
          });
          rows.forEach(function (r) { body.appendChild(r); });
        });
      });
    });
  }

  // ---------------------------------------------------------------- width
  // Plots are drawn at the page's width: the server reads it from this cookie.
  function plotWidth() {
    var plot = document.querySelector(".plot");
    var main = document.getElementById("main");
    var w = plot ? plot.clientWidth : (main ? main.clientWidth - 40 : 0);
    return Math.max(480, Math.round(w - 2));
  }

  function storeWidth() {
    document.cookie = "kale_w=" + plotWidth() + "; path=/; SameSite=Strict";
  }

  function drawnNarrow() {
    var svg = document.querySelector(".plot svg[data-plot='history'], .plot svg[data-plot='timeline']");
    if (!svg) return false;
    var drawn = parseFloat(svg.getAttribute("width"));
    return Math.abs(drawn - plotWidth()) > 0.08 * plotWidth();
  }

  // ---------------------------------------------------------------- plots
  function expOf(el) {
    var own = el.getAttribute("data-exp");
    if (own) return own;
    var plot = el.closest(".plot");
    return plot ? plot.getAttribute("data-exp") : "";
  }

  // Trial marks keep their text as data-tip (the browser's own tooltip would show it
  // a second time, late).
  function prepare(root) {
    all(root, ".plot [data-trial]").forEach(function (el) {
      var t = el.querySelector(":scope > title");
      if (t) { el.setAttribute("data-tip", t.textContent); t.remove(); }
      if (expOf(el)) el.classList.add("link");
    });
    dim(root);
  }

  function matching() {
    var mc = document.getElementById("match-count");
    if (!mc || mc.getAttribute("data-active") !== "1") return null;
    var set = {};
    (mc.getAttribute("data-matching") || "").split(" ").forEach(function (n) { if (n) set[n] = true; });
    return set;
  }

  // With a filter on, the plots dim the trials it leaves out.
  function dim(root) {
    var set = matching();
    all(root, ".plot [data-trial]").forEach(function (el) {
      var out = set !== null && !set[el.getAttribute("data-trial")];
      el.classList.toggle("dim", out);
    });
  }

  function showTip(el, ev) {
    if (!tip) return;
    tip.textContent = el.getAttribute("data-tip");
    tip.hidden = false;
    tip.setAttribute("data-trial", el.getAttribute("data-trial"));
    var x = ev.clientX + 14, y = ev.clientY + 14;
    var r = tip.getBoundingClientRect();
    if (x + r.width > window.innerWidth - 8) x = ev.clientX - r.width - 14;
    if (y + r.height > window.innerHeight - 8) y = ev.clientY - r.height - 14;
    tip.style.left = x + "px";
    tip.style.top = y + "px";
  }

  document.addEventListener("mouseover", function (ev) {
    var el = ev.target.closest && ev.target.closest(".plot [data-tip]");
    if (el) { el.classList.add("hover"); showTip(el, ev); }
  });
  document.addEventListener("mousemove", function (ev) {
    var el = ev.target.closest && ev.target.closest(".plot [data-tip]");
    if (el && tip && !tip.hidden) showTip(el, ev);
  });
  document.addEventListener("mouseout", function (ev) {
    var el = ev.target.closest && ev.target.closest(".plot [data-tip]");
    if (el) { el.classList.remove("hover"); if (tip) tip.hidden = true; }
  });
  document.addEventListener("click", function (ev) {
    if (drag && drag.moved) return;
    var el = ev.target.closest && ev.target.closest(".plot [data-trial]");
    if (!el) return;
    var exp = expOf(el);
    if (exp) location.href = "/e/" + encodeURIComponent(exp) + "/t/" + el.getAttribute("data-trial");
  });

  // The query a plot is drawn with: the page's own, plus the width.
  function plotUrl(plot) {
    var q = new URLSearchParams(location.search);
    q.set("w", plotWidth());
    return plot.getAttribute("data-src") + "?" + q.toString();
  }

  function redraw(plot) {
    var kind = plot.getAttribute("data-kind");
    return fetch(plotUrl(plot)).then(function (r) { return r.ok ? r.text() : null; }).then(function (text) {
      if (!text) return;
      plot.innerHTML = text;
      prepare(plot);
      var section = plot.closest("section");
      if (!section) return;
      var reset = section.querySelector("button.reset");
      var q = new URLSearchParams(location.search);
      if (reset) reset.hidden = !(q.has(kind + ".x") || q.has(kind + ".y"));
      var dl = section.querySelector("a.download");
      if (dl) dl.href = plotUrl(plot);
    });
  }

  function setParams(changes) {
    var q = new URLSearchParams(location.search);
    Object.keys(changes).forEach(function (k) {
      if (changes[k] === null) q.delete(k); else q.set(k, changes[k]);
    });
    var s = q.toString();
    history.replaceState(null, "", location.pathname + (s ? "?" + s : ""));
  }

  // Client point -> the plot's user units -> data, along one axis of the zoom area.
  function toUser(svg, ev) {
    var p = svg.createSVGPoint();
    p.x = ev.clientX; p.y = ev.clientY;
    return p.matrixTransform(svg.getScreenCTM().inverse());
  }

  function axisOf(area, which) {
    var parts = area.getAttribute("data-" + which).split(" ");
    return { lo: parseFloat(parts[0]), hi: parseFloat(parts[1]), log: parts[2] === "1" };
  }

  function box(area) {
    return {
      x: parseFloat(area.getAttribute("x")), y: parseFloat(area.getAttribute("y")),
      w: parseFloat(area.getAttribute("width")), h: parseFloat(area.getAttribute("height"))
    };
  }

  function valueAt(axis, f) {
    if (axis.log) return Math.exp(Math.log(axis.lo) + f * (Math.log(axis.hi) - Math.log(axis.lo)));
    return axis.lo + f * (axis.hi - axis.lo);
  }

  // The data range between two fractions of an axis.
  function span(axis, f0, f1) {
    var a = valueAt(axis, Math.min(f0, f1)), b = valueAt(axis, Math.max(f0, f1));
    return a + "," + b;
  }

  function zoomTo(plot, fx0, fx1, fy0, fy1) {
    var area = plot.querySelector(".zoom-area");
    var kind = plot.getAttribute("data-kind");
    var ch = {};
    if (fx0 !== null) ch[kind + ".x"] = span(axisOf(area, "x"), fx0, fx1);
    if (fy0 !== null) ch[kind + ".y"] = span(axisOf(area, "y"), fy0, fy1);
    setParams(ch);
    return redraw(plot);
  }

  function resetZoom(plot) {
    var kind = plot.getAttribute("data-kind"), ch = {};
    ch[kind + ".x"] = null; ch[kind + ".y"] = null;
    setParams(ch);
    return redraw(plot);
  }

  var drag = null;
  document.addEventListener("mousedown", function (ev) {
    var svg = ev.target.closest && ev.target.closest(".plot[data-src] svg");
    var area = svg && svg.querySelector(".zoom-area");
    if (!area || ev.button !== 0) return;
    var p = toUser(svg, ev), b = box(area);
    if (p.x < b.x || p.x > b.x + b.w || p.y < b.y || p.y > b.y + b.h) return;
    ev.preventDefault();
    var band = document.createElementNS("http://www.w3.org/2000/svg", "rect");
    band.setAttribute("class", "zoom-band");
    svg.appendChild(band);
    drag = { svg: svg, plot: svg.closest(".plot"), start: p, b: b, pan: ev.shiftKey, band: band, moved: false, cx0: ev.clientX, cy0: ev.clientY };
  });
  document.addEventListener("mousemove", function (ev) {
    if (!drag) return;
    var p = toUser(drag.svg, ev), s = drag.start, b = drag.b;
    if (Math.abs(p.x - s.x) + Math.abs(p.y - s.y) > 4) drag.moved = true;
    if (drag.pan) {
      // Moved as a picture while dragging; drawn anew, with its ticks, on release.
      drag.svg.style.transform = "translate(" + (ev.clientX - drag.cx0) + "px," + (ev.clientY - drag.cy0) + "px)";
      return;
    }
    var x = Math.max(b.x, Math.min(p.x, s.x)), y = Math.max(b.y, Math.min(p.y, s.y));
    var x1 = Math.min(b.x + b.w, Math.max(p.x, s.x)), y1 = Math.min(b.y + b.h, Math.max(p.y, s.y));
    drag.band.setAttribute("x", x); drag.band.setAttribute("y", y);
    drag.band.setAttribute("width", x1 - x); drag.band.setAttribute("height", y1 - y);
  });
  document.addEventListener("mouseup", function (ev) {
    if (!drag) return;
    var d = drag;
    setTimeout(function () { drag = null; }, 0);
    d.band.remove();
    d.svg.style.transform = "";
    if (!d.moved) return;
    var p = toUser(d.svg, ev), s = d.start, b = d.b;
    var fx = function (x) { return (x - b.x) / b.w; };
    var fy = function (y) { return (b.y + b.h - y) / b.h; };
    if (d.pan) {
      var dx = fx(s.x) - fx(p.x), dy = fy(s.y) - fy(p.y);
      zoomTo(d.plot, dx, 1 + dx, dy, 1 + dy);
      return;
    }
    var wide = Math.abs(p.x - s.x) > 4, tall = Math.abs(p.y - s.y) > 4;
    zoomTo(d.plot, wide ? fx(s.x) : null, fx(p.x), tall ? fy(s.y) : null, fy(p.y));
  });
  document.addEventListener("dblclick", function (ev) {
    var plot = ev.target.closest && ev.target.closest(".plot[data-src]");
    if (plot && plot.querySelector(".zoom-area")) resetZoom(plot);
  });
  var wheelTimer = null, wheelScale = 1, wheelAt = null;
  document.addEventListener("wheel", function (ev) {
    var svg = ev.target.closest && ev.target.closest(".plot[data-src] svg");
    var area = svg && svg.querySelector(".zoom-area");
    if (!area) return;
    var p = toUser(svg, ev), b = box(area);
    if (p.x < b.x || p.x > b.x + b.w || p.y < b.y || p.y > b.y + b.h) return;
    ev.preventDefault();
    wheelScale *= ev.deltaY > 0 ? 1.25 : 0.8;
    wheelAt = { plot: svg.closest(".plot"), fx: (p.x - b.x) / b.w, fy: (b.y + b.h - p.y) / b.h };
    clearTimeout(wheelTimer);
    wheelTimer = setTimeout(function () {
      var k = wheelScale, a = wheelAt;
      wheelScale = 1;
      zoomTo(a.plot, a.fx - a.fx * k, a.fx + (1 - a.fx) * k, a.fy - a.fy * k, a.fy + (1 - a.fy) * k);
    }, 200);
  }, { passive: false });
  document.addEventListener("click", function (ev) {
    var b = ev.target.closest && ev.target.closest("button.reset");
    if (!b) return;
    var plot = b.closest("section").querySelector(".plot");
    if (plot) resetZoom(plot);
  });

  // ---------------------------------------------------------------- pickers, filter
  function viewControls() { return all(document, "[form=view]"); }

  function applyView() {
    var form = document.getElementById("view");
    if (!form) return;
    var q = new URLSearchParams(location.search);
    viewControls().forEach(function (el) { q.delete(el.name); });
    viewControls().forEach(function (el) {
      if ((el.type === "checkbox" || el.type === "radio") && !el.checked) return;
      if (el.value !== "") q.append(el.name, el.value);
    });
    var s = q.toString();
    history.replaceState(null, "", location.pathname + (s ? "?" + s : ""));
    refresh();
  }

  var typing = null;
  document.addEventListener("change", function (ev) {
    if (ev.target.getAttribute && ev.target.getAttribute("form") === "view" && ev.target.type !== "text" && ev.target.type !== "search") applyView();
  });
  document.addEventListener("input", function (ev) {
    if (!ev.target.getAttribute || ev.target.getAttribute("form") !== "view") return;
    if (ev.target.type !== "text" && ev.target.type !== "search") return;
    clearTimeout(typing);
    typing = setTimeout(applyView, 350);
  });
  document.addEventListener("submit", function (ev) {
    if (ev.target.id === "view" && document.querySelector("[form=view]")) { ev.preventDefault(); applyView(); }
  });

  // ---------------------------------------------------------------- notes
  function token() {
    var m = /(?:^#|&)token=([0-9a-f]+)/.exec(location.hash);
    if (m) {
      try { localStorage.setItem(TOKEN_KEY, m[1]); } catch (e) { /* private mode */ }
      history.replaceState(null, "", location.pathname + location.search);
      return m[1];
    }
    try { return localStorage.getItem(TOKEN_KEY); } catch (e) { return null; }
  }

  var noteSaid = {};
  function notes(root) {
    var text = root.querySelector("#note-text");
    var save = root.querySelector("#note-save");
    var status = root.querySelector("#note-status");
    if (!text || !save) return;
    if (!token()) return;
    text.readOnly = false;
    save.hidden = false;
    // A refresh (saving a note is itself a change to the store) keeps what was said.
    status.textContent = noteSaid[text.getAttribute("data-url")] || "";
    var say = function (what) {
      noteSaid[text.getAttribute("data-url")] = what;
      var shown = document.getElementById("note-status");
      if (shown) shown.textContent = what;
    };
    text.addEventListener("input", function () { text.setAttribute("data-dirty", "1"); say("not saved"); });
    save.addEventListener("click", function () {
      say("saving…");
      fetch(text.getAttribute("data-url"), {
        method: "POST",
        headers: { "Content-Type": "application/json", "Authorization": "Bearer " + token() },
        body: JSON.stringify({ text: text.value })
      }).then(function (r) {
        return r.json().then(function (body) { return { ok: r.ok, status: r.status, body: body }; });
      }).then(function (r) {
        if (r.ok) {
          var live = document.querySelector("#note-text");
          if (live && live.value === text.value) live.removeAttribute("data-dirty");
          text.removeAttribute("data-dirty");
          say("saved");
          return;
        }
        if (r.status === 401) { try { localStorage.removeItem(TOKEN_KEY); } catch (e) { /* */ } }
        say(r.body.error || ("error " + r.status));
      }).catch(function (e) { say(String(e)); });
    });
  }

  // ---------------------------------------------------------------- live
  var loadedAt = Date.now();
  function tick() {
    all(document, ".wall[data-ticking='1']").forEach(function (w) {
      var s = parseFloat(w.getAttribute("data-wall")) + (Date.now() - loadedAt) / 1000;
      w.textContent = duration(s);
    });
  }

  function setUp(root) {
    localTimes(root);
    sortable(root);
    prepare(root);
    notes(root);
    loadedAt = Date.now();
  }

  // Open <details>, ticked boxes, a note being written and the focused input survive
  // a refresh.
  function refresh() {
    if (busy) { pending = true; return; }
    busy = true;
    var open = {};
    all(document, "details[open] summary b").forEach(function (b) { open[b.textContent] = true; });
    storeWidth();
    fetch(location.href, { headers: { "Accept": "text/html" } })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (text) {
        if (!text) return;
        var doc = new DOMParser().parseFromString(text, "text/html");
        var next = doc.getElementById("main");
        var main = document.getElementById("main");
        if (!next || !main) return;
        var focused = document.activeElement;
        var focus = focused && focused.name ? { name: focused.name, start: focused.selectionStart, end: focused.selectionEnd } : null;
        var note = main.querySelector("#note-text[data-dirty]");
        var noteText = note ? note.value : null;
        main.innerHTML = next.innerHTML;
        all(main, "details summary b").forEach(function (b) {
          if (open[b.textContent]) b.closest("details").setAttribute("open", "");
        });
        setUp(main);
        if (noteText !== null) {
          var n = main.querySelector("#note-text");
          if (n) { n.value = noteText; n.setAttribute("data-dirty", "1"); }
        }
        if (focus) {
          var el = main.querySelector("[name='" + focus.name.replace(/'/g, "") + "'][type=text], [name='" + focus.name.replace(/'/g, "") + "'][type=search]");
          if (el) { el.focus(); try { el.setSelectionRange(focus.start, focus.end); } catch (e) { /* */ } }
        }
        document.documentElement.setAttribute("data-refreshed", String(Date.now()));
      })
      .catch(function () {})
      .then(function () {
        busy = false;
        if (pending) { pending = false; setTimeout(refresh, 300); }
      });
  }

  function poll() {
    badge && badge.classList.remove("on");
    setInterval(refresh, 3000);
  }

  token();
  storeWidth();
  setUp(document);
  setInterval(tick, 1000);
  var resizeTimer = null;
  window.addEventListener("resize", function () {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(function () { if (drawnNarrow()) refresh(); }, 300);
  });
  // A first visit is drawn at the server's default width: draw it again at this one.
  if (drawnNarrow()) refresh();
  // Marks that the script ran (the browser test looks for it).
  document.documentElement.setAttribute("data-app", "ready");
  if (window.EventSource) {
    var es = new EventSource("/api/events");
    es.addEventListener("open", function () { badge && badge.classList.add("on"); });
    es.addEventListener("change", refresh);
    es.addEventListener("error", function () {
      if (es.readyState === EventSource.CLOSED) poll();
      else badge && badge.classList.remove("on");
    });
  } else {
    poll();
  }
})();
