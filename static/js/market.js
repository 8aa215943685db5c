/* Market page: draws the price chart with uPlot from the JSON the live fragment carries (#chart-data), and
   redraws it whenever htmx swaps that fragment in (a stream event, polling, range buttons, after a trade).

   An open market's live region names its live stream (data-stream, GET /api/v1/stream/): while the stream is
   open, each price or status event refreshes the region (htmx "stream-event") and the 4-second polling
   stands down; when the stream fails or reconnects, polling carries on until it is open again. The region's
   data-stream-state says which ("open", "connecting", "failed") and data-stream-events counts the events.

   A binary market draws its Yes line only, in the Yes button's colour; hovering, touching or the arrow keys
   (with the chart focused) show the time and every outcome's probability at that point. */
(function () {
  "use strict";
  var chart = null;
  var lastJson = null;
  var palette = ["--s0", "--s1", "--s2", "--s3", "--s4", "--s5"];

  function seriesColour(raw, i) {
    if (raw.binary) return ForecastleCharts.colour(i === 0 ? "--yes" : "--no", i === 0 ? "#0d7a4a" : "#c0262d");
    return ForecastleCharts.colour(palette[i % palette.length], "#3a3fd8");
  }

  function readData() {
    var node = document.getElementById("chart-data");
    return node ? node.textContent : null;
  }

  function pct(v) { return v == null ? "–" : (v * 100).toFixed(1) + "%"; }

  function size(el) {
    var width = el.clientWidth || 600;
    return { width: width, height: width < 500 ? 220 : 300 };
  }

  function tooltipRows(raw) {
    return function (u, idx) {
      return raw.series.map(function (s, i) { return [s.label, pct(u.data[i + 1][idx]), seriesColour(raw, i)]; });
    };
  }

  function render() {
    var el = document.getElementById("price-chart");
    var json = readData();
    if (!el || !json || typeof uPlot === "undefined" || typeof ForecastleCharts === "undefined") return;
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
      // Axis times in UTC, like the tooltip and every time on the site.
      tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC"); },
      cursor: { drag: { x: false, y: false }, points: { size: 7 } },
      // The x-axis spans exactly the chart's data: from the range's start (a new market's opening) to now.
      scales: { x: { time: true, range: function (u) { var t = u.data[0]; return [t[0], t[t.length - 1]]; } },
                y: { range: [0, 1] } },
      axes: [
        { stroke: "#565d77", grid: { stroke: "#eef0f6" }, ticks: { stroke: "#e2e5ef" } },
        { stroke: "#565d77", grid: { stroke: "#eef0f6" }, ticks: { stroke: "#e2e5ef" }, size: 48,
          values: function (u, vals) { return vals.map(function (v) { return Math.round(v * 100) + "%"; }); } }
      ],
      plugins: [ForecastleCharts.tooltip(tooltipRows(raw))],
      series: [{}].concat(raw.series.map(function (s, i) {
        return { label: s.label, stroke: seriesColour(raw, i), width: 2, show: !raw.binary || i === 0,
                 value: function (u, v) { return pct(v); },
                 paths: uPlot.paths.stepped({ align: 1 }), points: { show: false } };
      }))
    }, data, el);
    el.setAttribute("data-ready", "true");
  }

  function resize() {
    var el = document.getElementById("price-chart");
    if (chart && el) chart.setSize(size(el));
  }

  var stream = { source: null, url: null, state: "off", events: 0, refreshPending: false };

  function liveRegion() { return document.getElementById("live-region"); }

  function markStream() {
    var region = liveRegion();
    if (!region) return;
    region.setAttribute("data-stream-state", stream.state);
    region.setAttribute("data-stream-events", String(stream.events));
  }

  function refreshFromStream() {
    var region = liveRegion();
    if (!region || typeof htmx === "undefined") return;
    stream.refreshPending = true;
    htmx.trigger(region, "stream-event");
  }

  function onStreamEvent() {
    stream.events += 1;
    markStream();
    refreshFromStream();
  }

  function connectStream() {
    var region = liveRegion();
    var url = region && region.getAttribute("data-stream");
    if (!url || typeof EventSource === "undefined") {
      // The market stopped trading (the fragment no longer names a stream): nothing more to follow.
      if (region && stream.source) { stream.source.close(); stream.source = null; stream.url = null; stream.state = "off"; }
      return;
    }
    if (stream.source && stream.url === url) { markStream(); return; }
    if (stream.source) stream.source.close();
    stream.url = url;
    stream.state = "connecting";
    var source = new EventSource(url);
    stream.source = source;
    source.addEventListener("open", function () {
      stream.state = "open";
      markStream();
      // Whatever changed while the stream was down.
      refreshFromStream();
    });
    source.addEventListener("error", function () {
      // CONNECTING: the browser retries by itself (with Last-Event-ID). CLOSED: the server refused the
      // stream (an error status): polling stays on for good.
      stream.state = source.readyState === EventSource.CLOSED ? "failed" : "connecting";
      markStream();
    });
    ["price", "status", "reset"].forEach(function (name) { source.addEventListener(name, onStreamEvent); });
    markStream();
  }

  // The live region polls only while the tab is visible, and only while its stream is not open. The filter
  // lives here, not in hx-trigger's [expression] syntax, which htmx evaluates with Function() and the
  // Content-Security-Policy forbids.
  document.addEventListener("htmx:beforeRequest", function (event) {
    var elt = event.detail && event.detail.elt;
    if (!elt || elt.getAttribute("data-poll") !== "visible-only") return;
    if (document.visibilityState !== "visible") {
      event.preventDefault();
      return;
    }
    if (stream.refreshPending) {
      stream.refreshPending = false;
      return;
    }
    if (stream.state === "open") event.preventDefault();
  });
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "visible" && stream.state === "open") refreshFromStream();
  });
  document.addEventListener("DOMContentLoaded", function () { render(); connectStream(); });
  document.addEventListener("htmx:afterSettle", function () { render(); connectStream(); });
  document.addEventListener("htmx:oobAfterSwap", function () { setTimeout(render, 0); });
  window.addEventListener("resize", function () { window.requestAnimationFrame(resize); });
})();
