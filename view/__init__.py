"""linewatch-view: the live inspection screen. Start reading here:

- app.py       routes: what each URL returns
- live.py      the poller and the per-browser coalescing behind /api/events
- review.py    the alert review queue and the alarms: newest alerts, verdicts and acknowledgements
               from the feedback stream
- store.py     every Redis read (results, counts, streams), and the one write (feedback)
- results.py   Redis fields -> JSON for the browser (pure, defensive)
- overlay.py   heatmap / mask / outline overlays (pure)
- auth.py      token or basic auth, and the security headers on every response
- server.py    the `linewatch-view` program: start-up, uvicorn in the foreground or in a thread
               (demo, tests, benchmark)
- settings.py  ViewSettings (LW_VIEW_*)
- static/      the three pages; common.js inserts Redis data as text only; wall.js: counts,
               alarms, station screens (?cameras=, ?layout=)
"""
