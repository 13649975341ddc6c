// Money over time from the JSON that <div data-pnl-chart="ID"> names: realized P&L (a bot's
// page, the dashboard) as a baseline chart, green above zero and red below, zero in view; with
// data-chart-kind="equity", the account's value as an area. Needs lightweight-charts 5.
(function () {
  "use strict";
  function draw(el) {
    if (el.hasAttribute("data-chart-ready")) return;
    var source = document.getElementById(el.getAttribute("data-pnl-chart"));
    if (!source || !window.LightweightCharts) return;
    var points = JSON.parse(source.textContent).map(function (p) {
      return { time: p.time, value: Number(p.value) };  // display only: the page shows the exact figures
    });
    var zone = window.chartLocalTime || {};
    var chart = LightweightCharts.createChart(el, {
      height: 180,
      layout: { background: { color: "transparent" }, textColor: "#475467", attributionLogo: false },
      grid: { vertLines: { visible: false }, horzLines: { color: "#eef0f3" } },
      timeScale: { timeVisible: true, secondsVisible: false, tickMarkFormatter: zone.tickMarkFormatter },
      rightPriceScale: { borderVisible: false },
      localization: {
        timeFormatter: zone.timeFormatter,
        priceFormatter: function (v) {
          return (v < 0 ? "-$" : "$") + Math.abs(v).toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
        },
      },
    });
    var series;
    if (el.getAttribute("data-chart-kind") === "equity") {
      series = chart.addSeries(LightweightCharts.AreaSeries, {
        lineColor: "#2457d6", topColor: "rgba(36,87,214,.25)", bottomColor: "rgba(36,87,214,.02)",
      });
    } else {
      series = chart.addSeries(LightweightCharts.BaselineSeries, {
        baseValue: { type: "price", price: 0 },
        topLineColor: "#16a34a", topFillColor1: "rgba(22,163,74,.25)", topFillColor2: "rgba(22,163,74,.02)",
        bottomLineColor: "#dc2626", bottomFillColor1: "rgba(220,38,38,.02)", bottomFillColor2: "rgba(220,38,38,.25)",
        // Zero always in view: the chart says whether the bot is up or down overall.
        autoscaleInfoProvider: function (original) {
          var info = original();
          if (info && info.priceRange) {
            info.priceRange.minValue = Math.min(info.priceRange.minValue, 0);
            info.priceRange.maxValue = Math.max(info.priceRange.maxValue, 0);
          }
          return info;
        },
      });
    }
    series.setData(points);
    chart.timeScale().fitContent();
    new ResizeObserver(function () { chart.applyOptions({ width: el.clientWidth }); }).observe(el);
    el.setAttribute("data-chart-ready", String(points.length));
  }
  function drawAll() { document.querySelectorAll("[data-pnl-chart]").forEach(draw); }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", drawAll);
  else drawAll();
})();
