// The cockpit follows the mission through one poller (#cockpit-live): it asks for what changed since the newest
// history entry it has seen and swaps the panels that come back out of band. A panel the person is typing in
// (data-live-keep-focus, the focus in one of its fields) is not replaced under them; the next poll then asks for
// everything again, so the panel catches up once the focus leaves it.
(function () {
  "use strict";
  var stale = false;

  // Fields a person types in or picks from; a focused button (just clicked) does not hold the panel back.
  var ENTRY = "textarea, select, input:not([type=button]):not([type=submit]):not([type=reset]):not([type=hidden])";

  document.addEventListener("htmx:oobBeforeSwap", function (evt) {
    var target = evt.detail.target;
    var active = document.activeElement;
    if (target && target.hasAttribute("data-live-keep-focus") && active && active.matches(ENTRY) &&
        target.contains(active)) {
      evt.detail.shouldSwap = false;
      stale = true;
    }
  });

  document.addEventListener("htmx:configRequest", function (evt) {
    if (evt.detail.elt && evt.detail.elt.id === "cockpit-live" && stale) {
      evt.detail.parameters.since = "";
      stale = false;
    }
  });
})();
