// The page keeps its session handle in sessionStorage and sends it as a bearer header, so the
// app works inside an EHR iframe even where the browser refuses third-party cookies.
(function () {
  "use strict";
  var KEY = "smart-app-handle";

  function meta(name) {
    var el = document.querySelector('meta[name="' + name + '"]');
    return el ? el.getAttribute("content") : null;
  }

  // A third-party iframe may be denied storage altogether; the page then keeps the handle in memory.
  var storage = null;
  try { storage = window.sessionStorage; storage.getItem(KEY); } catch (e) { storage = null; }

  // A launch starting: keep its nonce for this tab (the callback must show it), then go to the EHR.
  var launching = document.querySelector('meta[name="smart-app-launch"]');
  if (launching) {
    if (storage) { storage.setItem("smart-app-launch:" + launching.getAttribute("content"),
                                   launching.getAttribute("data-nonce")); }
    location.replace(document.getElementById("continue-launch").getAttribute("href"));
    return;
  }
  // The callback reached this tab without the launch cookie: send the nonce this tab kept.
  var finishing = document.getElementById("finish-launch");
  if (finishing) {
    var state = finishing.elements.state ? finishing.elements.state.value : "";
    var kept = storage && state ? storage.getItem("smart-app-launch:" + state) : null;
    if (kept) {
      finishing.elements.browser_nonce.value = kept;
      storage.removeItem("smart-app-launch:" + state);
    }
    finishing.submit();
    return;
  }

  var handle = meta(KEY);
  if (handle) {
    if (storage) { storage.setItem(KEY, handle); }
    if (location.pathname === "/callback") {
      // The callback URL holds a used code; keep it out of history and reloads.
      history.replaceState(null, "", "/patient");
    }
  } else if (storage) {
    handle = storage.getItem(KEY);
  }

  var recover = document.getElementById("recover-form");
  if (recover && handle) {
    recover.elements.session_handle.value = handle;
    recover.submit();
    return;
  }

  window.smartApp = {
    handle: handle,
    csrf: meta("smart-app-csrf"),
    headers: function (extra) {
      var h = { "Accept": "application/json" };
      if (handle) { h["Authorization"] = "Bearer " + handle; }
      for (var k in extra || {}) { h[k] = extra[k]; }
      return h;
    }
  };
})();

// Forms marked data-api are sent as JSON to the API; the page's main part is then re-rendered.
(function () {
  "use strict";
  var app = window.smartApp;
  if (!app) { return; }

  function say(id, text) {
    var el = document.getElementById(id);
    if (el) { el.textContent = text || ""; }
  }

  function body(form) {
    var data = {};
    Array.prototype.forEach.call(form.elements, function (el) {
      if (!el.name || el.disabled) { return; }
      // A list of checkboxes (data-list) sends the values of the checked ones.
      if (el.type === "checkbox" && el.hasAttribute("data-list")) {
        data[el.name] = data[el.name] || [];
        if (el.checked) { data[el.name].push(el.value); }
        return;
      }
      if (el.type === "checkbox") { data[el.name] = el.checked; return; }
      if (el.value === "") { return; }
      if (el.type === "number") { data[el.name] = parseInt(el.value, 10); return; }
      if (el.value === "true" || el.value === "false") { data[el.name] = el.value === "true"; return; }
      data[el.name] = el.value;
    });
    if (form.hasAttribute("data-quick") && !data.program) {
      var select = document.querySelector("form.start-timer [data-program-select]");
      if (select) { data.program = select.value; }
    }
    return data;
  }

  function refresh(focusId) {
    var main = document.getElementById("page-main");
    return fetch(main.getAttribute("data-refresh"), { headers: app.headers(), credentials: "same-origin" })
      .then(function (r) { return r.text().then(function (t) { return { ok: r.ok, text: t }; }); })
      .then(function (res) {
        if (!res.ok) { say("problem", "The page could not be refreshed; reload the app from the chart."); return; }
        main.innerHTML = res.text;
        wire(main);
        var target = focusId && document.getElementById(focusId);
        if (target) { target.focus(); }
      });
  }

  function submit(event) {
    event.preventDefault();
    var form = event.target;
    var button = form.querySelector("button[type=submit]");
    if (button) { button.disabled = true; }
    say("problem", "");
    fetch(form.getAttribute("data-api"), {
      method: "POST", credentials: "same-origin",
      headers: app.headers({ "Content-Type": "application/json", "X-CSRF-Token": app.csrf }),
      body: JSON.stringify(body(form))
    }).then(function (r) {
      return r.json().then(function (data) { return { ok: r.ok, data: data }; });
    }).then(function (res) {
      if (res.ok) {
        // Announce only once the page shows the new state, so what is read matches what is seen.
        return refresh("capture-title").then(function () { say("status", res.data.message || "Saved."); });
      }
      var err = res.data.error || {};
      say("problem", (err.message || "The request failed.") + (err.hint ? " " + err.hint : ""));
      if (button) { button.disabled = false; }
    }).catch(function () {
      say("problem", "The app could not be reached; nothing was saved. Check the connection and try again.");
      if (button) { button.disabled = false; }
    });
  }

  function filterActivities(select) {
    var form = select.form;
    var activity = form.querySelector("[data-activity-select]");
    if (!activity) { return; }
    var first = null;
    Array.prototype.forEach.call(activity.options, function (opt) {
      var fits = (" " + opt.getAttribute("data-programs") + " ").indexOf(" " + select.value + " ") >= 0;
      opt.hidden = !fits;
      opt.disabled = !fits;
      if (fits && !first) { first = opt; }
    });
    if (activity.selectedOptions[0] && activity.selectedOptions[0].disabled && first) { first.selected = true; }
  }

  function tick() {
    var box = document.querySelector(".timer-running");
    if (!box) { return; }
    var started = new Date(box.getAttribute("data-started"));
    var seconds = Math.max(0, Math.floor((Date.now() - started.getTime()) / 1000));
    var m = Math.floor(seconds / 60), s = seconds % 60;
    box.querySelector(".elapsed").textContent = m + " min " + (s < 10 ? "0" : "") + s + " s elapsed";
  }

  // Links to the app's other pages carry the session in a POST body where cookies are refused.
  function carry(event) {
    if (!app.handle) { return; }
    event.preventDefault();
    var link = event.currentTarget;
    var form = document.createElement("form");
    form.method = "post";
    form.action = link.getAttribute("href");
    var field = document.createElement("input");
    field.type = "hidden";
    field.name = "session_handle";
    field.value = app.handle;
    form.appendChild(field);
    document.body.appendChild(form);
    form.submit();
  }

  // A GET form (filters, month picker) keeps its fields in the URL and carries the session the same way.
  function carryForm(event) {
    if (!app.handle) { return; }
    event.preventDefault();
    var form = event.currentTarget;
    var query = new URLSearchParams(new FormData(form)).toString();
    var link = document.createElement("a");
    link.setAttribute("href", form.getAttribute("action") + (query ? "?" + query : ""));
    carry({ preventDefault: function () {}, currentTarget: link });
  }

  function wire(root) {
    Array.prototype.forEach.call(root.querySelectorAll("a[data-carry]"), function (link) {
      link.addEventListener("click", carry);
    });
    Array.prototype.forEach.call(root.querySelectorAll("form[data-carry]"), function (form) {
      form.addEventListener("submit", carryForm);
    });
    Array.prototype.forEach.call(root.querySelectorAll("form[data-api]"), function (form) {
      form.addEventListener("submit", submit);
    });
    Array.prototype.forEach.call(root.querySelectorAll("[data-program-select]"), function (select) {
      select.addEventListener("change", function () { filterActivities(select); });
      filterActivities(select);
    });
    tick();
  }

  wire(document);
  setInterval(tick, 1000);
})();
