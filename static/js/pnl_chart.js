// Realized P&L over time (a bot's page, the dashboard): a baseline chart, green above zero and
// red below, from the JSON that <div data-pnl-chart="ID"> names. Needs lightweight-charts 5.
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
        priceFormatter: function (v) { return (v < 0 ? "-$" : "$") + Math.abs(v).toFixed(2); },
      },
    });
    var series = chart.addSeries(LightweightCharts.BaselineSeries, {
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
    series.setData(points);
    chart.timeScale().fitContent();
    new ResizeObserver(function () { chart.applyOptions({ width: el.clientWidth }); }).observe(el);
    el.setAttribute("data-chart-ready", String(points.length));
  }
  function drawAll() { document.querySelectorAll("[data-pnl-chart]").forEach(draw); }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", drawAll);
  else drawAll();
})();
