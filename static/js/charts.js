/* Chart helpers shared by the market chart and the net-worth chart (uPlot).

   ForecastleCharts.tooltip(format) is a uPlot plugin: hovering, touching or (with the chart focused) pressing
   the arrow keys shows the time and every series' value at that point, in a box over the chart that a
   screen reader hears through aria-live. `format(u, idx)` returns [[label, value text, colour], ...]. */
(function () {
  "use strict";

  var TIME = new Intl.DateTimeFormat(undefined, {
    day: "numeric", month: "short", year: "numeric", hour: "2-digit", minute: "2-digit", timeZone: "UTC"
  });

  function timeText(seconds) { return TIME.format(new Date(seconds * 1000)) + " UTC"; }

  function colour(name, fallback) {
    var value = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
    return value || fallback;
  }

  function tooltip(format) {
    var box = null;
    var lastIdx = null;

    function show(u) {
      var idx = u.cursor.idx;
      if (idx == null || u.data[0][idx] == null) { box.hidden = true; return; }
      if (idx === lastIdx && !box.hidden) { place(u, idx); return; }
      lastIdx = idx;
      box.textContent = "";
      var when = document.createElement("div");
      when.className = "chart-tip-time";
      when.textContent = timeText(u.data[0][idx]);
      box.appendChild(when);
      format(u, idx).forEach(function (row) {
        var line = document.createElement("div");
        line.className = "chart-tip-row";
        var swatch = document.createElement("span");
        swatch.className = "chart-tip-swatch";
        swatch.style.background = row[2];
        var label = document.createElement("span");
        label.className = "chart-tip-label";
        label.textContent = row[0];
        var value = document.createElement("strong");
        value.textContent = row[1];
        line.appendChild(swatch); line.appendChild(label); line.appendChild(value);
        box.appendChild(line);
      });
      box.hidden = false;
      place(u, idx);
    }

    function place(u, idx) {
      var x = u.valToPos(u.data[0][idx], "x");
      var width = box.offsetWidth;
      var room = u.over.clientWidth;
      var left = x + 12 + width > room ? Math.max(0, x - 12 - width) : x + 12;
      box.style.transform = "translate(" + Math.round(left) + "px, 8px)";
    }

    function step(u, direction) {
      var n = u.data[0].length;
      var idx = u.cursor.idx == null ? (direction > 0 ? 0 : n - 1) : Math.min(n - 1, Math.max(0, u.cursor.idx + direction));
      var left = u.valToPos(u.data[0][idx], "x");
      u.setCursor({ left: left, top: u.over.clientHeight / 2 });
    }

    return {
      hooks: {
        init: function (u) {
          box = document.createElement("div");
          box.className = "chart-tip";
          box.hidden = true;
          box.setAttribute("role", "status");
          box.setAttribute("aria-live", "polite");
          u.over.appendChild(box);
          var root = u.root.parentElement;
          if (root && root.hasAttribute("tabindex")) {
            root.addEventListener("keydown", function (event) {
              if (event.key === "ArrowLeft" || event.key === "ArrowRight") {
                event.preventDefault();
                step(u, event.key === "ArrowRight" ? 1 : -1);
              } else if (event.key === "Escape") {
                box.hidden = true;
              }
            });
            root.addEventListener("blur", function () { box.hidden = true; });
          }
          // A touch shows the values at the finger, and they stay until the next touch.
          u.over.addEventListener("touchstart", touch, { passive: true });
          u.over.addEventListener("touchmove", touch, { passive: true });
          function touch(event) {
            var rect = u.over.getBoundingClientRect();
            var point = event.touches[0];
            u.setCursor({ left: point.clientX - rect.left, top: point.clientY - rect.top });
          }
          u.over.addEventListener("mouseleave", function () { box.hidden = true; });
        },
        setCursor: function (u) { show(u); },
        setData: function () { lastIdx = null; }
      }
    };
  }

  window.ForecastleCharts = { tooltip: tooltip, colour: colour, timeText: timeText };
})();
