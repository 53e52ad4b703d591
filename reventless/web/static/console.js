// Live updates for the reventless console: every few seconds, fetch this same page and swap
// in the parts marked data-live (by id). No framework, no build step.
"use strict";
(function () {
  const body = document.body;
  const every = Number(body.dataset.pollMs) || 2000;
  const status = document.getElementById("live-state");
  let busy = false;

  function regions(root) {
    return Array.from(root.querySelectorAll("[data-live][id]"));
  }

  async function refresh() {
    if (busy || document.hidden || regions(document).length === 0) {
      return;
    }
    busy = true;
    try {
      const response = await fetch(window.location.href, {
        credentials: "same-origin",
        headers: { "X-Console-Live": "1" },
        cache: "no-store",
      });
      if (!response.ok) {
        throw new Error("status " + response.status);
      }
      const page = new DOMParser().parseFromString(await response.text(), "text/html");
      for (const region of regions(document)) {
        if (region.contains(document.activeElement) && document.activeElement !== body) {
          continue; // never pull a field or button away from under the keyboard
        }
        const fresh = page.getElementById(region.id);
        if (fresh && fresh.innerHTML !== region.innerHTML) {
          region.innerHTML = fresh.innerHTML;
        }
      }
      if (status) {
        status.textContent = "live: updated " + new Date().toLocaleTimeString();
      }
    } catch (error) {
      if (status) {
        status.textContent = "live: cannot reach the console (" + error.message + "); retrying";
      }
    } finally {
      busy = false;
    }
  }

  window.setInterval(refresh, every);
})();
