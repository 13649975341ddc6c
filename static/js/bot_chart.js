// Renders a bot's price chart with the vendored TradingView lightweight-charts 4.x
// (static/vendor/lightweight-charts-4.2.3.standalone.production.js, global `LightweightCharts`).
//
// Markup:
//   <div data-bot-chart data-chart-data="chart-data-42" style="height: 320px"></div>
//   <script type="application/json" id="chart-data-42">{"bars": [...], "overlays": [...], "markers": [...]}</script>
//
// Data (times are UNIX seconds UTC, prices are decimal strings; parsed to floats only here):
//   bars:     [{"time": 1732800000, "open": "189.12", "high": "190.01", "low": "188.50", "close": "189.90"}]
//   overlays: [{"name": "SMA 10", "color": "#2457d6", "points": [{"time": 1732800000, "value": "189.40"}]}]
//   markers:  [{"time": 1732800000, "side": "buy" | "sell", "text": "RSI buy signal"}]
(function () {
  "use strict";

  var DEFAULT_HEIGHT = 320;
  var BUY_COLOR = "#117a3d";
  var SELL_COLOR = "#b42318";

  function toNumber(value) {
    var n = parseFloat(value);
    return isFinite(n) ? n : null;
  }

  // lightweight-charts requires strictly ascending, unique times; keep the last item per time.
  function sortedUnique(items) {
    var byTime = {};
    var times = [];
    items.forEach(function (item) {
      if (!(item.time in byTime)) times.push(item.time);
      byTime[item.time] = item;
    });
    times.sort(function (a, b) { return a - b; });
    return times.map(function (t) { return byTime[t]; });
  }

  function readData(el) {
    var id = el.getAttribute("data-chart-data");
    var source = id ? document.getElementById(id) : null;
    if (!source) {
      console.error("bot_chart: no data element #" + id);
      return null;
    }
    try {
      return JSON.parse(source.textContent || "{}");
    } catch (err) {
      console.error("bot_chart: invalid JSON in #" + id, err);
      return null;
    }
  }

  function toBars(rawBars) {
    var bars = [];
    (rawBars || []).forEach(function (b) {
      var time = toNumber(b.time);
      var open = toNumber(b.open);
      var high = toNumber(b.high);
      var low = toNumber(b.low);
      var close = toNumber(b.close);
      if (time === null || open === null || high === null || low === null || close === null) return;
      bars.push({ time: time, open: open, high: high, low: low, close: close });
    });
    return sortedUnique(bars);
  }

  function toPoints(rawPoints) {
    var points = [];
    (rawPoints || []).forEach(function (p) {
      var time = toNumber(p.time);
      var value = toNumber(p.value);
      if (time === null || value === null) return;
      points.push({ time: time, value: value });
    });
    return sortedUnique(points);
  }

  function toMarkers(rawMarkers) {
    var markers = [];
    (rawMarkers || []).forEach(function (m) {
      var time = toNumber(m.time);
      if (time === null) return;
      var buy = m.side === "buy";
      if (!buy && m.side !== "sell") return;
      markers.push({
        time: time,
        position: buy ? "belowBar" : "aboveBar",
        shape: buy ? "arrowUp" : "arrowDown",
        color: buy ? BUY_COLOR : SELL_COLOR,
        text: m.text || (buy ? "B" : "S"),
      });
    });
    markers.sort(function (a, b) { return a.time - b.time; });
    return markers;
  }

  function render(el) {
    el.setAttribute("data-chart-ready", "");

    var data = readData(el);
    if (!data) return;

    var bars = toBars(data.bars);
    if (!bars.length) {
      el.textContent = "No price data yet.";
      return;
    }

    var LWC = window.LightweightCharts;
    if (!LWC || typeof LWC.createChart !== "function") {
      console.error("bot_chart: LightweightCharts library is not loaded");
      return;
    }

    // autoSize follows the container's box, so the container needs a height.
    if (!el.clientHeight) el.style.height = DEFAULT_HEIGHT + "px";

    try {
      var chart = LWC.createChart(el, {
        autoSize: true,
        height: el.clientHeight || DEFAULT_HEIGHT, // fallback if ResizeObserver is unavailable
        width: el.clientWidth || undefined,
        timeScale: { timeVisible: true, secondsVisible: false },
      });
      el._botChart = chart;

      var candles = chart.addCandlestickSeries();
      candles.setData(bars);

      (data.overlays || []).forEach(function (overlay) {
        var points = toPoints(overlay.points);
        if (!points.length) return;
        var options = {
          lineWidth: 1,
          title: overlay.name || "",
          priceLineVisible: false,
          lastValueVisible: false,
        };
        if (overlay.color) options.color = overlay.color;
        chart.addLineSeries(options).setData(points);
      });

      candles.setMarkers(toMarkers(data.markers));
      chart.timeScale().fitContent();
    } catch (err) {
      console.error("bot_chart: failed to render chart", err);
    }
  }

  function initCharts() {
    var els = document.querySelectorAll("[data-bot-chart]:not([data-chart-ready])");
    Array.prototype.forEach.call(els, render);
  }

  // Release the chart (canvases, ResizeObserver) when htmx removes its element.
  function cleanup(evt) {
    var el = evt.target;
    if (el && el._botChart) {
      el._botChart.remove();
      el._botChart = null;
    }
  }

  document.addEventListener("DOMContentLoaded", initCharts);
  document.addEventListener("htmx:afterSettle", initCharts);
  document.addEventListener("htmx:oobAfterSwap", initCharts);
  document.addEventListener("htmx:beforeCleanupElement", cleanup);
  if (document.readyState !== "loading") initCharts();
})();
