// Chart times in the browser's time zone, as every other time on the page (app.js): the charts
// get UTC seconds; these formatters show them locally. Load before a chart script.
(function () {
  "use strict";
  function pad(n) { return (n < 10 ? "0" : "") + n; }
  function local(time) { return new Date(time * 1000); }
  var MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
  window.chartLocalTime = {
    // Tick marks: 0 year, 1 month, 2 day of month, 3 time, 4 time with seconds.
    tickMarkFormatter: function (time, kind) {
      var d = local(time);
      if (kind === 0) return String(d.getFullYear());
      if (kind === 1) return MONTHS[d.getMonth()];
      if (kind === 2) return d.getDate() + " " + MONTHS[d.getMonth()];
      var hm = pad(d.getHours()) + ":" + pad(d.getMinutes());
      return kind === 4 ? hm + ":" + pad(d.getSeconds()) : hm;
    },
    timeFormatter: function (time) {
      var d = local(time);
      return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + " " +
        pad(d.getHours()) + ":" + pad(d.getMinutes());
    },
  };
})();
