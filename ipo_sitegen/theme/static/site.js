/* ipo-sitegen theme script: small, dependency-free, and optional (pages work without it). */
(function () {
  "use strict";
  // Opened from a file share (file://), a folder link shows a directory listing, not the page:
  // point folder links at their index.html. Served over HTTP, pretty URLs stay as they are.
  if (location.protocol === "file:") {
    document.addEventListener("DOMContentLoaded", function () {
      var links = document.querySelectorAll("a[href]");
      for (var i = 0; i < links.length; i++) {
        var href = links[i].getAttribute("href");
        if (/^[a-z][a-z0-9+.-]*:/i.test(href) || href.charAt(0) === "#") continue;
        var parts = href.split("#");
        if (parts[0] === "" ) continue;
        if (parts[0].slice(-1) === "/") {
          parts[0] += "index.html";
          links[i].setAttribute("href", parts.join("#"));
        }
      }
    });
  }
})();

/* The search box in the header: "/" focuses it (as on many sites), and under file:// the form
   goes to search/index.html, since a folder URL would show a directory listing. */
(function () {
  "use strict";
  document.addEventListener("keydown", function (event) {
    if (event.key !== "/" || event.ctrlKey || event.metaKey || event.altKey || event.defaultPrevented) return;
    var target = event.target;
    if (target && (target.isContentEditable || /^(input|textarea|select)$/i.test(target.tagName))) return;
    var box = document.querySelector('form.search input[name="q"]');
    if (!box) return;
    event.preventDefault();
    box.focus();
    box.select();
  });
  if (location.protocol === "file:") {
    document.addEventListener("DOMContentLoaded", function () {
      var forms = document.querySelectorAll("form.search[action]");
      for (var i = 0; i < forms.length; i++) {
        var action = forms[i].getAttribute("action");
        if (action.slice(-1) === "/") forms[i].setAttribute("action", action + "index.html");
      }
    });
  }
})();
