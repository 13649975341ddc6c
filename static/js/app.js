// Small behaviours htmx does not cover: the live-connection badge and self-dismissing toasts.
(function () {
  "use strict";
  var TOAST_MS = 6000;

  function setLive(online) {
    var badge = document.getElementById("live-indicator");
    if (!badge) return;
    badge.textContent = online ? "Live" : "Offline";
    badge.classList.toggle("live-online", online);
    badge.classList.toggle("live-offline", !online);
  }

  function scheduleToastRemoval() {
    document.querySelectorAll("#toasts .toast:not([data-timed])").forEach(function (toast) {
      toast.setAttribute("data-timed", "");
      setTimeout(function () { toast.remove(); }, TOAST_MS);
    });
  }

  document.addEventListener("htmx:wsOpen", function () { setLive(true); });
  document.addEventListener("htmx:wsClose", function () { setLive(false); });
  document.addEventListener("htmx:wsError", function () { setLive(false); });
  document.addEventListener("htmx:afterSettle", scheduleToastRemoval);
  document.addEventListener("htmx:oobAfterSwap", scheduleToastRemoval);
  document.addEventListener("htmx:wsAfterMessage", scheduleToastRemoval);
})();

// Trading: a table that is filtered or not on its first page (data-live-insert="off") takes no
// pushed new rows; replacing a row it already shows still works, since that targets the row.
(function () {
  "use strict";
  document.addEventListener("htmx:oobBeforeSwap", function (event) {
    var target = event.detail.target;
    if (target && target.getAttribute && target.getAttribute("data-live-insert") === "off") {
      event.detail.shouldSwap = false;
    }
  });
})();
