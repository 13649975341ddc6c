// Backtest charts with the vendored lightweight-charts 5 (global `LightweightCharts`):
//   <div data-equity-chart="ID">: {"equity": [{time, value}], "drawdown": [{time, value}]} from
//     <script id="ID" type="application/json">: the account's value, and below it in its own pane
//     the drawdown in percent under the running peak (backtests/pages.py: equity_chart).
//   <div data-compare-chart="ID">: [{"name", "color", "points": [{time, value}]}]: each run's
//     return since its start in percent, overlaid (backtests/pages.py: comparison).
// Times are UNIX seconds UTC, shown in the browser's zone (chart_time.js); values are decimal
// strings (display only: the page lists the exact figures). Drawn on load and after htmx settles
// (the results arrive by htmx when a run finishes while its page is open).
(function () {
  "use strict";

  function points(raw) {
    var seen = {};
    var out = [];
    (raw || []).forEach(function (p) {
      var time = Number(p.time);
      var value = Number(p.value);
      if (!isFinite(time) || !isFinite(value) || seen[time]) return;
      seen[time] = true;
      out.push({ time: time, value: value });
    });
    out.sort(function (a, b) { return a.time - b.time; });
    return out;
  }

  function newChart(el, height, priceFormatter) {
    var zone = window.chartLocalTime || {};
    var chart = LightweightCharts.createChart(el, {
      height: height,
      layout: { background: { color: "transparent" }, textColor: "#475467", attributionLogo: false },
      grid: { vertLines: { visible: false }, horzLines: { color: "#eef0f3" } },
      timeScale: { timeVisible: true, secondsVisible: false, tickMarkFormatter: zone.tickMarkFormatter },
      rightPriceScale: { borderVisible: false },
      localization: { timeFormatter: zone.timeFormatter, priceFormatter: priceFormatter },
    });
    new ResizeObserver(function () { chart.applyOptions({ width: el.clientWidth }); }).observe(el);
    return chart;
  }

  function dollars(v) {
    return (v < 0 ? "-$" : "$") + Math.abs(v).toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  }

  function percent(v) {
    return v.toFixed(2) + "%";
  }

  function readJson(id) {
    var source = document.getElementById(id);
    if (!source) return null;
    try {
      return JSON.parse(source.textContent);
    } catch (err) {
      console.error("backtest_charts: invalid JSON in #" + id, err);
      return null;
    }
  }

  function drawEquity(el) {
    var data = readJson(el.getAttribute("data-equity-chart"));
    if (!data) return;
    var chart = newChart(el, 360, dollars);
    var equity = chart.addSeries(LightweightCharts.AreaSeries, {
      lineColor: "#2457d6", topColor: "rgba(36,87,214,.25)", bottomColor: "rgba(36,87,214,.02)",
    });
    equity.setData(points(data.equity));
    var drawdown = chart.addSeries(LightweightCharts.AreaSeries, {
      lineColor: "#b42318", topColor: "rgba(180,35,24,.02)", bottomColor: "rgba(180,35,24,.3)",
      invertFilledArea: true,
      priceFormat: { type: "custom", formatter: percent },
    }, 1);
    drawdown.setData(points(data.drawdown));
    var panes = chart.panes();
    if (panes[1]) panes[1].setHeight(110);
    chart.timeScale().fitContent();
    el.setAttribute("data-chart-ready", String(data.equity.length));
  }

  function drawComparison(el) {
    var curves = readJson(el.getAttribute("data-compare-chart"));
    if (!curves) return;
    var chart = newChart(el, 360, percent);
    curves.forEach(function (curve) {
      var series = chart.addSeries(LightweightCharts.LineSeries, {
        color: curve.color, lineWidth: 2, title: curve.name,
      });
      series.setData(points(curve.points));
    });
    chart.timeScale().fitContent();
    el.setAttribute("data-chart-ready", String(curves.length));
  }

  function drawAll() {
    if (!window.LightweightCharts) return;
    document.querySelectorAll("[data-equity-chart]:not([data-chart-ready])").forEach(drawEquity);
    document.querySelectorAll("[data-compare-chart]:not([data-chart-ready])").forEach(drawComparison);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", drawAll);
  else drawAll();
  document.addEventListener("htmx:afterSettle", drawAll);
})();
