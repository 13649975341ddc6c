// Draws a bot's chart with the vendored TradingView lightweight-charts 5.x
// (static/vendor/lightweight-charts-5.2.1.standalone.production.js, global `LightweightCharts`):
// candles with the price-scale indicators in the first pane, one pane per oscillator below it.
//
// Markup:
//   <div data-bot-chart data-chart-data="bot-chart-data" [hidden]></div>
//   <div id="bot-chart-source"><script type="application/json" id="bot-chart-data">{...}</script></div>
//   (without data: the source holds the server's error message and the chart stays hidden)
//
// Data (bots/charts.py; times are UNIX seconds UTC, numbers are decimal strings, parsed here):
//   bars:     [{"time": 1732800000, "open": "189.12", "high": "190.01", "low": "188.50", "close": "189.90"}]
//   overlays: [{"name": "SMA fast", "color": "#2457d6", "points": [{"time": 1732800000, "value": "189.40"}]}]
//   panes:    [{"key": "rsi", "name": "RSI 14", "levels": [{"name": "Oversold", "value": "30"}, ...],
//               "series": [{"name": "RSI", "kind": "line" | "histogram", "color": "#7c3aed", "points": [...]}]}]
//   markers:  [{"time": 1732800000, "side": "buy" | "sell", "text": "RSI buy signal"}]  (a rule began to hold)
//   fills:    [{"time": 1732800000, "side": "buy" | "sell", "qty": "10", "price": "189.12"}]  (the bot's fills)
//
// Live: the engine pushes a new #bot-chart-source (hx-swap-oob) on each tick; on htmx:oobAfterSwap
// the chart takes the new data in place, keeping the user's zoom and scroll (relative to the
// latest bar), and rebuilds only if the panes or lines changed (the strategy was edited).
//
// After each draw the element says what it drew, for tests and for people debugging:
// data-chart-panes, data-chart-fills, data-chart-signals and data-chart-draws (a counter).
(function () {
  "use strict";

  var PRICE_PANE_HEIGHT = 300;
  var OSCILLATOR_PANE_HEIGHT = 120;
  var BUY_COLOR = "#117a3d";
  var SELL_COLOR = "#b42318";
  var UP_BAR_COLOR = "rgba(17, 122, 61, 0.5)";
  var DOWN_BAR_COLOR = "rgba(180, 35, 24, 0.5)";
  var LEVEL_COLOR = "#94a3b8";

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

  // The chart's data, or null while the page has none (the server shows why, e.g. the broker
  // was down; the engine's next push brings it).
  function readData(el) {
    var id = el.getAttribute("data-chart-data");
    var source = id ? document.getElementById(id) : null;
    el._botChartSource = source;
    if (!source) return null;
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
      var bar = {
        time: toNumber(b.time), open: toNumber(b.open), high: toNumber(b.high),
        low: toNumber(b.low), close: toNumber(b.close),
      };
      if (bar.time === null || bar.open === null || bar.high === null || bar.low === null ||
          bar.close === null) return;
      bars.push(bar);
    });
    return sortedUnique(bars);
  }

  function toPoints(rawPoints, histogram) {
    var points = [];
    (rawPoints || []).forEach(function (p) {
      var time = toNumber(p.time);
      var value = toNumber(p.value);
      if (time === null || value === null) return;
      var point = { time: time, value: value };
      if (histogram) point.color = value >= 0 ? UP_BAR_COLOR : DOWN_BAR_COLOR;
      points.push(point);
    });
    return sortedUnique(points);
  }

  function isSide(side) {
    return side === "buy" || side === "sell";
  }

  // Fills are arrows (▲ below the bar for a buy, ▼ above it for a sell); where a rule began to
  // hold is a small dot. Details are in the tooltip, so no text crowds the bars.
  function toMarkers(data) {
    var markers = [];
    (data.fills || []).forEach(function (fill) {
      var time = toNumber(fill.time);
      if (time === null || !isSide(fill.side)) return;
      var buy = fill.side === "buy";
      markers.push({
        time: time,
        position: buy ? "belowBar" : "aboveBar",
        shape: buy ? "arrowUp" : "arrowDown",
        color: buy ? BUY_COLOR : SELL_COLOR,
        text: buy ? "B" : "S",
      });
    });
    (data.markers || []).forEach(function (signal) {
      var time = toNumber(signal.time);
      if (time === null || !isSide(signal.side)) return;
      var buy = signal.side === "buy";
      markers.push({
        time: time,
        position: buy ? "belowBar" : "aboveBar",
        shape: "circle",
        size: 0.5,
        color: buy ? BUY_COLOR : SELL_COLOR,
      });
    });
    markers.sort(function (a, b) { return a.time - b.time; });
    return markers;
  }

  // What the tooltip says of each bar: the bot's fills and the signals that began there.
  function notesByTime(data) {
    var notes = {};
    function add(time, line) {
      if (time === null) return;
      (notes[time] = notes[time] || []).push(line);
    }
    (data.fills || []).forEach(function (fill) {
      if (!isSide(fill.side)) return;
      add(toNumber(fill.time), (fill.side === "buy" ? "Bought " : "Sold ") + fill.qty + " @ $" + fill.price);
    });
    (data.markers || []).forEach(function (signal) {
      add(toNumber(signal.time), signal.text || signal.side + " signal");
    });
    return notes;
  }

  // The shape of the chart: if it is unchanged, a redraw only replaces the data.
  function layoutOf(data) {
    return JSON.stringify({
      overlays: (data.overlays || []).map(function (o) { return o.name; }),
      panes: (data.panes || []).map(function (pane) {
        return {
          key: pane.key,
          series: (pane.series || []).map(function (s) { return s.name + ":" + s.kind; }),
          levels: (pane.levels || []).map(function (l) { return l.name + ":" + l.value; }),
        };
      }),
    });
  }

  function build(el, data, LWC) {
    var panes = data.panes || [];
    el.style.height = PRICE_PANE_HEIGHT + OSCILLATOR_PANE_HEIGHT * panes.length + "px";
    if (getComputedStyle(el).position === "static") el.style.position = "relative";

    var zone = window.chartLocalTime || {};
    var chart = LWC.createChart(el, {
      autoSize: true,
      timeScale: { timeVisible: true, secondsVisible: false, tickMarkFormatter: zone.tickMarkFormatter },
      localization: { timeFormatter: zone.timeFormatter },
      crosshair: { mode: LWC.CrosshairMode.Normal },
    });
    var state = { chart: chart, layout: layoutOf(data), series: [], notes: {} };

    state.candles = chart.addSeries(LWC.CandlestickSeries, {}, 0);
    state.markers = LWC.createSeriesMarkers(state.candles, []);
    (data.overlays || []).forEach(function (overlay, index) {
      state.series.push({
        path: ["overlays", index],
        api: chart.addSeries(LWC.LineSeries, {
          color: overlay.color, lineWidth: 1, title: overlay.name || "",
          priceLineVisible: false, lastValueVisible: false,
          crosshairMarkerVisible: false,
        }, 0),
      });
    });
    panes.forEach(function (pane, paneOffset) {
      var paneIndex = paneOffset + 1;
      var first = null;
      var levels = (pane.levels || []).map(function (level) { return toNumber(level.value); })
        .filter(function (value) { return value !== null; });
      (pane.series || []).forEach(function (line, index) {
        var histogram = line.kind === "histogram";
        var api = chart.addSeries(histogram ? LWC.HistogramSeries : LWC.LineSeries, {
          color: line.color, title: line.name || "", priceLineVisible: false,
          lastValueVisible: !histogram, lineWidth: 1,
          // The scale always shows the strategy's levels, however far the line is from them.
          autoscaleInfoProvider: function (original) {
            var info = original();
            if (!info || !info.priceRange || !levels.length) return info;
            info.priceRange.minValue = Math.min.apply(null, levels.concat(info.priceRange.minValue));
            info.priceRange.maxValue = Math.max.apply(null, levels.concat(info.priceRange.maxValue));
            return info;
          },
        }, paneIndex);
        state.series.push({ path: ["panes", paneOffset, "series", index], histogram: histogram, api: api });
        if (!first) first = api;
      });
      (pane.levels || []).forEach(function (level) {
        var price = toNumber(level.value);
        if (first && price !== null) {
          first.createPriceLine({
            price: price, color: LEVEL_COLOR, lineWidth: 1,
            lineStyle: LWC.LineStyle.Dashed, axisLabelVisible: true, title: level.name,
          });
        }
      });
    });
    // Shares of the container's height (autoSize sets the total once it is laid out).
    chart.panes().forEach(function (pane, index) {
      pane.setStretchFactor(index === 0 ? PRICE_PANE_HEIGHT : OSCILLATOR_PANE_HEIGHT);
    });

    state.tooltip = document.createElement("div");
    state.tooltip.className = "chart-tooltip";
    state.tooltip.setAttribute("role", "status");
    state.tooltip.hidden = true;
    el.appendChild(state.tooltip);
    chart.subscribeCrosshairMove(function (param) {
      var lines = param.time !== undefined && param.point ? state.notes[param.time] : null;
      if (!lines) {
        state.tooltip.hidden = true;
        return;
      }
      state.tooltip.textContent = lines.join("\n");
      state.tooltip.hidden = false;
      // Beside the crosshair, flipped to its left near the right edge.
      var left = param.point.x + 14;
      if (left + state.tooltip.offsetWidth > el.clientWidth) left = param.point.x - 14 - state.tooltip.offsetWidth;
      state.tooltip.style.left = Math.max(0, left) + "px";
      state.tooltip.style.top = Math.max(0, param.point.y - 10) + "px";
    });
    return state;
  }

  function fill(state, data) {
    var bars = toBars(data.bars);
    state.candles.setData(bars);
    state.series.forEach(function (entry) {
      var source = data;
      entry.path.forEach(function (step) { source = source && source[step]; });
      entry.api.setData(toPoints(source && source.points, entry.histogram));
    });
    var markers = toMarkers(data);
    state.markers.setMarkers(markers);
    state.notes = notesByTime(data);
    return bars.length;
  }

  function draw(el) {
    el.setAttribute("data-chart-ready", "");
    var data = readData(el);
    if (!data) return;
    el.hidden = false;
    if (!toBars(data.bars).length) {
      if (el._botChart) {
        el._botChart.chart.remove();
        el._botChart = null;
      }
      el.textContent = "No price data yet.";
      return;
    }
    var LWC = window.LightweightCharts;
    if (!LWC || typeof LWC.createChart !== "function") {
      console.error("bot_chart: LightweightCharts library is not loaded");
      return;
    }
    try {
      var state = el._botChart;
      var kept = null;
      if (state && state.layout === layoutOf(data)) {
        // Keep the view where the user left it, counted from the latest bar, so a new bar
        // moves it along rather than zooming out.
        kept = { range: state.chart.timeScale().getVisibleLogicalRange(), bars: state.barCount };
      } else {
        if (state) state.chart.remove();
        el.textContent = "";
        state = el._botChart = build(el, data, LWC);
      }
      state.barCount = fill(state, data);
      if (kept && kept.range) {
        var shift = state.barCount - kept.bars;
        state.chart.timeScale().setVisibleLogicalRange({ from: kept.range.from + shift, to: kept.range.to + shift });
      } else if (!kept) {
        state.chart.timeScale().fitContent();
      }
      el.setAttribute("data-chart-panes", String(state.chart.panes().length));
      el.setAttribute("data-chart-fills", String((data.fills || []).length));
      el.setAttribute("data-chart-signals", String((data.markers || []).length));
      el.setAttribute("data-chart-draws", String(Number(el.getAttribute("data-chart-draws") || 0) + 1));
    } catch (err) {
      console.error("bot_chart: failed to draw the chart", err);
    }
  }

  function initCharts() {
    var els = document.querySelectorAll("[data-bot-chart]:not([data-chart-ready])");
    Array.prototype.forEach.call(els, draw);
  }

  // A pushed data element: redraw the charts that read it. htmx fires this event on the socket's
  // element for every out-of-band swap of a message, so what tells is a new data node.
  function onSwap() {
    var els = document.querySelectorAll("[data-bot-chart][data-chart-ready]");
    Array.prototype.forEach.call(els, function (el) {
      var source = document.getElementById(el.getAttribute("data-chart-data"));
      if (source && source !== el._botChartSource) draw(el);
    });
    initCharts();
  }

  // Release the chart (canvases, ResizeObserver) when htmx removes its element.
  function cleanup(evt) {
    var el = evt.target;
    if (el && el._botChart) {
      el._botChart.chart.remove();
      el._botChart = null;
    }
  }

  document.addEventListener("DOMContentLoaded", initCharts);
  document.addEventListener("htmx:afterSettle", initCharts);
  document.addEventListener("htmx:oobAfterSwap", onSwap);
  document.addEventListener("htmx:beforeCleanupElement", cleanup);
  if (document.readyState !== "loading") initCharts();
})();
