// Open a regtracks igv.html in headless Chromium and report igv.js's own state as JSON.
//
// usage: node igv_state.cjs URL SCREENSHOT.png [TIMEOUT_MS] [LOCUS;LOCUS;...]
//
// Prints one JSON object on stdout: {errors, consoleErrors, pageErrors, failedRequests,
// blocked, tracks: [{name, url, type, loaded, message, nFeatures, nNonzero, maxValue,
// features (the first 5,000 in view: [start, end, value]), dataRange}], locus, chromium};
// with loci, also views: [{locus, tracks}] after igv.js has gone to each. Requests to other hosts than URL's are aborted (as offline) and listed in
// blocked. Exit code 0 when the page was read (the Python test judges the state),
// 2 when Chromium or the page could not be driven at all.
"use strict";

const path = require("path");
const { chromium } = require(path.join(__dirname, "node_modules", "playwright-core"));

const [url, shot, timeoutArg, lociArg] = process.argv.slice(2);
const loci = lociArg ? lociArg.split(";").filter(Boolean) : [];
const origin = new URL(url).origin;
const timeout = Number(timeoutArg || 20000);
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";

(async () => {
  const userDataDir = require("fs").mkdtempSync(path.join(require("os").tmpdir(), "rt-chromium-"));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath,
    headless: true,
    viewport: { width: 1280, height: 900 },
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--disable-dev-shm-usage",
    ],
  });
  const out = { consoleErrors: [], pageErrors: [], failedRequests: [], blocked: [] };
  try {
    await context.route("**/*", (route) => {
      const u = route.request().url();
      if (u.startsWith(origin) || u.startsWith("data:") || u.startsWith("blob:")) return route.continue();
      out.blocked.push(u);
      return route.abort("internetdisconnected");
    });
    const page = context.pages()[0] || (await context.newPage());
    page.on("console", (m) => {
      if (m.type() === "error") out.consoleErrors.push(m.text());
    });
    page.on("pageerror", (e) => out.pageErrors.push(String(e && e.message ? e.message : e)));
    page.on("requestfailed", (r) => out.failedRequests.push(r.url() + " " + (r.failure() || {}).errorText));
    page.on("response", (r) => {
      if (r.status() >= 400) out.failedRequests.push(r.url() + " HTTP " + r.status());
    });
    await page.goto(url, { waitUntil: "load", timeout });
    await page.waitForFunction(() => window.regtracks && window.regtracks.ready, null, { timeout });
    // every data track's viewports have finished loading (features cached or a message shown)
    const settle = () =>
      page.waitForFunction(
        () => {
          const b = window.regtracks.browser;
          if (!b) return true;
          const views = b.trackViews.filter((tv) => tv.track && ["wig", "annotation"].includes(tv.track.type));
          return views.every((tv) =>
            tv.viewports.every(
              (vp) => !vp.loading && (vp.featureCache || (vp.messageDiv && vp.messageDiv.style.display !== "none"))
            )
          );
        },
        null,
        { timeout, polling: 100 }
      );
    const collect = () =>
      page.evaluate(() => {
        const r = window.regtracks;
        const b = r.browser;
        const tracks = [];
        if (b) {
          for (const tv of b.trackViews) {
            const t = tv.track;
            if (!t || !["wig", "annotation"].includes(t.type)) continue;
            let n = 0, nz = 0, mx = null, msg = null, loaded = true;
            const feats = [];
            for (const vp of tv.viewports) {
              if (vp.messageDiv && vp.messageDiv.style.display !== "none") msg = vp.messageDiv.textContent;
              if (!vp.featureCache) { loaded = false; continue; }
              const start = vp.referenceFrame.start;
              const end = vp.referenceFrame.end;
              for (const f of vp.featureCache.features || []) {
                if (f.end <= start || f.start >= end) continue;
                n += 1;
                const v = t.type === "wig" ? f.value : 1;
                if (feats.length < 5000) feats.push([f.start, f.end, v]);
                if (v !== 0) nz += 1;
                mx = mx === null ? v : Math.max(mx, v);
              }
            }
            tracks.push({
              name: t.name, url: t.url, type: t.type, loaded, message: msg,
              nFeatures: n, nNonzero: nz, maxValue: mx, features: feats,
              dataRange: t.dataRange ? { min: t.dataRange.min, max: t.dataRange.max } : null,
              autoscale: !!t.autoscale,
              autoscaleGroup: t.autoscaleGroup || null,
            });
          }
        }
        return {
          errors: r.errors, configured: r.tracks.map((t) => t.url), tracks,
          locus: b ? b.currentLoci() : null, igvVersion: typeof igv !== "undefined" ? igv.version() : null,
        };
      });
    await settle();
    await page.waitForTimeout(300); // let the last repaint land before the screenshot
    const state = await collect();
    out.views = [];
    for (const locus of loci) {
      await page.evaluate((l) => window.regtracks.browser.search(l), locus);
      await settle();
      await page.waitForTimeout(300);
      const v = await collect();
      out.views.push({ locus: v.locus, tracks: v.tracks });
      await page.screenshot({ path: shot.replace(/\.png$/, "") + "_" + out.views.length + ".png" });
    }
    Object.assign(out, state);
    out.chromium = context.browser() ? context.browser().version() : null;
    await page.screenshot({ path: shot, fullPage: true });
    out.screenshot = shot;
  } finally {
    await context.close();
    require("fs").rmSync(userDataDir, { recursive: true, force: true });
  }
  process.stdout.write(JSON.stringify(out) + "\n");
})().catch((e) => {
  process.stderr.write("igv_state: " + (e && e.stack ? e.stack : e) + "\n");
  process.exit(2);
});
