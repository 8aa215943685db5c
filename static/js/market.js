/* Market page: draws the price chart with uPlot from the JSON the live fragment carries, and
   redraws it whenever htmx swaps that fragment in (polling, range buttons, after a trade). */
(function () {
  "use strict";
  var chart = null;
  var lastJson = null;
  var palette = ["--s0", "--s1", "--s2", "--s3", "--s4", "--s5"];

  function colour(i) {
    var styles = getComputedStyle(document.documentElement);
    return styles.getPropertyValue(palette[i % palette.length]).trim() || "#3a3fd8";
  }

  function readData() {
    var node = document.getElementById("chart-data");
    if (!node) return null;
    return node.textContent;
  }

  function pct(v) { return v == null ? "" : (v * 100).toFixed(1) + "%"; }

  function size(el) {
    var width = el.clientWidth || 600;
    return { width: width, height: width < 500 ? 220 : 300 };
  }

  function render() {
    var el = document.getElementById("price-chart");
    var json = readData();
    if (!el || !json || typeof uPlot === "undefined") return;
    if (json === lastJson && chart) return;
    lastJson = json;
    var raw = JSON.parse(json);
    var data = [raw.t].concat(raw.series.map(function (s) { return s.values; }));
    if (chart && chart.series.length === data.length) {
      chart.setData(data);
      return;
    }
    if (chart) chart.destroy();
    var dims = size(el);
    chart = new uPlot({
      width: dims.width,
      height: dims.height,
      legend: { show: false },
      cursor: { drag: { x: false, y: false } },
      scales: { y: { range: [0, 1] } },
      axes: [
        { stroke: "#565d77", grid: { stroke: "#eef0f6" }, ticks: { stroke: "#e2e5ef" } },
        { stroke: "#565d77", grid: { stroke: "#eef0f6" }, ticks: { stroke: "#e2e5ef" }, size: 48,
          values: function (u, vals) { return vals.map(function (v) { return Math.round(v * 100) + "%"; }); } }
      ],
      series: [{}].concat(raw.series.map(function (s, i) {
        return { label: s.label, stroke: colour(i), width: 2, value: function (u, v) { return pct(v); },
                 paths: uPlot.paths.stepped({ align: 1 }), points: { show: false } };
      }))
    }, data, el);
    el.setAttribute("data-ready", "true");
  }

  function resize() {
    var el = document.getElementById("price-chart");
    if (chart && el) chart.setSize(size(el));
  }

  function syncValueLabel() {
    var mode = document.querySelector(".trade-form select[name=mode]");
    var label = document.getElementById("value-label");
    if (!mode || !label) return;
    label.textContent = { amount: "Amount (credits)", shares: "Shares", probability: "Your forecast (%)" }[mode.value] || "Amount";
  }

  // The live region polls only while the tab is visible. The filter lives here, not in hx-trigger's
  // [expression] syntax, which htmx evaluates with Function() and the Content-Security-Policy forbids.
  document.addEventListener("htmx:beforeRequest", function (event) {
    var elt = event.detail && event.detail.elt;
    if (elt && elt.getAttribute("data-poll") === "visible-only" && document.visibilityState !== "visible") {
      event.preventDefault();
    }
  });
  document.addEventListener("DOMContentLoaded", function () { render(); syncValueLabel(); });
  document.addEventListener("htmx:afterSettle", render);
  document.addEventListener("htmx:oobAfterSwap", function () { setTimeout(render, 0); });
  document.addEventListener("change", function (event) {
    if (event.target && event.target.name === "mode") syncValueLabel();
  });
  document.addEventListener("htmx:afterSettle", syncValueLabel);
  window.addEventListener("resize", function () { window.requestAnimationFrame(resize); });
})();
