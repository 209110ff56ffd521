// kale dashboard: keeps the open page current while a tune writes to the store.
// The server renders every page; on each change event (server-sent events from
// /api/events) this fetches the same URL again and swaps in the new <main>. If the
// event stream is unavailable it falls back to polling every few seconds.
(function () {
  "use strict";
  var badge = document.getElementById("live");
  var pending = false, busy = false;

  function localTimes(root) {
    root.querySelectorAll("td.time[data-t]").forEach(function (td) {
      var t = parseFloat(td.getAttribute("data-t"));
      if (!isNaN(t)) td.textContent = new Date(t * 1000).toLocaleString();
    });
  }

  function sortable(root) {
    root.querySelectorAll("table.sortable").forEach(function (table) {
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

  // Open <details> and the sorted column survive a refresh.
  function refresh() {
    if (busy) { pending = true; return; }
    busy = true;
    var open = {};
    document.querySelectorAll("details[open] summary b").forEach(function (b) { open[b.textContent] = true; });
    fetch(location.href, { headers: { "Accept": "text/html" } })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (text) {
        if (!text) return;
        var doc = new DOMParser().parseFromString(text, "text/html");
        var next = doc.getElementById("main");
        var main = document.getElementById("main");
        if (!next || !main) return;
        var checked = {};
        main.querySelectorAll("input[type=checkbox]").forEach(function (c) { checked[c.name + "=" + c.value] = c.checked; });
        main.innerHTML = next.innerHTML;
        main.querySelectorAll("input[type=checkbox]").forEach(function (c) {
          var k = c.name + "=" + c.value;
          if (k in checked) c.checked = checked[k];
        });
        main.querySelectorAll("details summary b").forEach(function (b) {
          if (open[b.textContent]) b.closest("details").setAttribute("open", "");
        });
        localTimes(main);
        sortable(main);
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

  localTimes(document);
  sortable(document);
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
