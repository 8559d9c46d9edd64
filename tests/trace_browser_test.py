#!/usr/bin/env python3
"""The performance report and the timeline of a real run, checked in a real browser.

    trace_browser_test.py <report_demo binary> <start method>

Runs examples/report_demo (3 workers; 120 `simulate` tasks of which 5 raise, 40 `checksum`,
one `flaky` task that kills its worker once and succeeds on the retry) with MP_TRACE and
MP_REPORT set, then:

  - loads the timeline with json.load: one named track per worker process and one for the
    supervisor, every task a complete ("X") event with a duration on its worker's track, the
    expected counts of tasks, exceptions and deaths;
  - opens the report in Debian's headless Chromium (--dump-dom: the DOM after the page's
    script ran) and checks what the script wrote: one track per worker (the same pids as the
    timeline), as many task slices per track as the timeline has tasks on that worker, the
    failures and the retry listed;
  - takes a screenshot (--screenshot), which must be a PNG.

Exits 0 when everything holds; prints what did not, and exits 1, otherwise.
"""

import collections
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

TASKS = 120 + 40 + 2  # simulate, checksum, flaky twice (died, then ok)
EXCEPTIONS = 5
DEATHS = 1
WORKERS = 4  # 3, and the replacement of the one flaky killed

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
    return cond


def chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    sys.exit("trace_browser_test: chromium not found: run scripts/install-deps.sh")


def browser(args, url, tmp):
    cmd = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
           "--no-first-run", "--user-data-dir=" + os.path.join(tmp, "profile")] + args + [url]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=90, check=False)


def check_timeline(path):
    with open(path, encoding="utf-8") as f:
        trace = json.load(f)
    events = trace["traceEvents"]
    names = {e["pid"]: e["args"]["name"] for e in events
             if e["ph"] == "M" and e["name"] == "process_name"}
    sup = [pid for pid, n in names.items() if n.startswith("supervisor")]
    workers = [pid for pid, n in names.items() if n.startswith("PoolWorker-")]
    check(len(sup) == 1, f"one supervisor track, got {len(sup)}")
    check(len(workers) == WORKERS, f"{WORKERS} worker tracks, got {len(workers)}: {names}")
    tasks = [e for e in events if e.get("cat") == "task"]
    check(len(tasks) == TASKS, f"{TASKS} task events, got {len(tasks)}")
    for e in tasks:
        if not (e["ph"] == "X" and e["dur"] >= 0 and e["pid"] in workers and e["tid"] == e["pid"]):
            check(False, f"a task event not complete on a worker's track: {e}")
            break
    outcomes = collections.Counter(e["args"]["outcome"] for e in tasks)
    check(outcomes["exception"] == EXCEPTIONS, f"{EXCEPTIONS} exceptions, got {outcomes}")
    check(outcomes["died"] == DEATHS, f"{DEATHS} death, got {outcomes}")
    fns = collections.Counter(e["name"] for e in tasks)
    check(fns == {"simulate": 120, "checksum": 40, "flaky": 2}, f"task functions: {fns}")
    check(sum(1 for e in events if e.get("cat") == "retry") == 1, "one retry event")
    return collections.Counter(e["pid"] for e in tasks), workers


def attrs(tag_text):
    return dict(re.findall(r'([\w-]+)="([^"]*)"', tag_text))


def check_report(path, per_pid, workers, tmp):
    url = "file://" + path
    run = browser(["--dump-dom"], url, tmp)
    check(run.returncode == 0, f"chromium --dump-dom exited {run.returncode}: {run.stderr[-2000:]}")
    dom = run.stdout
    check('data-rendered="1"' in dom, "the page's script ran to its end (body[data-rendered])")
    summary = re.search(r'<div id="summary"[^>]*>', dom)
    if check(summary, "the summary element"):
        s = attrs(summary.group(0))
        check(s.get("data-workers") == str(WORKERS), f"summary workers: {s}")
        check(s.get("data-tasks") == str(TASKS), f"summary tasks: {s}")
        check(s.get("data-failures") == str(EXCEPTIONS + DEATHS), f"summary failures: {s}")
        check(s.get("data-retries") == "1", f"summary retries: {s}")
    tracks = [attrs(t) for t in re.findall(r'<div class="track"[^>]*>', dom)]
    check(len(tracks) == len(workers), f"one track per worker: {len(tracks)} for {workers}")
    for t in tracks:
        pid = int(t.get("data-pid", "0"))
        check(pid in workers, f"a track of a process that is not a worker: {t}")
        check(int(t.get("data-slices", "-1")) == per_pid.get(pid, 0),
              f"track {pid}: {t.get('data-slices')} slices, the timeline has {per_pid.get(pid, 0)}")
    check(sum(int(t.get("data-slices", "0")) for t in tracks) == TASKS, "task slices in all")
    listed = re.search(r'<div id="failures"[^>]*>', dom)
    check(listed and attrs(listed.group(0)).get("data-count") == str(EXCEPTIONS + DEATHS),
          "failures count")
    rows = collections.Counter(re.findall(r'<tr class="fail" data-kind="(\w+)"', dom))
    check(rows == {"exception": EXCEPTIONS, "died": DEATHS}, f"failure rows: {rows}")
    check(len(re.findall(r'data-kind="retry"', dom)) == 1, "the retry listed")

    png = os.path.join(tmp, "report.png")
    run = browser(["--window-size=1100,1400", "--screenshot=" + png], url, tmp)
    ok = os.path.exists(png) and open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    check(ok, f"a PNG screenshot (chromium exited {run.returncode})")


def main():
    demo, method = sys.argv[1], sys.argv[2]
    with tempfile.TemporaryDirectory(prefix="mp-trace-browser-") as tmp:
        trace, report = os.path.join(tmp, "trace.json"), os.path.join(tmp, "report.html")
        env = dict(os.environ, MP_TRACE=trace, MP_REPORT=report)
        run = subprocess.run([demo, method], env=env, capture_output=True, text=True,
                             timeout=120, check=False)
        if not check(run.returncode == 0, f"report_demo {method} exited {run.returncode}: "
                     f"{run.stdout}{run.stderr}"):
            pass
        elif check(os.path.exists(trace) and os.path.exists(report), "both files written"):
            per_pid, workers = check_timeline(trace)
            check_report(report, per_pid, workers, tmp)
    for f in failures:
        print("FAIL:", f)
    print(f"trace_browser_test {method}: {'ok' if not failures else 'FAILED'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
