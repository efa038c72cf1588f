// The page keeps its session handle in sessionStorage and sends it as a bearer header, so the
// app works inside an EHR iframe even where the browser refuses third-party cookies.
(function () {
  "use strict";
  var KEY = "smart-app-handle";

  function meta(name) {
    var el = document.querySelector('meta[name="' + name + '"]');
    return el ? el.getAttribute("content") : null;
  }

  var handle = meta(KEY);
  if (handle) {
    sessionStorage.setItem(KEY, handle);
    if (location.pathname === "/callback") {
      // The callback URL holds a used code; keep it out of history and reloads.
      history.replaceState(null, "", "/patient");
    }
  } else {
    handle = sessionStorage.getItem(KEY);
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
