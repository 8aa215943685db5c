/* Portfolio and profile: the net-worth history (balance plus positions at the prices of the time), drawn with
   uPlot from #net-worth-data, with the shared tooltip (hover, touch, arrow keys). */
(function () {
  "use strict";

  function credits(v) {
    return v == null ? "–" : v.toLocaleString(undefined, { minimumFractionDigits: 2, maximumFractionDigits: 2 }) + " cr";
  }

  function size(el) {
    var width = el.clientWidth || 600;
    return { width: width, height: width < 500 ? 200 : 260 };
  }

  function draw() {
    var el = document.getElementById("net-worth-chart");
    var node = document.getElementById("net-worth-data");
    if (!el || !node || typeof uPlot === "undefined" || typeof ForecastleCharts === "undefined") return;
    var raw = JSON.parse(node.textContent);
    var brand = ForecastleCharts.colour("--brand", "#3a3fd8");
    var muted = ForecastleCharts.colour("--muted", "#565d77");
    var rows = function (u, idx) {
      return [["Net worth", credits(u.data[1][idx]), brand], ["Balance", credits(u.data[2][idx]), muted]];
    };
    var dims = size(el);
    var chart = new uPlot({
      width: dims.width,
      height: dims.height,
      legend: { show: false },
      // Axis times in UTC, like the tooltip and every time on the site.
      tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC"); },
      cursor: { drag: { x: false, y: false }, points: { size: 7 } },
      scales: { x: { time: true, range: function (u) { var t = u.data[0]; return [t[0], t[t.length - 1]]; } } },
      axes: [
        { stroke: "#565d77", grid: { stroke: "#eef0f6" }, ticks: { stroke: "#e2e5ef" } },
        { stroke: "#565d77", grid: { stroke: "#eef0f6" }, ticks: { stroke: "#e2e5ef" }, size: 60,
          values: function (u, vals) { return vals.map(function (v) { return v.toLocaleString(); }); } }
      ],
      plugins: [ForecastleCharts.tooltip(rows)],
      series: [
        {},
        { label: "Net worth", stroke: brand, width: 2, fill: "rgba(58, 63, 216, 0.08)", points: { show: false } },
        { label: "Balance", stroke: muted, width: 1, dash: [4, 4], points: { show: false } }
      ]
    }, [raw.t, raw.net_worth, raw.balance], el);
    el.setAttribute("data-ready", "true");
    window.addEventListener("resize", function () { window.requestAnimationFrame(function () { chart.setSize(size(el)); }); });
  }

  document.addEventListener("DOMContentLoaded", draw);
})();
