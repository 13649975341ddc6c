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
    if (online) wasOnline = true;
    var lost = !online && wasOnline;
    document.body.classList.toggle("live-lost", lost);
    var notice = document.getElementById("live-lost");
    if (notice) notice.hidden = !lost;
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
