#!/usr/bin/env python3
"""Steady state at scale, against the real binary: what hale costs to run all day with N HTTP targets checked
every 10 s, with an empty store and with a generated week of history for the same targets.

Each run starts a cheap responder (asyncio, one process, 4 ports, `200` with an empty body to any request on
kept-alive connections, counting the requests it serves), writes a config of N targets (`svc-00001` ...,
each with its own path, `interval_s` 10, every other setting at its default, alerts on) and starts
`hale serve` on free ports with a database in a temp dir. After a warm-up (20 s from the first `/health`
answer) it measures a window (60 s), then stops hale with SIGTERM and reads the database file (read-only).
Per run it reports:

- hale's CPU over the window from /proc/PID/stat (utime+stime): % of one core and µs per check served;
- I/O over the window from /proc/PID/io, in MiB/s: rchar and wchar (read and written through system calls,
  the OS page cache included), read_bytes and write_bytes (what reached the disk);
- RSS from /proc/PID/status (VmRSS) every second: the window's first sample, last sample and peak;
- schedule drift: per target, the gap between two consecutive scheduled checks minus the interval, from the
  stored rows (`health_checks`: `service`, `checked_at_ms`, `source`; a table or a view): p99 and max of |drift|;
- scheduled checks stored in the window against the requests the responder served in it, and the same over
  the whole run (equal after a graceful stop);
- bytes per stored check: (database + WAL) / rows of `health_checks`, over the whole file, after hale stopped;
- one `/metrics` scrape: its size, and hale's CPU for it (utime+stime around 10 scrapes, / 10; also net of the
  steady rate measured in the window);
- with history: `wrk` for 10 s each on `GET /health`, `GET /` and `GET /slo` (requests/s, and / and /slo as a
  ratio of /health, and the body's bytes), after the scrapes, while hale keeps checking its targets; / and /slo
  both without and with `Accept-Encoding: gzip` (as browsers send it; --accept-gzip no|yes|both).

History is written by `hale history generate --services N --days 7 --interval-s I` before hale starts
(I: 300 s for N >= 5,000, 60 s below, or --history-interval-s). The generator takes up to 99,999 services;
with a build that takes fewer, the first ones it takes get history and the report says so. A history run is skipped when
it would leave less than --min-free-gb free on the temp dir's disk.

Generating a week takes minutes (about 10 at 10,000 targets). With --history-db-dir DIR, the week is kept in
DIR as `history-<N>x<days>d-<interval>s.db` (N as asked for) and each run copies it into its temp dir instead
of generating: the first run that finds no such file generates it and stores a copy there. hale only ever opens
the copy (it writes to its database). The generated week ends when it was written; an older copy still works
(the checks of the last hours are missing, as if hale had been stopped), but it is no longer "a week up to now":
delete the file to generate afresh.

Rate limits are off in the config written (`rate_limits.enabled: false`): the window itself makes no request
but the 10 scrapes, and wrk from one address would otherwise measure 429 answers (pass --rate-limits to keep
the default limits). wrk's non-2xx answers are reported either way.

    cargo build --release
    python3 benches/steady_state.py --hale target/release/hale --targets 1000,5000,10000,20000 --with-history \\
        --json steady.json
    # --history-only, --warmup-s 20, --window-s 60, --keep (leave the temp dirs), --tmp DIR,
    # --history-db DB (copy a week kept by an earlier --keep run instead of generating it), --accept-gzip both,
    # --history-db-dir DIR (reuse a generated week), --perf-dir DIR (perf record the window), --no-wrk,
    # --first-get-at-start (one GET / timed as soon as /health answers, then until the page's history shows),
    # --extra-config JSON (settings to add to the config written, e.g. '{"storage": {"cache_mb": 64}}')
    # --after-first-slo-pass (the warm-up starts once the SLO ledger's first pass is done: over a week it
    # evaluates every target afresh, for tens of seconds at 10,000 targets, and would fall in the window).
    # With HALE_LOG=info,hale::slo=debug (set by --after-first-slo-pass), the ledger's passes are reported.

One line per run as it finishes, then a markdown table and (--json) every figure with the per-second samples.
Figures and the build they came from: docs/benchmarks.md. Needs Python 3.11 (stdlib only) and wrk for history
runs (apt-get install -y wrk); Linux only (/proc)."""
import argparse, asyncio, json, math, multiprocessing, os, re, shutil, signal, socket, sqlite3, subprocess, sys
import tempfile, time, urllib.error, urllib.request

INTERVAL_S = 10
RESPONDER_PORTS = 4
CLK_TCK = os.sysconf("SC_CLK_TCK")
RESPONSE = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"
# What the status page says while its history is read in the background after start.
LOADING_NOTE = "still being read from the database"


class RunFailed(Exception):
    """A run that could not be measured; the message says why."""


# ---------------------------------------------------------------------------------------------- the responder
def responder_main(ports, served, ready):
    """Answers 200 to every request on `ports` (already bound sockets are not shared: it binds them itself)
    and adds the requests it served to `served` (a shared 64-bit counter)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops it; Ctrl-C must not kill it mid-count
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the parent's handler, inherited through fork

    class Http(asyncio.Protocol):
        def connection_made(self, transport):
            self.transport, self.buf = transport, b""

        def data_received(self, data):
            buf = self.buf + data
            n = buf.count(b"\r\n\r\n")  # probes are GETs without a body: one blank line ends each request
            if n:
                self.buf = buf[buf.rfind(b"\r\n\r\n") + 4:]
                self.transport.write(RESPONSE * n)
                served.value += n
            else:
                self.buf = buf

    async def serve():
        loop = asyncio.get_running_loop()
        servers = [await loop.create_server(Http, "127.0.0.1", p, backlog=4096, reuse_address=True) for p in ports]
        ready.set()
        await asyncio.gather(*(s.serve_forever() for s in servers))

    asyncio.run(serve())


def free_ports(n):
    socks = []
    for _ in range(n):
        s = socket.socket(); s.bind(("127.0.0.1", 0)); socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


# ---------------------------------------------------------------------------------------------- /proc readers
def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of proc(5))


def io_counters(pid):
    """/proc/PID/io: rchar, wchar (bytes through read/write calls, page cache or not), read_bytes and
    write_bytes (what reached the block layer); {} where the kernel does not allow reading it."""
    try:
        with open(f"/proc/{pid}/io") as f:
            return {k: int(v) for k, v in (line.split(": ") for line in f)}
    except OSError:
        return {}


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def service_name(i, n):
    """The names `hale history generate` gives: svc-001 below 1,000 services, svc-00001 from 1,000."""
    return f"svc-{i + 1:0{5 if n >= 1000 else 3}d}"


def get(url, timeout=60, headers=None):
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=timeout) as r:
        return r.read()


def pct(values, p):
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, max(0, math.ceil(p / 100 * len(values)) - 1))]


def df_free(path):
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


# ---------------------------------------------------------------------------------------------- one run
class Run:
    def __init__(self, args, n, history):
        self.args, self.n, self.history = args, n, history
        self.r = {"targets": n, "history": history}
        self.hale = self.responder = None
        self.dir = tempfile.mkdtemp(prefix=f"hale-steady-{n}-{'hist' if history else 'empty'}-", dir=args.tmp)
        self.db = os.path.join(self.dir, "hale.db")

    def log(self, msg):
        print(f"  [{self.n} {'history' if self.history else 'empty'} {time.strftime('%H:%M:%S')}] {msg}", flush=True)

    def run(self):
        try:
            if self.history:
                self.generate()
            self.start_responder()
            self.write_config()
            self.start_hale()
            self.measure()
            if self.history and not self.args.no_wrk:
                self.load()
            self.stop_hale()
            self.ledger_passes()
            self.analyse()
            return self.r
        finally:
            self.cleanup()

    # history
    def generate(self):
        a = self.args
        interval = a.history_interval_s or (300 if self.n >= 5000 else 60)
        if a.history_db:
            t0 = time.time()
            for suffix in ("", "-wal"):
                if os.path.exists(a.history_db + suffix):
                    shutil.copyfile(a.history_db + suffix, self.db + suffix)
            with sqlite3.connect(f"file:{self.db}?mode=ro", uri=True) as c:
                services = c.execute("SELECT COUNT(DISTINCT service) FROM health_checks").fetchone()[0]
            self.r.update(history_services=services, history_interval_s=interval, history_days=a.history_days,
                          history_db=a.history_db, history_generate_s=round(time.time() - t0, 1),
                          history_file_bytes=self.file_bytes())
            self.log(f"history: a copy of {a.history_db} ({services:,} services, "
                     f"{self.r['history_file_bytes'] / 2**20:,.0f} MiB)")
            return
        services = self.n
        kept = None
        if a.history_db_dir:
            os.makedirs(a.history_db_dir, exist_ok=True)
            kept = os.path.join(a.history_db_dir, f"history-{self.n}x{a.history_days}d-{interval}s.db")
            if os.path.exists(kept):
                need = os.path.getsize(kept)
                if df_free(self.dir) - need < a.min_free_gb * 2**30:
                    raise RunFailed(f"skipped: copying {kept} needs {need / 2**30:.1f} GiB, and --min-free-gb is "
                                    f"{a.min_free_gb}")
                return self.copy_history(kept, interval)
        need = services * (a.history_days * 86400 // interval) * 100  # about 96 bytes a check (docs/operations.md)
        free = df_free(self.dir)
        if free - need < a.min_free_gb * 2**30:
            raise RunFailed(f"skipped: a week of history for {services} targets needs about {need / 2**30:.1f} GiB, "
                            f"{free / 2**30:.1f} GiB free on {self.dir}, and --min-free-gb is {a.min_free_gb}")
        while True:
            self.log(f"history: {services} services x {a.history_days} days, one check every {interval} s "
                     f"({services * (a.history_days * 86400 // interval):,} checks)")
            t0 = time.time()
            p = subprocess.run([a.hale, "history", "generate", "--db", self.db, "--services", str(services),
                                "--days", str(a.history_days), "--interval-s", str(interval), "--seed", "1"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            cap = re.search(r"--services \S+ .*?(\d+)\.\.=(\d+)", p.stdout) or re.search(r"(\d+)\.\.=(\d+)", p.stdout)
            if p.returncode == 2 and services == self.n and "services" in p.stdout and cap:
                services = int(cap.group(2))
                if services < self.n:
                    self.log(f"the generator takes at most {services} services: history for the first {services} "
                             f"of {self.n} targets")
                    continue
            if p.returncode != 0:
                raise RunFailed(f"hale history generate exited {p.returncode}: {p.stdout.strip()[-600:]}")
            break
        self.r.update(history_services=services, history_interval_s=interval, history_days=a.history_days,
                      history_checks=services * (a.history_days * 86400 // interval),
                      history_generate_s=round(time.time() - t0, 1), history_file_bytes=self.file_bytes())
        self.log(f"history written in {self.r['history_generate_s']} s, {self.r['history_file_bytes'] / 2**20:,.0f} MiB")
        if kept:
            tmp = f"{kept}.{os.getpid()}.tmp"
            shutil.copyfile(self.db, tmp)  # the generator leaves no WAL behind: the file is the whole database
            os.replace(tmp, kept)
            self.log(f"history kept in {kept} for the next runs")

    def copy_history(self, kept, interval):
        t0 = time.time()
        shutil.copyfile(kept, self.db)
        conn = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True)
        try:
            services = conn.execute("SELECT count(*) FROM targets").fetchone()[0]
            checks = conn.execute("SELECT count(*) FROM checks").fetchone()[0]
        finally:
            conn.close()
        self.r.update(history_services=services, history_interval_s=interval, history_days=self.args.history_days,
                      history_checks=checks, history_reused=kept, history_copy_s=round(time.time() - t0, 1),
                      history_file_bytes=self.file_bytes())
        self.log(f"history copied from {kept} in {self.r['history_copy_s']} s: {services:,} services, "
                 f"{checks:,} checks, {self.r['history_file_bytes'] / 2**20:,.0f} MiB")

    # processes
    def start_responder(self):
        self.ports = free_ports(RESPONDER_PORTS)
        self.served = multiprocessing.Value("q", 0, lock=False)
        ready = multiprocessing.Event()
        self.responder = multiprocessing.Process(target=responder_main, args=(self.ports, self.served, ready), daemon=True)
        self.responder.start()
        if not ready.wait(10):
            raise RunFailed("the responder did not start within 10 s")

    def write_config(self):
        hp, mcp, boss = free_ports(3)
        self.base = f"http://127.0.0.1:{hp}"
        names = [service_name(i, self.n) for i in range(self.n)]
        cfg = {"listen": {"health_proxy": f"127.0.0.1:{hp}", "mcp_bridge": f"127.0.0.1:{mcp}",
                          "boss_api": f"127.0.0.1:{boss}"},
               "services": [{"name": s, "url": f"http://127.0.0.1:{self.ports[i % RESPONDER_PORTS]}/{s}",
                             "interval_s": INTERVAL_S} for i, s in enumerate(names)]}
        if not self.args.rate_limits:
            cfg["rate_limits"] = {"enabled": False}
        for key, value in json.loads(self.args.extra_config or "{}").items():
            cfg[key] = {**cfg.get(key, {}), **value} if isinstance(value, dict) else value
        self.config = os.path.join(self.dir, "config.json")
        with open(self.config, "w") as f:
            json.dump(cfg, f)
        p = subprocess.run([self.args.hale, "check-config", "--config", self.config], stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, text=True)
        if p.returncode != 0:
            raise RunFailed(f"hale check-config refused the config: {p.stderr.strip()}")

    def start_hale(self):
        self.logfile = open(os.path.join(self.dir, "hale.log"), "w")
        env = {**os.environ, "HALE_LOG_FORMAT": "json"}
        if self.args.after_first_slo_pass and "HALE_LOG" not in env:
            env["HALE_LOG"] = "info,hale::slo=debug"
        for k in ("HALE_CONFIG", "HALE_DB"):
            env.pop(k, None)
        self.started = time.time()
        self.hale = subprocess.Popen([self.args.hale, "serve", "--config", self.config, "--db", self.db],
                                     stdout=self.logfile, stderr=subprocess.STDOUT, env=env)
        deadline = self.started + self.args.ready_timeout_s
        while True:
            if self.hale.poll() is not None:
                raise RunFailed(f"hale exited {self.hale.returncode} before answering /health: {self.log_tail()}")
            try:
                get(self.base + "/health", timeout=2)
                break
            except urllib.error.HTTPError:
                break  # an answer (503 while the score is low) is an answer
            except OSError:
                pass
            if time.time() > deadline:
                raise RunFailed(f"hale did not answer /health within {self.args.ready_timeout_s} s: {self.log_tail()}")
            time.sleep(0.1)
        self.r["ready_s"] = round(time.time() - self.started, 2)
        self.log(f"hale (pid {self.hale.pid}) answers /health after {self.r['ready_s']} s")
        if self.args.first_get_at_start:
            self.first_get()

    def first_get(self):
        """One `GET /` as soon as hale answers /health, timed; then, while its answer says the history is still
        loading, one every 0.25 s until it does not (the status page's whole read, made in the background)."""
        t0 = time.time()
        body = get(self.base + "/", timeout=300).decode(errors="replace")
        loading = LOADING_NOTE in body
        self.r.update(first_get_s=round(time.time() - t0, 3), first_get_bytes=len(body),
                      first_get_loading=loading)
        while LOADING_NOTE in body:
            self.alive()
            time.sleep(0.25)
            body = get(self.base + "/", timeout=300).decode(errors="replace")
        self.r["page_history_s"] = round(time.time() - self.started, 2)
        self.log(f"first GET / {self.r['first_get_s']} s after /health answered ({len(body):,} bytes"
                 f"{', history loading' if loading else ''}); the page shows the history "
                 f"{self.r['page_history_s']} s after start")

    def log_tail(self):
        self.logfile.flush()
        with open(self.logfile.name, errors="replace") as f:
            return " | ".join(f.read().strip().splitlines()[-5:])[-1500:]

    def alive(self):
        if self.hale.poll() is not None:
            raise RunFailed(f"hale exited {self.hale.returncode} during the run: {self.log_tail()}")

    # the window
    def first_slo_pass(self):
        """Waits for the SLO ledger's first pass (its debug line in hale's log): over a week of history it
        evaluates every target afresh, a start-up cost that is not the steady state."""
        t0 = time.time()
        while True:
            self.alive()
            self.logfile.flush()
            with open(self.logfile.name, errors="replace") as f:
                if any("slo ledger pass" in line for line in f):
                    break
            if time.time() - t0 > self.args.ready_timeout_s:
                raise RunFailed(f"no SLO ledger pass within {self.args.ready_timeout_s} s (HALE_LOG must let "
                                f"hale::slo debug lines through): {self.log_tail()}")
            time.sleep(0.5)
        self.r["first_slo_pass_s"] = round(time.time() - self.started, 1)
        self.log(f"the SLO ledger's first pass is done, {self.r['first_slo_pass_s']} s after start")

    def measure(self):
        a, pid = self.args, self.hale.pid
        rss_all, samples = [], []
        if a.after_first_slo_pass:
            self.first_slo_pass()
        t_end_warm = time.time() + a.warmup_s
        while time.time() < t_end_warm:
            self.alive(); rss_all.append(rss_kb(pid)); time.sleep(1)
        self.log(f"warm-up done ({a.warmup_s} s), window of {a.window_s} s")
        perf = None
        if a.perf_dir:
            os.makedirs(a.perf_dir, exist_ok=True)
            out = os.path.join(a.perf_dir, f"perf-{self.n}-{'hist' if self.history else 'empty'}-{pid}.data")
            perf = subprocess.Popen(["perf", "record", "-F", "499", "-g", "-p", str(pid), "-o", out, "--",
                                     "sleep", str(a.window_s)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            self.r["perf_data"] = out
        t0, c0, s0, io0 = time.time(), cpu_ticks(pid), self.served.value, io_counters(pid)
        self.window_ms = (int(t0 * 1000), None)
        next_at = t0
        while True:
            self.alive()
            now = time.time()
            samples.append({"t": round(now - t0, 2), "rss_kb": rss_kb(pid), "cpu_ticks": cpu_ticks(pid) - c0,
                            "served": self.served.value - s0})
            if now - t0 >= a.window_s:
                break
            next_at += 1
            time.sleep(max(0.0, min(next_at, t0 + a.window_s) - time.time()))
        t1, c1, s1, io1 = time.time(), cpu_ticks(pid), self.served.value, io_counters(pid)
        self.window_ms = (int(t0 * 1000), int(t1 * 1000))
        if perf is not None:
            perf.wait()
        wall, cpu_s, served = t1 - t0, (c1 - c0) / CLK_TCK, s1 - s0
        rss = [s["rss_kb"] for s in samples]
        rss_all += rss
        self.r.update(window_s=round(wall, 2), cpu_s=round(cpu_s, 2), cpu_pct=round(100 * cpu_s / wall, 2),
                      served_window=served, us_per_check=round(cpu_s * 1e6 / served, 1) if served else None,
                      rss_first_mb=round(rss[0] / 1024, 1), rss_last_mb=round(rss[-1] / 1024, 1),
                      rss_peak_mb=round(max(rss) / 1024, 1), rss_peak_run_mb=round(max(rss_all) / 1024, 1),
                      samples=samples,
                      io_mb_per_s={k: round((io1[k] - io0[k]) / wall / 2**20, 2) for k in io0 if k in io1
                                   and k in ("rchar", "wchar", "read_bytes", "write_bytes")})
        self.log(f"CPU {self.r['cpu_pct']} % of a core, {self.r['us_per_check']} µs per check ({served:,} served); "
                 f"RSS {self.r['rss_first_mb']} -> {self.r['rss_last_mb']} MB, peak {self.r['rss_peak_mb']} MB; "
                 f"I/O MiB/s {self.r['io_mb_per_s']}")
        # /metrics: 10 scrapes, one after another
        c0, w0, sizes = cpu_ticks(pid), time.time(), []
        for _ in range(a.scrapes):
            sizes.append(len(get(self.base + "/metrics", timeout=120)))
        c1, w1 = cpu_ticks(pid), time.time()
        per = (c1 - c0) / CLK_TCK / a.scrapes
        steady = cpu_s / wall * (w1 - w0) / a.scrapes
        self.r.update(metrics_bytes=sizes[-1], metrics_cpu_ms=round(per * 1000, 1),
                      metrics_cpu_net_ms=round(max(0.0, per - steady) * 1000, 1),
                      metrics_wall_ms=round((w1 - w0) * 1000 / a.scrapes, 1))
        self.log(f"/metrics {sizes[-1]:,} bytes, {self.r['metrics_cpu_ms']} ms CPU per scrape "
                 f"({self.r['metrics_cpu_net_ms']} ms net of the steady rate), {self.r['metrics_wall_ms']} ms wall")

    def load(self):
        if not shutil.which(self.args.wrk):
            raise RunFailed(f"{self.args.wrk} not found: apt-get install -y wrk, or pass --wrk PATH")
        wrk = {}
        gzip = {"no": [False], "yes": [True], "both": [False, True]}[self.args.accept_gzip]
        runs = [("/health", False)] + [(path, z) for path in ("/", "/slo") for z in gzip]
        for path, z in runs:
            self.alive()
            key = path + (" gzip" if z else "")
            headers = {"Accept-Encoding": "gzip"} if z else {}
            t0 = time.time()  # one request alone first: its time says more than wrk when pages take seconds
            try:
                status, size = 200, len(get(self.base + path, timeout=300, headers=headers))
            except urllib.error.HTTPError as e:
                status, size = e.code, len(e.read())
            except OSError as e:
                status, size = f"no answer: {e}", 0
            single = {"single_s": round(time.time() - t0, 3), "bytes": size, "single_status": status}
            extra = ["-H", "Accept-Encoding: gzip"] if z else []
            p = subprocess.run([self.args.wrk, f"-t{self.args.wrk_threads}", f"-c{self.args.wrk_connections}",
                                f"-d{self.args.wrk_s}s", "--timeout", "30s", *extra, self.base + path],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            m = re.search(r"Requests/sec:\s+([\d.]+)", p.stdout)
            if p.returncode != 0 or not m:
                raise RunFailed(f"wrk on {path} failed ({p.returncode}): {p.stdout.strip()[-500:]}")
            self.settle()  # requests wrk left in flight finish before the next path is loaded
            non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", p.stdout)
            total = re.search(r"(\d+) requests in", p.stdout)
            lat = re.search(r"Latency\s+(\S+)", p.stdout)
            wrk[key] = {"rps": float(m.group(1)), "requests": int(total.group(1)) if total else None,
                        "non_2xx": int(non2xx.group(1)) if non2xx else 0, "latency_avg": lat.group(1) if lat else None,
                        "accept_gzip": z, **single}
        h = wrk["/health"]["rps"]
        for key in wrk:
            if key != "/health":
                wrk[key]["ratio_to_health"] = float(f"{wrk[key]['rps'] / h:.3g}") if h else None
        self.r["wrk"] = wrk
        self.log("wrk: " + ", ".join(f"{p} {v['rps']:,.1f} req/s (one alone {v['single_status']} in {v['single_s']} s, {v['bytes']:,} bytes)"
                                     + (f" ({v['non_2xx']} non-2xx)" if v["non_2xx"] else "")
                                     for p, v in wrk.items()))

    def settle(self, most_s=60):
        """Waits (up to `most_s`) until hale's CPU is back near the window's steady rate."""
        steady = self.r["cpu_pct"]
        for _ in range(most_s):
            c0 = cpu_ticks(self.hale.pid); time.sleep(1)
            if 100 * (cpu_ticks(self.hale.pid) - c0) / CLK_TCK <= max(1.5 * steady, steady + 10):
                return

    def stop_hale(self):
        t0 = time.time()
        self.hale.send_signal(signal.SIGTERM)
        try:
            rc = self.hale.wait(self.args.stop_timeout_s)
        except subprocess.TimeoutExpired:
            self.hale.kill(); self.hale.wait()
            raise RunFailed(f"hale did not exit within {self.args.stop_timeout_s} s of SIGTERM (killed)")
        self.r["stop_s"] = round(time.time() - t0, 2)
        self.served_total = self.served.value
        if rc != 0:
            raise RunFailed(f"hale exited {rc} after SIGTERM: {self.log_tail()}")
        self.log(f"hale stopped in {self.r['stop_s']} s")

    def ledger_passes(self):
        """The SLO ledger's passes from hale's log: logged at debug (`HALE_LOG=info,hale::slo=debug`)."""
        self.logfile.flush()
        passes = []
        with open(self.logfile.name, errors="replace") as f:
            for line in f:
                if "slo ledger pass" not in line:
                    continue
                try:
                    entry = json.loads(line)
                    fields = entry.get("fields", entry)  # hale's JSON lines carry the fields at the top
                except ValueError:
                    continue
                passes.append({k: fields.get(k) for k in ("elapsed_ms", "rebuilt", "advanced", "checks_read")})
        if passes:
            self.r["ledger_passes"] = passes
            self.log("slo ledger passes (elapsed ms, rebuilt, advanced, checks read): " +
                     ", ".join(f"{p['elapsed_ms']} {p['rebuilt']} {p['advanced']} {p['checks_read']}" for p in passes))

    # the stored rows
    def file_bytes(self):
        return sum(os.path.getsize(self.db + sfx) for sfx in ("", "-wal") if os.path.exists(self.db + sfx))

    def analyse(self):
        size = self.file_bytes()  # before sqlite3 opens the file
        conn = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True)
        try:
            q = lambda sql, *p: conn.execute(sql, p).fetchone()[0]
            lo, hi = self.window_ms
            start_ms = int(self.started * 1000)
            rows_total = q("SELECT count(*) FROM health_checks")
            window_rows = q("SELECT count(*) FROM health_checks WHERE source = 'monitor' AND checked_at_ms >= ? "
                            "AND checked_at_ms < ?", lo, hi)
            run_rows = q("SELECT count(*) FROM health_checks WHERE checked_at_ms >= ?", start_ms)
            drifts, last = [], {}
            for service, at in conn.execute("SELECT service, checked_at_ms FROM health_checks WHERE source = 'monitor' "
                                            "AND checked_at_ms >= ? AND checked_at_ms < ? ORDER BY service, checked_at_ms",
                                            (lo, hi)):
                prev = last.get(service)
                if prev is not None:
                    drifts.append(abs(at - prev - INTERVAL_S * 1000))
                last[service] = at
        finally:
            conn.close()
        self.r.update(rows_window=window_rows, rows_run=run_rows, served_run=self.served_total, rows_file=rows_total,
                      file_bytes=size, bytes_per_check=round(size / rows_total, 1) if rows_total else None,
                      drift_p50_ms=pct(drifts, 50), drift_p99_ms=pct(drifts, 99), drift_max_ms=max(drifts, default=None),
                      drift_gaps=len(drifts), targets_seen=len(last))
        self.log(f"stored {window_rows:,} scheduled checks in the window ({self.r['served_window']:,} served), "
                 f"{run_rows:,} in the run ({self.served_total:,} served); drift p99 {self.r['drift_p99_ms']} ms, "
                 f"max {self.r['drift_max_ms']} ms; {size / 2**20:,.1f} MiB, {self.r['bytes_per_check']} bytes per check "
                 f"({rows_total:,} rows)")

    def cleanup(self):
        if self.hale is not None and self.hale.poll() is None:
            self.hale.terminate()
            try:
                self.hale.wait(30)
            except subprocess.TimeoutExpired:
                self.hale.kill(); self.hale.wait()
        if self.responder is not None and self.responder.is_alive():
            self.responder.terminate(); self.responder.join(10)
            if self.responder.is_alive():
                self.responder.kill(); self.responder.join()
        if getattr(self, "logfile", None):
            self.logfile.close()
        if self.args.keep:
            print(f"  kept {self.dir}", flush=True)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)


# ---------------------------------------------------------------------------------------------- the report
def fmt(v, spec=",", none="-"):
    return none if v is None else format(v, spec)


def line(r):
    if "error" in r:
        return f"{r['targets']:>6} {'history' if r['history'] else 'empty  '}: FAILED: {r['error']}"
    s = (f"{r['targets']:>6} {'history' if r['history'] else 'empty  '}: CPU {r['cpu_pct']} % ({r['us_per_check']} µs/check), "
         f"RSS {r['rss_first_mb']}->{r['rss_last_mb']} MB (peak {r['rss_peak_mb']}), drift p99 {r['drift_p99_ms']} ms, "
         f"stored {r['rows_window']:,}/{r['served_window']:,} (run {r['rows_run']:,}/{r['served_run']:,}), "
         f"{r['bytes_per_check']} B/check, /metrics {r['metrics_bytes'] / 1e6:.2f} MB {r['metrics_cpu_ms']} ms CPU")
    if "wrk" in r:
        w = r["wrk"]
        s += f", wrk /health {w['/health']['rps']:,.0f}" + "".join(
            f" {k} {v['rps']:,.1f} ({v['ratio_to_health']}x, {v['bytes']:,} B)" for k, v in w.items() if k != "/health") + " req/s"
    return s


def table(results):
    out = ["| targets | store | hale CPU, % of one core | µs per check | RSS first → last of window (peak) | "
           "drift p99 (max) | scheduled checks stored / served, window | bytes per stored check | "
           "`/metrics`: size, CPU per scrape (net) | wrk req/s: `/health`; `/`, `/slo` (ratio, body bytes), also with gzip |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        store = "empty" if not r["history"] else (
            f"week, {fmt(r.get('history_services'))} svc @ {fmt(r.get('history_interval_s'))} s")
        if "error" in r:
            out.append(f"| {r['targets']:,} | {store} | failed: {r['error']} |||||||| |")
            continue
        w = r.get("wrk")
        wrk = (f"{w['/health']['rps']:,.0f}; " + "; ".join(
            f"{k} {v['rps']:,.1f} ({v['ratio_to_health']}x, {v['bytes']:,} B, one alone {v.get('single_s')} s)"
            for k, v in w.items() if k != "/health")) if w else ""
        out.append(f"| {r['targets']:,} | {store} | {r['cpu_pct']} % | {r['us_per_check']} | "
                   f"{r['rss_first_mb']} → {r['rss_last_mb']} MB ({r['rss_peak_mb']}) | "
                   f"{r['drift_p99_ms']} ms ({r['drift_max_ms']}) | {r['rows_window']:,} / {r['served_window']:,} | "
                   f"{r['bytes_per_check']} | {r['metrics_bytes'] / 1e6:.2f} MB, {r['metrics_cpu_ms']} ms "
                   f"({r['metrics_cpu_net_ms']}) | {wrk} |")
    return "\n".join(out)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--hale", required=True, help="the hale binary (a release build for figures)")
    p.add_argument("--targets", default="1000,5000,10000,20000", help="comma-separated N (default %(default)s)")
    p.add_argument("--with-history", action="store_true", help="also run each N over a generated week of history")
    p.add_argument("--history-only", action="store_true", help="only the runs with history")
    p.add_argument("--history-days", type=int, default=7)
    p.add_argument("--history-interval-s", type=int, default=0,
                   help="seconds between generated checks (default: 300 for N >= 5000, else 60)")
    p.add_argument("--history-db-dir", default=None,
                   help="keep generated weeks here (history-<N>x<days>d-<interval>s.db) and copy them per run")
    p.add_argument("--min-free-gb", type=float, default=20, help="skip a history run that would leave less free")
    p.add_argument("--warmup-s", type=float, default=20)
    p.add_argument("--after-first-slo-pass", action="store_true",
                   help="start the warm-up once the SLO ledger's first pass is done (read from hale's debug log)")
    p.add_argument("--window-s", type=float, default=60)
    p.add_argument("--scrapes", type=int, default=10)
    p.add_argument("--ready-timeout-s", type=float, default=600)
    p.add_argument("--stop-timeout-s", type=float, default=180)
    p.add_argument("--rate-limits", action="store_true", help="keep the default rate limits (off otherwise)")
    p.add_argument("--extra-config", default=None,
                   help='JSON merged into the config written, a level deep, e.g. \'{"storage": {"cache_mb": 64}}\'')
    p.add_argument("--no-wrk", action="store_true", help="skip the wrk runs of the history runs")
    p.add_argument("--first-get-at-start", action="store_true",
                   help="one GET / as soon as /health answers, timed, then GET / every 0.25 s until the page no "
                        "longer says its history is loading")
    p.add_argument("--wrk", default="wrk")
    p.add_argument("--wrk-s", type=int, default=10)
    p.add_argument("--wrk-threads", type=int, default=1)
    p.add_argument("--wrk-connections", type=int, default=8)
    p.add_argument("--accept-gzip", choices=("no", "yes", "both"), default="both",
                   help="wrk on / and /slo without and/or with `Accept-Encoding: gzip`, as browsers send it "
                        "(default %(default)s; /health is never compressed)")
    p.add_argument("--history-db", help="copy this database (a generated week for the same N, from an earlier run "
                                        "with --keep) instead of generating the history")
    p.add_argument("--json", help="write every figure (and the per-second samples) to this file")
    p.add_argument("--tmp", default=None, help="where the temp dirs go (default: the system's)")
    p.add_argument("--perf-dir", default=None,
                   help="record the window with `perf record -F 499 -g -p PID` into this folder")
    p.add_argument("--keep", action="store_true", help="leave each run's temp dir (config, log, database)")
    a = p.parse_args()
    if not os.access(a.hale, os.X_OK):
        p.error(f"--hale {a.hale} is not an executable file")
    a.hale = os.path.abspath(a.hale)
    try:
        ns = [int(x.replace("_", "")) for x in a.targets.split(",") if x.strip()]
    except ValueError:
        p.error(f"--targets {a.targets!r} is not a comma-separated list of numbers")
    modes = [True] if a.history_only else ([False, True] if a.with_history else [False])
    version = subprocess.run([a.hale, "--version"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True).stdout.strip()
    print(f"{version} ({a.hale}); {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}; "
          f"targets every {INTERVAL_S} s, warm-up {a.warmup_s} s, window {a.window_s} s", flush=True)

    def on_term(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_term)
    results, failed = [], False
    try:
        for n in ns:
            for history in modes:
                print(f"run: {n} targets, {'a week of history' if history else 'empty store'}", flush=True)
                try:
                    r = Run(a, n, history).run()
                except (RunFailed, OSError, sqlite3.Error) as e:
                    r, failed = {"targets": n, "history": history, "error": str(e)}, True
                r["load_average"] = round(os.getloadavg()[0], 2)
                results.append(r)
                print(line(r), flush=True)
    except KeyboardInterrupt:
        print("interrupted: hale and the responder were stopped", file=sys.stderr, flush=True)
        failed = True
    print("\n" + table(results), flush=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"hale": version, "binary": a.hale, "interval_s": INTERVAL_S, "warmup_s": a.warmup_s,
                       "window_s": a.window_s, "rate_limits": a.rate_limits, "runs": results}, f, indent=1)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
