/* ?kiosk=1 on any page: the wall theme (assets/wall.css, scoped under body.bl-kiosk)
   hides navigation and filter controls, and a corner stamp shows the clock and the
   data time. Dash Pages changes the URL without a reload, so the check runs every
   second. Pages with their own clock (the overview) get no stamp. */
(function () {
  var dataTime = "";

  function kioskWanted() {
    return new URLSearchParams(window.location.search).get("kiosk") === "1";
  }

  function refreshDataTime() {
    if (!kioskWanted()) { return; }
    fetch("/api/freshness", {cache: "no-store"})
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (body) {
        dataTime = body && body.finished_at ? new Date(body.finished_at + "Z")
          .toLocaleString("en-GB", {day: "numeric", month: "short",
            hour: "2-digit", minute: "2-digit"}) : "";
      })
      .catch(function () { dataTime = "server unreachable"; });
  }

  function tick() {
    if (!kioskWanted() || !document.body) { return; }
    document.body.classList.add("bl-kiosk");
    if (document.querySelector(".bl-clock")) { return; }
    var stamp = document.getElementById("bl-kiosk-stamp");
    if (!stamp) {
      stamp = document.createElement("div");
      stamp.id = "bl-kiosk-stamp";
      stamp.className = "bl-kiosk-stamp";
      document.body.appendChild(stamp);
      refreshDataTime();
    }
    var clock = new Date().toLocaleTimeString("en-GB",
      {hour: "2-digit", minute: "2-digit"});
    stamp.textContent = clock + (dataTime ? " \u00b7 data as at " + dataTime : "");
  }

  setInterval(tick, 1000);
  setInterval(refreshDataTime, 60000);
})();
