/* Behaviour shared by every page. The Content-Security-Policy allows no inline script or on* attribute,
   so what markup once did with onfocus="..." is wired here by data attributes. */
(function () {
  "use strict";
  // A freshly created API key is selected when its field gets focus, ready to copy.
  document.addEventListener("focusin", function (event) {
    var target = event.target;
    if (target && target.hasAttribute && target.hasAttribute("data-select-on-focus")) target.select();
  });
})();
