#!/usr/bin/env python3
"""A receiver that never answers, against the real binary: 40 targets flapping every second, an alert at
every failure sent to a webhook that accepts connections and never answers (delivery timeout 300 s). Runs
hale for SECS seconds under an open-file limit of NOFILE, then adds 3,000 pending deliveries and restarts it
for 15 s with healthy targets. Prints, per run: the first /health answer, hale's most open descriptors and
resident memory (from /proc), /health requests left unanswered, connections the webhook accepted, checks
stored (SELECT count(*)) against requests the targets served, and deliveries by state.

    cargo build && python3 benches/delivery_flood.py target/debug/hale 90 20000

Figures and the build they came from: docs/benchmarks.md. Needs prlimit (util-linux)."""
import json, os, socket, sqlite3, subprocess, sys, threading, time, urllib.request
from http.server import ThreadingHTTPServer, BaseHTTPRequestHandler

HALE = sys.argv[1]; SECS = int(sys.argv[2]); LIMIT = sys.argv[3]
served = [0]; steady = [False]
class H(BaseHTTPRequestHandler):
    def do_GET(self):
        served[0] += 1
        n = int(self.path[2:] or 0)
        down = (not steady[0]) and (int(time.time()) + n) % 2 == 0
        self.send_response(503 if down else 200); self.send_header("content-length", "0"); self.send_header("connection", "close"); self.end_headers()
    def log_message(self, *a): pass
srv = ThreadingHTTPServer(("127.0.0.1", 0), H); threading.Thread(target=srv.serve_forever, daemon=True).start()
tport = srv.server_address[1]
hang = socket.socket(); hang.bind(("127.0.0.1", 0)); hang.listen(4096); held = []; accepted = [0]
def acc():
    while True:
        c, _ = hang.accept(); held.append(c); accepted[0] += 1
threading.Thread(target=acc, daemon=True).start()
import tempfile
d = tempfile.mkdtemp(prefix="hale-delivery-flood-")
db = d + "/hale.db"
cfg = {"listen": {"health_proxy": "127.0.0.1:0", "mcp_bridge": "127.0.0.1:0", "boss_api": "127.0.0.1:0"},
       "http": {"workers": 1}, "rate_limits": {"enabled": False},
       "services": [{"name": f"t{i}", "url": f"http://127.0.0.1:{tport}/t{i}", "interval_s": 1, "timeout_ms": 900} for i in range(40)],
       "alerts": {"resolve_after_successes": 1, "rules": [{"name": "down", "when": {"consecutive_failures": {"count": 1}}, "level": "critical", "cooldown_s": 0, "channels": ["webhook"]}],
                  "channels": {"webhook": {"url": f"http://127.0.0.1:{hang.getsockname()[1]}/hook"}, "delivery": {"timeout_s": 300}}}}
json.dump(cfg, open(d + "/config.json", "w"))
def run(secs, label):
    p = subprocess.Popen(["prlimit", f"--nofile={LIMIT}:{LIMIT}", HALE, "serve", "--config", d + "/config.json", "--db", db],
                         stdout=open(d + "/" + label[:5] + ".log", "w"), stderr=subprocess.STDOUT, env={**os.environ, "HALE_LOG_FORMAT": "json"}, text=True)
    t0 = time.time(); port = None
    while port is None:
        time.sleep(0.05)
        for line in open(d + "/" + label[:5] + ".log"):
            if '"listening"' in line and '"health-proxy"' in line:
                port = json.loads(line)["addr"].split(":")[1]; break
    
    first = None; maxfd = 0; maxrss = 0; fails = 0; asked = 0
    while time.time() - t0 < secs:
        try:
            maxfd = max(maxfd, len(os.listdir(f"/proc/{p.pid}/fd")))
            rss = int([l for l in open(f"/proc/{p.pid}/status") if l.startswith("VmRSS")][0].split()[1]); maxrss = max(maxrss, rss)
        except Exception: pass
        asked += 1
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1).read()
            if first is None: first = time.time() - t0
        except urllib.error.HTTPError:
            if first is None: first = time.time() - t0
        except Exception: fails += 1
        time.sleep(0.5)
    p.terminate()
    try: p.wait(40)
    except Exception: print('did not exit within 40 s after SIGTERM; pid', p.pid, flush=True); raise
    c = sqlite3.connect(db)
    q = lambda s: c.execute(s).fetchone()[0]
    P, S, D = ["select count(*) from alert_deliveries where state='%s'" % x for x in ('pending', 'superseded', 'dead')]
    print(f"{label}: {secs}s, nofile {LIMIT}: first /health answer {first:.2f}s, max fds {maxfd}, max rss {maxrss} kB, /health unanswered {fails}/{asked}, "
          f"webhook connections {accepted[0]}, checks stored {q('select count(*) from health_checks')} of {served[0]} served, "
          f"deliveries pending {q(P)}, superseded {q(S)}, "
          f"dead {q(D)}, total {q('select count(*) from alert_deliveries')}", flush=True)
    c.close()
run(SECS, "flapping run")
steady[0] = True
c = sqlite3.connect(db)
c.execute("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 3000) INSERT INTO alert_deliveries (alert_event_id, channel, state, attempts, created_at_ms, payload) SELECT NULL, 'webhook', 'pending', 0, %d + i, '{}' FROM n" % int(time.time() * 1000))
c.commit(); c.close()
accepted[0] = 0
run(15, "restart over +3000 pending rows, healthy targets")
