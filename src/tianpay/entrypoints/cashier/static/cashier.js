// The cashier's only script (the pages' Content-Security-Policy forbids inline scripts): the live
// countdown, and the automatic submission of the signed form that takes the payer to the bank.
(function () {
  "use strict";

  function pad(n) { return (n < 10 ? "0" : "") + n; }

  function startCountdown() {
    var box = document.getElementById("countdown");
    var value = document.getElementById("countdown-value");
    if (!box || !value) { return; }
    var deadline = Date.now() + parseInt(box.getAttribute("data-seconds-left"), 10) * 1000;
    function tick() {
      var left = Math.max(0, Math.round((deadline - Date.now()) / 1000));
      value.textContent = Math.floor(left / 60) + ":" + pad(left % 60);
      if (left === 0) {
        box.textContent = box.getAttribute("data-expired-text");
        box.classList.add("expired");
        var buttons = document.querySelectorAll("[data-disable-on-expiry]");
        for (var i = 0; i < buttons.length; i++) { buttons[i].disabled = true; }
        return;
      }
      window.setTimeout(tick, 1000);
    }
    tick();
  }

  function autoSubmit() {
    var form = document.querySelector("form[data-autosubmit]");
    if (form) { window.setTimeout(function () { form.submit(); }, 300); }
  }

  document.addEventListener("DOMContentLoaded", function () {
    startCountdown();
    autoSubmit();
  });
})();
