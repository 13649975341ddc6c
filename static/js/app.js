// Small behaviours htmx does not cover: the live-connection badge, the "connection lost" notice,
// self-dismissing toasts, and a toast when a request gets no usable answer.
(function () {
  "use strict";
  var TOAST_MS = 6000;
  var wasOnline = false;

  function setLive(online) {
    var badge = document.getElementById("live-indicator");
    if (!badge) return;
    badge.textContent = online ? "Live" : "Offline";
    badge.classList.toggle("live-online", online);
    badge.classList.toggle("live-offline", !online);
    // Only a page that was live can have gone stale; one still connecting has fresh figures.
    var lost = !online && wasOnline;
    var resumed = online && (wasOnline === "lost");
    if (lost) wasOnline = "lost";
    else if (online && !wasOnline) wasOnline = true;
    document.body.classList.toggle("live-lost", lost);
    var notice = document.getElementById("live-lost");
    if (notice) notice.hidden = !lost;
    // Live again, but what was pushed while the connection was down never arrived.
    var stale = document.getElementById("live-resumed");
    if (stale && resumed) stale.hidden = false;
  }

  function scheduleToastRemoval() {
    document.querySelectorAll("#toasts .toast:not([data-timed]):not([data-sticky])").forEach(function (toast) {
      toast.setAttribute("data-timed", "");
      setTimeout(function () { toast.remove(); }, TOAST_MS);
    });
  }

  function errorToast(text) {
    var toasts = document.getElementById("toasts");
    if (!toasts) return;
    var toast = document.createElement("div");
    toast.className = "toast toast-error";
    toast.setAttribute("role", "alert");
    toast.textContent = text;
    toasts.appendChild(toast);
    scheduleToastRemoval();
  }

  document.addEventListener("htmx:wsOpen", function () { setLive(true); });
  document.addEventListener("htmx:wsClose", function () { setLive(false); });
  document.addEventListener("htmx:wsError", function () { setLive(false); });
  document.addEventListener("htmx:afterSettle", scheduleToastRemoval);
  document.addEventListener("htmx:oobAfterSwap", scheduleToastRemoval);
  document.addEventListener("htmx:wsAfterMessage", scheduleToastRemoval);
  // A table's declaration lists the rows the page holds now (templates/partials/live_watch.html).
  document.addEventListener("htmx:wsConfigSend", function (event) {
    var selector = event.target.getAttribute && event.target.getAttribute("data-rows-in");
    var container = selector && document.querySelector(selector);
    if (!container) return;
    var rows = Array.prototype.map.call(container.querySelectorAll("[data-live-row]"), function (row) {
      return row.getAttribute("data-live-row");
    });
    event.detail.parameters.rows = rows.join(" ");
  });
  document.addEventListener("htmx:sendError", function () {
    errorToast("The server could not be reached: nothing was done. Try again when the page is live.");
  });
  document.addEventListener("htmx:responseError", function (event) {
    errorToast("The server answered with an error (HTTP " + event.detail.xhr.status + "): nothing was shown. Try again, or reload the page.");
  });
})();

// Confirmation dialogs: a button with data-opens-dialog="ID" opens <dialog id="ID"> as a modal
// (Escape cancels natively); a button with data-closes-dialog inside closes it. A SELL button
// (data-confirm-sell) fills the page's one #sell-dialog with its URL, question and label.
document.addEventListener("click", function (event) {
  var dismiss = event.target.closest("[data-dismiss-toast]");
  if (dismiss) {
    dismiss.closest(".toast").remove();
    return;
  }
  var seller = event.target.closest("[data-confirm-sell]");
  if (seller) {
    var sellDialog = document.getElementById("sell-dialog");
    var form = sellDialog.querySelector("form");
    form.setAttribute("hx-post", seller.getAttribute("data-url"));
    htmx.process(form);
    sellDialog.querySelector("[data-sell-message]").textContent = seller.getAttribute("data-message");
    form.querySelector("[type=submit]").textContent = seller.getAttribute("data-confirm-label");
    sellDialog.showModal();
    return;
  }
  var opener = event.target.closest("[data-opens-dialog]");
  if (opener) {
    var dialog = document.getElementById(opener.getAttribute("data-opens-dialog"));
    if (dialog && !dialog.open) dialog.showModal();
    return;
  }
  var closer = event.target.closest("[data-closes-dialog]");
  if (closer) closer.closest("dialog").close();
});

// Times: every <time datetime> is shown in the browser's time zone, with the zone named, and
// hovering it shows UTC. The server writes UTC; the precision of its text (date or not, seconds
// or not) is kept. Runs on the page and on every fragment htmx or a live update brings in.
(function () {
  "use strict";
  function pad(n) { return (n < 10 ? "0" : "") + n; }

  function zoneName(when) {
    var part = new Intl.DateTimeFormat(undefined, { timeZoneName: "short" })
      .formatToParts(when).find(function (p) { return p.type === "timeZoneName"; });
    return part ? part.value : "";
  }

  function localText(when, serverText) {
    var time = pad(when.getHours()) + ":" + pad(when.getMinutes());
    if (/\d:\d\d:\d\d/.test(serverText)) time += ":" + pad(when.getSeconds());
    var date = "";
    if (/\d{4}-\d\d-\d\d/.test(serverText)) {
      date = when.getFullYear() + "-" + pad(when.getMonth() + 1) + "-" + pad(when.getDate()) + " ";
    } else if (/[A-Za-z]{3}/.test(serverText)) {
      date = when.toLocaleDateString(undefined, { weekday: "short", day: "numeric", month: "short" }) + ", ";
    }
    return date + time + " " + zoneName(when);
  }

  function localize(root) {
    if (!root || !root.querySelectorAll) return;
    var times = Array.prototype.slice.call(root.querySelectorAll("time[datetime]"));
    if (root.matches && root.matches("time[datetime]")) times.push(root);
    times.forEach(function (el) {
      if (el.hasAttribute("data-local")) return;
      var when = new Date(el.getAttribute("datetime"));
      if (isNaN(when.getTime())) return;
      el.textContent = localText(when, el.textContent);
      el.title = when.toISOString().slice(0, 19).replace("T", " ") + " UTC";
      el.setAttribute("data-local", "");
    });
  }

  document.addEventListener("htmx:load", function (event) { localize(event.detail.elt); });
})();
