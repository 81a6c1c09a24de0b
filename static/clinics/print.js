// Progressive enhancement: a Print button on the day sheet. Without it, the browser's Print command works.
(function () {
  "use strict";
  var button = document.querySelector("[data-print]");
  if (!button) { return; }
  button.hidden = false;
  button.addEventListener("click", function () { window.print(); });
})();
