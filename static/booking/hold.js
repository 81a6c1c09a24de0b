// Progressive enhancement: a live countdown of the hold. The page works without it.
(function () {
  "use strict";
  var box = document.querySelector(".hold-timer");
  if (!box) { return; }
  var left = parseInt(box.getAttribute("data-seconds-left"), 10);
  var out = box.querySelector(".countdown");
  if (isNaN(left) || !out) { return; }
  var labelLeft = box.getAttribute("data-label-left");
  var labelExpired = box.getAttribute("data-label-expired");
  function render() {
    var m = Math.floor(left / 60), s = left % 60;
    out.textContent = left > 0 ? labelLeft + " " + m + ":" + (s < 10 ? "0" : "") + s : labelExpired;
  }
  render();
  var timer = setInterval(function () {
    left -= 1;
    if (left <= 0) { left = 0; clearInterval(timer); }
    render();
  }, 1000);
})();
