// The booking flow's check under abnormal load (booking/challenge.py): find a nonce such that
// SHA-256(challenge + ":" + nonce) starts with `bits` zero bits, then submit the form. Without
// JavaScript (or without WebCrypto) the form still works after a short timed wait.
(function () {
  "use strict";
  var form = document.getElementById("challenge-form");
  if (!form || !window.crypto || !window.crypto.subtle || !window.TextEncoder) { return; }
  var challenge = form.getAttribute("data-challenge");
  var bits = parseInt(form.getAttribute("data-bits"), 10);
  var input = form.querySelector("input[name=nonce]");
  var encoder = new TextEncoder();
  function zeroBits(buffer) {
    var bytes = new Uint8Array(buffer), count = 0;
    for (var i = 0; i < bytes.length; i++) {
      if (bytes[i] === 0) { count += 8; continue; }
      var b = bytes[i];
      while ((b & 0x80) === 0) { count += 1; b <<= 1; }
      return count;
    }
    return count;
  }
  function attempt(nonce) {
    var batch = [];
    for (var k = 0; k < 256; k++) {
      batch.push(window.crypto.subtle.digest("SHA-256", encoder.encode(challenge + ":" + (nonce + k))));
    }
    Promise.all(batch).then(function (digests) {
      for (var k = 0; k < digests.length; k++) {
        if (zeroBits(digests[k]) >= bits) {
          input.value = String(nonce + k);
          form.submit();
          return;
        }
      }
      setTimeout(function () { attempt(nonce + 256); }, 0);  // let the page breathe between batches
    });
  }
  attempt(0);
})();
