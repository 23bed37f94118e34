/* ?kiosk=1 on any page: the wall theme (assets/wall.css, scoped under body.bl-kiosk)
   hides navigation and filter controls, and a corner stamp shows the clock and the
   data time. Dash Pages changes the URL without a reload, so the check runs every
   second. Pages with their own clock (the overview) get no stamp, nor does the wall
   around its frames (each framed page shows its own).

   A page that writes its filters into the URL drops kiosk=1 from it; it is put
   back, so a reload (a screen's browser restarting) comes back in kiosk mode with
   the same filters. The incidents page's filters are hidden in kiosk mode, so a
   caption says in words what they chose, read from the hidden controls themselves
   (the crime page draws its own caption). */
(function () {
  var dataTime = "";
  var kiosk = false;

  function kioskAsked() {
    return new URLSearchParams(window.location.search).get("kiosk") === "1";
  }

  function ownStamp() {
    // The overview has its own clock; a wall's frames each show their own stamp.
    return !document.querySelector(".bl-clock, .bl-wall");
  }

  function refreshDataTime() {
    if (!kiosk || !ownStamp()) { return; }
    fetch("/api/freshness", {cache: "no-store"})
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (body) {
        dataTime = body && body.finished_at ? new Date(body.finished_at + "Z")
          .toLocaleString("en-GB", {day: "numeric", month: "short",
            hour: "2-digit", minute: "2-digit"}) : "";
      })
      .catch(function () { dataTime = "server unreachable"; });
  }

  function keepKioskInUrl() {
    if (kioskAsked()) { return; }
    var params = new URLSearchParams(window.location.search);
    params.set("kiosk", "1");
    // replaceState fires no event: the page's own URL state is left as it is.
    window.history.replaceState(window.history.state, "",
      window.location.pathname + "?" + params.toString() + window.location.hash);
  }

  /* The words a hidden dropdown shows: its chosen items, or its placeholder. */
  function chosen(id, fallback) {
    var shown = document.getElementById(id + "-value");
    if (!shown) { return fallback; }
    var items = shown.querySelectorAll(".dash-dropdown-value-item");
    if (!items.length) { return shown.textContent.trim() || fallback; }
    return Array.prototype.map.call(items, function (item) {
      return item.textContent.trim();
    }).join(", ");
  }

  function incidentsCaption() {
    var sentence = document.getElementById("incidents-period-sentence");
    if (!sentence) { return; }
    var caption = document.getElementById("bl-kiosk-incidents-caption");
    if (!caption) {
      caption = document.createElement("p");
      caption.id = "bl-kiosk-incidents-caption";
      caption.className = "bl-kiosk-caption mb-2";
      sentence.insertAdjacentElement("afterend", caption);
    }
    var crumbs = document.getElementById("incidents-breadcrumb");
    var measure = document.querySelector("#incidents-measure input:checked");
    var text = "Area: " + ((crumbs && crumbs.textContent.trim()) || "All forces")
      + ". Final grades: " + chosen("incidents-grades", "all grades").toLowerCase()
      + ". Source: " + chosen("incidents-source", "every source")
      + "." + (measure && measure.labels && measure.labels.length
        ? " The map shows: " + measure.labels[0].textContent.trim().toLowerCase()
          + "." : "");
    if (caption.textContent !== text) { caption.textContent = text; }
  }

  function tick() {
    if (!document.body) { return; }
    // A wall's frames are put in kiosk mode by the wall itself (the body class).
    kiosk = kiosk || kioskAsked() || document.body.classList.contains("bl-kiosk");
    if (!kiosk) { return; }
    document.body.classList.add("bl-kiosk");
    keepKioskInUrl();
    if (window.location.pathname === "/incidents") { incidentsCaption(); }
    if (!ownStamp()) { return; }
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
