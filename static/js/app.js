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

// Confirmation dialogs: a button with data-opens-dialog="ID" opens <dialog id="ID"> as a modal
// (Escape cancels natively); a button with data-closes-dialog inside closes it. A SELL button
// (data-confirm-sell) fills the page's one #sell-dialog with its URL, question and label.
document.addEventListener("click", function (event) {
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
