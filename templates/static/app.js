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
      // Radio groups send the checked answer; a rating scale's (data-item) go together as items: {code: score}.
      if (el.type === "radio") {
        // An item-by-item form always sends its answers, none included, so the app names the first unanswered.
        if (el.hasAttribute("data-item")) { data.items = data.items || {}; }
        if (!el.checked) { return; }
        if (el.hasAttribute("data-item")) {
          data.items[el.getAttribute("data-item")] = parseInt(el.value, 10);
        } else { data[el.name] = el.value; }
        return;
      }
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

  // Each data-api form gets its own live regions right after it, so a message shows beside the control
  // it is about; the page-wide #status/#problem are for what belongs to no form (a failed refresh).
  function regions(form) {
    var next = form.nextElementSibling;
    if (next && next.classList.contains("form-messages")) { return next; }
    var box = document.createElement("div");
    box.className = "form-messages";
    box.innerHTML = '<div class="live" role="status" aria-live="polite" aria-atomic="true"></div>' +
                    '<div class="live problem" role="alert" aria-live="assertive" aria-atomic="true"></div>';
    form.insertAdjacentElement("afterend", box);
    return box;
  }

  function tell(form, text, isProblem) {
    var box = regions(form);
    box.children[isProblem ? 1 : 0].textContent = text;
  }

  function clearMessages() {
    Array.prototype.forEach.call(document.querySelectorAll(".form-messages .live, #status, #problem"),
      function (el) { el.textContent = ""; });
  }

  // A form is found again after the page is re-rendered by what it posts to and, for forms that post to
  // the same place (quick logs, attestations), by its fields and its place among them.
  function formKey(form) {
    var fields = Array.prototype.map.call(form.querySelectorAll("input[type=hidden]"), function (el) {
      return el.name + "=" + el.value;
    }).join("&");
    return form.getAttribute("data-api") + "?" + fields;
  }

  function findForm(key, nth) {
    var same = Array.prototype.filter.call(document.querySelectorAll("form[data-api]"), function (f) {
      return formKey(f) === key;
    });
    return same[Math.min(nth, same.length - 1)] || null;
  }

  function place(form) {
    var key = formKey(form);
    var same = Array.prototype.filter.call(document.querySelectorAll("form[data-api]"), function (f) {
      return formKey(f) === key;
    });
    var section = form.closest("section[aria-labelledby]");
    return { key: key, nth: same.indexOf(form), section: section ? section.getAttribute("aria-labelledby") : null };
  }

  // Where a message goes when its form is gone after the re-render (a stopped timer, a corrected entry):
  // a live region under the heading of the section the person was working in.
  function sectionRegions(headingId) {
    var heading = headingId && document.getElementById(headingId);
    if (!heading) { return null; }
    var next = heading.nextElementSibling;
    if (next && next.classList.contains("form-messages")) { return next; }
    var box = document.createElement("div");
    box.className = "form-messages section-messages";
    box.innerHTML = '<div class="live" role="status" aria-live="polite" aria-atomic="true"></div>' +
                    '<div class="live problem" role="alert" aria-live="assertive" aria-atomic="true"></div>';
    heading.insertAdjacentElement("afterend", box);
    return box;
  }

  function focusable(el) {
    if (!el) { return null; }
    if (!el.matches("a, button, input, select, textarea")) { el.setAttribute("tabindex", "-1"); }
    return el;
  }

  function refresh(where, message) {
    var main = document.getElementById("page-main");
    if (!main) { if (message) { say("status", message); } return Promise.resolve(); }
    return fetch(main.getAttribute("data-refresh"), { headers: app.headers(), credentials: "same-origin" })
      .then(function (r) { return r.text().then(function (t) { return { ok: r.ok, text: t }; }); })
      .then(function (res) {
        if (!res.ok) { say("problem", "The page could not be refreshed; reload the app from the chart."); return; }
        main.innerHTML = res.text;
        wire(main);
        var form = findForm(where.key, where.nth);
        var target = null, box = null;
        if (form) {
          // Reopen the folded part the person was working in, so the message and focus are visible.
          for (var d = form.closest("details"); d; d = d.parentElement && d.parentElement.closest("details")) {
            d.open = true;
          }
          box = regions(form);
          target = form.querySelector("button[type=submit]");
        } else {
          box = sectionRegions(where.section);
          target = where.section && document.getElementById(where.section);
        }
        // Announced once the page shows the new state (the regions were empty when wired, so it is read).
        setTimeout(function () {
          if (box) { box.children[0].textContent = message; } else { say("status", message); }
        }, 50);
        target = focusable(target);
        if (target) { target.focus(); }
      });
  }

  function submit(event) {
    event.preventDefault();
    send(event.target, {});
  }

  // The choices an error offers (a quick log that would overlap: place it before, or count it as shared).
  function offer(form, choices) {
    var box = regions(form);
    var list = document.createElement("div");
    list.className = "choices";
    list.setAttribute("role", "group");
    list.setAttribute("aria-label", "Choose what to do");
    choices.forEach(function (choice) {
      var b = document.createElement("button");
      b.type = "button";
      b.textContent = choice.label;
      b.addEventListener("click", function () { send(form, choice.fields || {}); });
      list.appendChild(b);
    });
    box.appendChild(list);
  }

  function send(form, extra) {
    var button = form.querySelector("button[type=submit]");
    clearMessages();
    Array.prototype.forEach.call(document.querySelectorAll(".form-messages .choices"), function (el) { el.remove(); });
    var data = body(form);
    for (var k in extra) { data[k] = extra[k]; }
    var programSelect = form.querySelector("[data-program-select]");
    if ((programSelect || form.hasAttribute("data-quick")) && !data.program) {
      tell(form, "Choose the program this time counts toward first.", true);
      var chooser = programSelect || document.querySelector("form.start-timer [data-program-select]");
      if (chooser) { chooser.focus(); }
      return;
    }
    if (button) { button.disabled = true; }
    var where = place(form);
    fetch(form.getAttribute("data-api"), {
      method: "POST", credentials: "same-origin",
      headers: app.headers({ "Content-Type": "application/json", "X-CSRF-Token": app.csrf }),
      body: JSON.stringify(data)
    }).then(function (r) {
      return r.json().then(function (data) { return { ok: r.ok, data: data }; });
    }).then(function (res) {
      if (res.ok) {
        return refresh(where, res.data.message || "Saved.");
      }
      var err = res.data.error || {};
      tell(form, (err.message || "The request failed.") + (err.hint ? " " + err.hint : ""), true);
      if (err.choices && err.choices.length) { offer(form, err.choices); }
      if (button) { button.disabled = false; button.focus(); }
    }).catch(function () {
      tell(form, "The app could not be reached; nothing was saved. Check the connection and try again.", true);
      if (button) { button.disabled = false; button.focus(); }
    });
  }

  // Only the activities of the chosen program are offered; the one this person last used for this patient
  // in that program comes first, and with none the person chooses (no activity is assumed for them).
  function filterActivities(select) {
    var form = select.form;
    var activity = form.querySelector("[data-activity-select]");
    if (!activity) { return; }
    var last = {};
    try { last = JSON.parse(activity.getAttribute("data-last") || "{}"); } catch (e) { last = {}; }
    var wanted = null;
    Array.prototype.forEach.call(activity.options, function (opt) {
      if (!opt.value) { return; }
      var fits = (" " + opt.getAttribute("data-programs") + " ").indexOf(" " + select.value + " ") >= 0;
      opt.hidden = !fits;
      opt.disabled = !fits;
      if (fits && opt.value === last[select.value]) { wanted = opt; }
    });
    if (wanted) { wanted.selected = true; }
    else if (activity.selectedOptions[0] && activity.selectedOptions[0].disabled) { activity.value = ""; }
  }

  function tick() {
    // The banner at the top and the capture section's box both show the elapsed time.
    document.querySelectorAll(".timer-running, .timer-banner").forEach(function (box) {
      var started = new Date(box.getAttribute("data-started"));
      var seconds = Math.max(0, Math.floor((Date.now() - started.getTime()) / 1000));
      var m = Math.floor(seconds / 60), s = seconds % 60;
      box.querySelector(".elapsed").textContent = m + " min " + (s < 10 ? "0" : "") + s + " s elapsed";
    });
    // Whatever is scrolled or focused into view lands below the pinned banner, however tall it wraps.
    var banner = document.querySelector(".timer-banner");
    document.documentElement.style.scrollPaddingTop = banner ? (banner.offsetHeight + 8) + "px" : "";
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

  // The banner's link to this patient's timer: the controls are brought in below the banner and focused.
  function toTimer(event) {
    var target = document.getElementById("timer-controls");
    var banner = document.querySelector(".timer-banner");
    if (!target) { return; }
    event.preventDefault();
    var top = target.getBoundingClientRect().top + window.scrollY - (banner ? banner.offsetHeight + 8 : 0);
    window.scrollTo(0, Math.max(0, top));
    target.focus({ preventScroll: true });
  }

  function wire(root) {
    Array.prototype.forEach.call(root.querySelectorAll("a[href='#timer-controls']"), function (link) {
      link.addEventListener("click", toTimer);
    });
    Array.prototype.forEach.call(root.querySelectorAll("a[data-carry]"), function (link) {
      link.addEventListener("click", carry);
    });
    Array.prototype.forEach.call(root.querySelectorAll("form[data-carry]"), function (form) {
      form.addEventListener("submit", carryForm);
    });
    Array.prototype.forEach.call(root.querySelectorAll("form[data-api]"), function (form) {
      form.addEventListener("submit", submit);
      regions(form);
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

// Rating scales given item by item: the running total and its severity band as the person answers, and a note
// when the safety question (PHQ-9 item 9) is answered above 0. The app scores the items again when recorded.
(function () {
  "use strict";
  function bandOf(form, total) {
    var found = "";
    (form.getAttribute("data-bands") || "").split("|").forEach(function (band) {
      var parts = band.split(":"), range = parts[0].split("-");
      if (total >= parseInt(range[0], 10) && total <= parseInt(range[1], 10)) { found = parts.slice(1).join(":"); }
    });
    return found;
  }
  function update(form) {
    var groups = {}, total = 0, answered = 0, safety = form.getAttribute("data-safety"), flagged = false;
    Array.prototype.forEach.call(form.querySelectorAll("input[type=radio][data-item]"), function (el) {
      groups[el.getAttribute("data-item")] = true;
      if (!el.checked) { return; }
      total += parseInt(el.value, 10);
      answered += 1;
      if (safety && el.getAttribute("data-item") === safety && parseInt(el.value, 10) > 0) { flagged = true; }
    });
    var count = Object.keys(groups).length;
    var box = form.querySelector("[data-scale-total]");
    if (!box) { return; }
    box.querySelector("output").textContent = String(total);
    box.querySelector("[data-scale-progress]").textContent = answered === count
      ? "(all answered: " + bandOf(form, total) + ")" : "(" + answered + " of " + count + " answered)";
    var note = form.querySelector("[data-scale-safety]");
    if (note) { note.hidden = !flagged; }
  }
  document.addEventListener("change", function (event) {
    var form = event.target.closest && event.target.closest("form[data-scale-form]");
    if (form) { update(form); }
  });
})();
