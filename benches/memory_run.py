#!/usr/bin/env python3
"""Memory of one `hale serve` run, for finding what holds it: N targets every 10 s against steady_state.py's
responder and config (rate limits off), over a COPY of a history database (--db-src, e.g. one written by
`hale history generate`) or an empty store, optionally under heaptrack. Samples RSS (VmRSS) and CPU every
second for --seconds, then prints RSS at 1 s, at 20 s, last and peak, CPU over the last 60 s, every tenth
sample, /proc/PID/smaps_rollup and the status lines. --kill stops hale with SIGKILL, so heaptrack's
"leaked" is what was live at that moment (after SIGTERM hale frees everything); --trim-at S calls glibc's
malloc_trim(0) in hale through gdb at S seconds and prints RSS before and after (is it free memory kept by
the allocator?); --env K=V sets a variable for hale (MALLOC_ARENA_MAX=2). The log is in --out/hale.log,
with the SLO ledger's pass lines (HALE_LOG info,hale::slo=debug).

    python3 benches/memory_run.py --hale target/release/hale --db-src history.db --targets 10000 --seconds 200 --out /tmp/m
    python3 benches/memory_run.py --hale target/release/hale --db-src history.db --targets 10000 --seconds 150 \
        --heaptrack --kill --out /tmp/h && heaptrack_print -f /tmp/h/heap.zst --print-leaks=1 | less

Linux only (/proc); heaptrack and gdb from Debian's packages when asked for."""
import argparse, json, multiprocessing, os, shutil, signal, subprocess, sys, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import steady_state as ss

p = argparse.ArgumentParser()
p.add_argument("--hale", required=True)
p.add_argument("--db-src")
p.add_argument("--targets", type=int, default=10000)
p.add_argument("--seconds", type=int, default=180)
p.add_argument("--heaptrack", action="store_true")
p.add_argument("--out", required=True)
p.add_argument("--kill", action="store_true", help="SIGKILL at the end (heaptrack: leaked = live)")
p.add_argument("--trim-at", type=int, default=0)
p.add_argument("--env", action="append", default=[])
p.add_argument("--log", default="info,hale::slo=debug")
a = p.parse_args()
os.makedirs(a.out, exist_ok=True)
db = os.path.join(a.out, "hale.db")
for sfx in ("", "-wal", "-shm"):
    if os.path.exists(db + sfx):
        os.remove(db + sfx)
if a.db_src:
    t0 = time.time(); shutil.copyfile(a.db_src, db); print(f"copied db in {time.time()-t0:.1f}s", flush=True)
ports = ss.free_ports(ss.RESPONDER_PORTS)
served = multiprocessing.Value("q", 0, lock=False)
ready = multiprocessing.Event()
resp = multiprocessing.Process(target=ss.responder_main, args=(ports, served, ready), daemon=True)
resp.start(); ready.wait(10)
hp, mcp, boss = ss.free_ports(3)
names = [ss.service_name(i, a.targets) for i in range(a.targets)]
cfg = {"listen": {"health_proxy": f"127.0.0.1:{hp}", "mcp_bridge": f"127.0.0.1:{mcp}", "boss_api": f"127.0.0.1:{boss}"},
       "services": [{"name": s, "url": f"http://127.0.0.1:{ports[i % 4]}/{s}", "interval_s": 10} for i, s in enumerate(names)],
       "rate_limits": {"enabled": False}}
conf = os.path.join(a.out, "config.json")
json.dump(cfg, open(conf, "w"))
env = {**os.environ, "HALE_LOG_FORMAT": "json", "HALE_LOG": a.log, **dict(e.split("=", 1) for e in a.env)}
cmd = [a.hale, "serve", "--config", conf, "--db", db]
if a.heaptrack:
    cmd = ["heaptrack", "-o", os.path.join(a.out, "heap")] + cmd
logf = open(os.path.join(a.out, "hale.log"), "w")
proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, env=env, start_new_session=True)
def find_pid():
    if not a.heaptrack:
        return proc.pid
    for _ in range(100):
        out = subprocess.run(["pgrep", "-s", str(proc.pid), "-f", a.hale + " serve"], capture_output=True, text=True).stdout.split()
        out = [o for o in out if int(o) != proc.pid]
        if out:
            return int(out[0])
        time.sleep(0.1)
    raise SystemExit("no hale pid")
pid = find_pid()
print(f"hale pid {pid}", flush=True)
t0 = time.time(); samples = []; cpus = []
while time.time() - t0 < a.seconds:
    if proc.poll() is not None:
        print("hale exited", proc.returncode); break
    try:
        samples.append((round(time.time() - t0), ss.rss_kb(pid))); cpus.append(ss.cpu_ticks(pid))
    except FileNotFoundError:
        break
    if a.trim_at and samples[-1][0] == a.trim_at:
        before = ss.rss_kb(pid)
        r = subprocess.run(["gdb", "-p", str(pid), "-batch", "-ex", "call (int)malloc_trim(0)"], capture_output=True, text=True)
        print(f"malloc_trim at {a.trim_at}s: RSS {before/1024:.1f} -> {ss.rss_kb(pid)/1024:.1f} MB ({[l for l in r.stdout.splitlines() if l.startswith('$')]})", flush=True)
    time.sleep(1)
smaps = open(f"/proc/{pid}/smaps_rollup").read() if proc.poll() is None else ""
status = open(f"/proc/{pid}/status").read() if proc.poll() is None else ""
os.kill(pid, signal.SIGKILL if a.kill else signal.SIGTERM)
try:
    proc.wait(180)
except subprocess.TimeoutExpired:
    os.kill(pid, signal.SIGKILL); proc.wait()
resp.terminate(); resp.join(5)
rss = [r for _, r in samples]
print(f"RSS first {rss[0]/1024:.1f} MB at 1s, at 20s {rss[min(20,len(rss)-1)]/1024:.1f}, last {rss[-1]/1024:.1f} MB, peak {max(rss)/1024:.1f} MB; served {served.value}")
w = min(60, len(cpus) - 1)
print(f"CPU over the last {w} s: {100 * (cpus[-1] - cpus[-1 - w]) / ss.CLK_TCK / w:.1f} % of a core; over the run {100 * cpus[-1] / ss.CLK_TCK / len(cpus):.1f} %")
print("every 10 s:", " ".join(f"{r/1024:.0f}" for _, r in samples[::10]))
print(smaps)
print("\n".join(l for l in status.splitlines() if l.startswith(("VmHWM", "VmRSS", "RssAnon", "RssFile", "Threads"))))
json.dump({"t0": t0, "samples": samples}, open(os.path.join(a.out, "rss.json"), "w"))
