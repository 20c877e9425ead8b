// login.js — the public part of the page: trades the one-time token in the
// URL's fragment (#t=…, never sent to a server by the browser) for a session
// cookie, takes it out of the address bar, then loads the app. Nothing here
// reads or shows room data.
"use strict";
(function () {
  const msg = document.getElementById("login-msg");
  function showLogin(text) {
    msg.textContent = text;
    document.getElementById("login").hidden = false;
  }
  function loadApp() {
    const css = document.createElement("link");
    css.rel = "stylesheet";
    css.href = "/app.css";
    document.head.appendChild(css);
    const js = document.createElement("script");
    js.src = "/app.js";
    document.head.appendChild(js);
  }
  const match = /(?:^#|&)t=([0-9a-f]{64})(?:&|$)/.exec(location.hash);
  // The token leaves the address bar and the history at once
  if (location.hash)
    history.replaceState(null, "", location.pathname);
  if (match) {
    fetch("/login", { method: "POST", body: match[1], credentials: "same-origin",
                      headers: { "Content-Type": "text/plain" } })
      .then(function (r) {
        if (r.status === 204) loadApp();
        else showLogin("This link was used already or has expired. Run 'ai-peer web' again for a new one.");
      })
      .catch(function () { showLogin("webd does not answer: is the web view on? Run 'ai-peer web'."); });
  } else {
    fetch("/api/session", { credentials: "same-origin" })
      .then(function (r) {
        if (r.status === 204) loadApp();
        else showLogin("Not logged in.");
      })
      .catch(function () { showLogin("webd does not answer: is the web view on? Run 'ai-peer web'."); });
  }
})();
