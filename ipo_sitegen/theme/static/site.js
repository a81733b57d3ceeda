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
