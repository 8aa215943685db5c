// Starts ReDoc on /api/redoc/ without an inline script (CSP: script-src 'self').
// ReDoc's default greens, reds, oranges and secondary greys sit at 4.4:1 on their backgrounds; these
// darker ones pass 4.5:1 (tests/browser/test_accessibility.py audits the page).
(function () {
  "use strict";
  var container = document.getElementById("redoc-container");
  if (!container || typeof Redoc === "undefined") {
    return;
  }
  Redoc.init(
    container.getAttribute("data-spec-url"),
    {
      theme: {
        colors: {
          success: { main: "#176a20" },
          error: { main: "#b01a17" },
          text: { secondary: "#595959" },
          responses: {
            redirect: { color: "#7a4f00" },
            info: { color: "#1f5fa8" },
          },
        },
      },
    },
    container
  );
})();
