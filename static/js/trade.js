/* Market page: the trade panel's behaviour in the browser.

   - the probability slider and the number box of "my forecast is X%" move together;
   - only the chosen mode's label and help text show;
   - an error from an earlier attempt disappears as soon as an input changes;
   - "Buy"/"Sell" buttons next to outcomes and positions fill the panel (outcome, side, and for a sale the
     shares held) and move the focus to it; without JavaScript they are links that do the same on reload;
   - the outcome buttons' prices follow the live prices.
   The panel is swapped by htmx after each trade, so everything here listens on the document. */
(function () {
  "use strict";

  var LABELS = { amount: "Amount (credits)", shares: "Shares", probability: "Your forecast (%)" };

  function form() { return document.querySelector("#trade-panel form.trade-form"); }

  function syncMode() {
    var f = form();
    if (!f) return;
    var mode = f.querySelector("select[name=mode]");
    if (!mode) return;
    var label = f.querySelector("#value-label");
    if (label) label.textContent = LABELS[mode.value] || LABELS.amount;
    f.querySelectorAll("[data-mode-help]").forEach(function (node) {
      node.hidden = node.getAttribute("data-mode-help") !== mode.value;
    });
    var row = f.querySelector("[data-forecast-slider-row]");
    if (row) row.hidden = mode.value !== "probability";
    var value = f.querySelector("input[name=value]");
    var help = f.querySelector("[data-mode-help='" + mode.value + "']");
    if (value && help) value.setAttribute("aria-describedby", help.id);
  }

  function clearErrors(f) {
    f.querySelectorAll(".form-errors, #value-errors, .field-error[data-stale]").forEach(function (node) { node.remove(); });
    f.querySelectorAll("[aria-invalid=true]").forEach(function (node) { node.removeAttribute("aria-invalid"); });
    var panel = document.getElementById("trade-panel");
    var flash = panel && panel.querySelector(".flash");
    if (flash) flash.remove();
  }

  function sliderText(slider) { slider.setAttribute("aria-valuetext", slider.value + "%"); }

  function onInput(event) {
    var f = form();
    if (!f || !f.contains(event.target)) return;
    clearErrors(f);
    var target = event.target;
    var slider = f.querySelector("input[data-forecast-slider]");
    var value = f.querySelector("input[name=value]");
    if (target === slider && value) {
      value.value = slider.value;
      sliderText(slider);
      // The preview listens for input on the form; the number box is the field it sends.
      value.dispatchEvent(new Event("input", { bubbles: true }));
    } else if (target === value && slider && value.value !== "") {
      var number = parseFloat(value.value);
      if (!isNaN(number)) { slider.value = String(Math.min(99, Math.max(1, Math.round(number)))); sliderText(slider); }
    }
    if (target.name === "mode") syncMode();
  }

  function choose(f, name, value) {
    var input = f.querySelector("input[name=" + name + "][value='" + CSS.escape(value) + "']");
    if (input) input.checked = true;
  }

  /* A "Buy"/"Sell" link with data-trade-outcome: fill the panel instead of reloading the page. */
  function onClick(event) {
    var link = event.target.closest("[data-trade-outcome]");
    var f = form();
    if (!link || !f) return;
    event.preventDefault();
    choose(f, "outcome", link.getAttribute("data-trade-outcome"));
    choose(f, "side", link.getAttribute("data-trade-side") || "buy");
    var mode = f.querySelector("select[name=mode]");
    var value = f.querySelector("input[name=value]");
    var shares = link.getAttribute("data-trade-shares");
    if (mode && value) {
      if (shares) { mode.value = "shares"; value.value = shares; }
      else if (mode.value === "probability") { mode.value = "amount"; value.value = ""; }
    }
    clearErrors(f);
    syncMode();
    document.getElementById("trade-panel").scrollIntoView({ block: "nearest" });
    if (value) { value.focus(); value.select(); }
    if (value) value.dispatchEvent(new Event("input", { bubbles: true }));
  }

  /* After a poll, the outcome buttons show the live prices too. */
  function syncPrices() {
    document.querySelectorAll("#trade-panel [data-outcome-price]").forEach(function (node) {
      var live = document.querySelector("#live-region .outcome-prob[data-outcome='" + CSS.escape(node.getAttribute("data-outcome-price")) + "']");
      if (live && live.textContent !== node.textContent) node.textContent = live.textContent;
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    syncMode();
    var slider = document.querySelector("#trade-panel input[data-forecast-slider]");
    if (slider) sliderText(slider);
  });
  document.addEventListener("input", onInput);
  document.addEventListener("change", onInput);
  document.addEventListener("click", onClick);
  document.addEventListener("htmx:afterSettle", function () { syncMode(); syncPrices(); });
  document.addEventListener("htmx:oobAfterSwap", syncPrices);
})();
