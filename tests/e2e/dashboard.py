"""The dashboard in headless Chromium (Debian's chromium, driven by playwright), run by
tests/dashboard.rs against a real vigil whose active version is v2 and previous v1.

    python dashboard.py --url http://127.0.0.1:PORT/ --token TOKEN --screenshot PATH

Checks, in order (any failure raises and exits non-zero with the reason):
1. the page loads and polls; no uncaught exception; the only console errors are the browser's
   "Failed to load resource" lines for the answers this test expects to fail (401 for the
   wrong token below);
2. the latency and drift charts draw SVG paths with data points, and so does the traffic chart;
3. the versions table lists v1 and v2, v2 active;
4. a wrong token: Roll back shows the API's JSON error (kind "unauthorized"), nothing changes;
5. the right token: Roll back succeeds and the table shows v1 active; the token is in
   sessionStorage, never in the page's URL; then Activate v2 and Roll back once more;
6. a full-page screenshot is saved;
7. a rollout of v2 started through the real API (POST /admin/rollouts, as an operator would):
   the rollout panel shows its phase, step and weight; the alerts panel lists the alert the test's
   rule fires (DashboardTraffic, on v1's request rate); the shadow panel says whether shadow
   traffic runs. Nothing is faked: every panel reads vigil's own routes.
Prints one JSON object with the figures on stdout.
"""

import argparse
import json
import re
import sys
import tempfile
import time

from playwright.sync_api import sync_playwright

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 60_000


def api_post(page_url, path, token, body):
    """POST JSON to the admin API beside the page, as an operator's script would."""
    import urllib.request
    base = page_url.rstrip("/")
    req = urllib.request.Request(base + path, data=json.dumps(body).encode(), method="POST",
                                 headers={"authorization": f"Bearer {token}", "content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        if r.status not in (200, 201):
            raise AssertionError(f"POST {path}: {r.status}")
        return json.loads(r.read() or b"{}")


def fail(msg, **ctx):
    raise AssertionError(msg + ("\n" + json.dumps(ctx, indent=2, default=str) if ctx else ""))


def path_points(page, testid):
    """[(series, points)] of the SVG paths in the chart with this data-testid."""
    return page.eval_on_selector_all(
        f'[data-testid="{testid}"] svg path[data-points]',
        "ps => ps.map(p => [p.getAttribute('data-series'), Number(p.getAttribute('data-points'))])",
    )


def until(page, js, arg=None, what=None):
    """Polls `js` (a function of `arg`) in the page until it is truthy; returns its value.

    Not page.wait_for_function: that compiles the predicate inside the page, which the
    dashboard's CSP (no 'unsafe-eval') rightly refuses; page.evaluate goes through the DevTools
    protocol instead.
    """
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while True:
        value = page.evaluate(js, arg)
        if value:
            return value
        if time.monotonic() > deadline:
            fail(f"timed out waiting for {what or js}")
        page.wait_for_timeout(100)


def polls_at_least(page, n):
    until(page, "n => Number(document.body.dataset.polls || 0) >= n", n, f"{n} polls")


def wait_points(page, testid):
    """Waits until the chart has a path with at least one data point; returns its paths."""
    until(
        page,
        """id => [...document.querySelectorAll(`[data-testid="${id}"] svg path[data-points]`)]
                 .some(p => Number(p.getAttribute('data-points')) > 0)""",
        testid,
        f"data points in {testid}",
    )
    return path_points(page, testid)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--token", required=True)
    ap.add_argument("--screenshot", required=True)
    args = ap.parse_args()
    started = time.monotonic()
    console, page_errors, failed = [], [], []
    out = {}
    with sync_playwright() as pw:
        ctx = pw.chromium.launch_persistent_context(
            tempfile.mkdtemp(prefix="vigil-chromium-"),
            executable_path="/usr/bin/chromium",
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 900},
        )
        try:
            out["launch_s"] = round(time.monotonic() - started, 2)
            page = ctx.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            page.on("console", lambda m: console.append((m.type, m.text)))
            page.on("pageerror", lambda e: page_errors.append(str(e)))
            page.on("response", lambda r: failed.append((r.status, r.request.method, r.url)) if r.status >= 400 else None)
            page.on("requestfailed", lambda r: failed.append((0, r.method, r.url + " " + str(r.failure))))

            # 1-2. Loaded, polling, charts with data.
            page.goto(args.url)
            polls_at_least(page, 3)
            out["latency_paths"] = wait_points(page, "chart-latency")
            out["drift_paths"] = wait_points(page, "chart-drift")
            out["traffic_paths"] = wait_points(page, "chart-traffic")
            out["drift_rows"] = page.locator('[data-testid^="drift-row-"]').count()
            if out["drift_rows"] == 0:
                fail("the drift table has no rows")

            # 3. Versions.
            page.wait_for_selector('[data-testid="version-row-v1"]')
            page.wait_for_selector('[data-testid="version-row-v2"][data-active="true"]')
            out["versions"] = page.eval_on_selector_all(
                '[data-testid="versions-table"] tbody tr', "rs => rs.map(r => r.getAttribute('data-testid'))"
            )
            if page.locator('[data-testid="activate-v1"]').count() != 1:
                fail("v1 (not active) has no Activate button")

            # 4. A wrong token: the API's JSON error is shown.
            page.fill('[data-testid="token-input"]', "not-the-token")
            page.click('[data-testid="rollback-button"]')
            err = page.locator('[data-testid="action-error"]')
            err.wait_for(state="visible")
            error_text = err.inner_text()
            try:
                error_json = json.loads(error_text)
            except ValueError:
                fail("the action error is not the API's JSON", shown=error_text)
            if error_json.get("kind") != "unauthorized":
                fail("expected kind unauthorized", shown=error_json)
            out["wrong_token_error"] = error_json
            if page.get_attribute('[data-testid="version-row-v2"]', "data-active") != "true":
                fail("a refused rollback changed the table")

            # 5. The right token.
            page.fill('[data-testid="token-input"]', args.token)
            page.click('[data-testid="rollback-button"]')
            until(page, "() => document.querySelector('[data-testid=action-result]').textContent.includes('done')",
                  what="the rollback's result")
            page.wait_for_selector('[data-testid="version-row-v1"][data-active="true"]')
            out["action_result"] = page.inner_text('[data-testid="action-result"]')
            if page.locator('[data-testid="action-error"]').is_visible():
                fail("the error of the refused call is still shown after a success")
            stored = page.evaluate("sessionStorage.getItem('vigil.adminToken')")
            if stored != args.token:
                fail("the token is not in sessionStorage", stored=stored)
            if args.token in page.url:
                fail("the token is in the URL", url=page.url)
            page.wait_for_selector('[data-testid="audit-row"][data-action="version.rollback"]')

            # 5b. Activate from the page too, then roll back again: v1 active at the end.
            page.click('[data-testid="activate-v2"]')
            page.wait_for_selector('[data-testid="version-row-v2"][data-active="true"]')
            page.click('[data-testid="rollback-button"]')
            page.wait_for_selector('[data-testid="version-row-v1"][data-active="true"]')

            # 6. The screenshot, once the page has drawn the rollback's poll.
            polls_at_least(page, 6)
            page.screenshot(path=args.screenshot, full_page=True)

            # The console so far.
            unexpected = [f for f in failed if not (f[0] == 401 and f[2].endswith("/admin/rollback"))]
            if unexpected:
                fail("unexpected failed requests", failed=unexpected)
            errors = [
                text for (kind, text) in console
                if kind == "error" and not re.match(r"Failed to load resource: the server responded with a status of 401", text)
            ]
            if errors or page_errors:
                fail("console errors", console=errors, page_errors=page_errors)
            out["expected_failed_requests"] = failed
            out["console_errors"] = len(errors)

            # 7. A rollout through the real API, and the real alerts and shadow state.
            started_rollout = api_post(args.url, "/admin/rollouts", args.token,
                                       {"candidate": "v2", "steps": [25, 50, 100], "step_duration": "1h"})
            out["rollout_id"] = started_rollout.get("id")
            page2 = ctx.new_page()
            page2.set_default_timeout(TIMEOUT_MS)
            page2.on("pageerror", lambda e: page_errors.append(str(e)))
            page2.goto(args.url)
            page2.wait_for_selector('[data-testid="alert-DashboardTraffic"][data-state="firing"]')
            page2.wait_for_selector('[data-testid="rollout-phase"][data-phase="Progressing"]')
            rollout = page2.inner_text('[data-testid="rollout-phase"]')
            if "weight 25%" not in rollout or "step 1/3" not in rollout:
                fail("the rollout line lacks step or weight", shown=rollout)
            until(page2, "() => /^(running|PAUSED)/.test(document.getElementById('shadow-paused').textContent)",
                  what="the shadow panel to say whether shadow traffic runs")
            out["shadow"] = page2.inner_text("#shadow-paused")
            out["alerts_state"] = page2.inner_text('[data-testid="state-alerts"]')
            out["rollout"] = rollout
            if page_errors:
                fail("uncaught exceptions", page_errors=page_errors)
        finally:
            ctx.close()
    out["seconds"] = round(time.monotonic() - started, 2)
    print(json.dumps(out))


if __name__ == "__main__":
    try:
        main()
    except AssertionError as e:
        print(f"dashboard test failed: {e}", file=sys.stderr)
        sys.exit(1)
