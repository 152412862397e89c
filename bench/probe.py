"""The trust probe re-run against a running server: PostgreSQL, production settings, gunicorn, one worker cluster.

    python -m bench.probe setup                  # database genesis_probe afresh, migrate, admin, the demo, tokens
    python -m bench.probe run [--stages inputs,load,queries,kill] [--duration 30] [--connections 50]

``run`` starts gunicorn (4 sync workers, ``--timeout 60``) and one ``manage.py qcluster`` on the database made by
``setup`` with ``DEBUG=0``, a ``SECRET_KEY`` and ``ALLOWED_HOSTS=127.0.0.1`` (HTTPS redirect and secure cookies off:
the probe speaks plain HTTP on loopback, where a TLS proxy would stand in production), waits for the demo mission
to settle, runs the stages, then stops both by their pids. Results go to ``var/probe/results.json`` and stdout;
docs/probe.md is written by hand from them.

Stages:
- ``inputs``: hostile inputs, 8 times each (the first ones may meet a web worker's first request), time to the
  answer and its status: a ~1 KB "billion laughs" blueprint (as staff, who may import, and as the demo's Mission
  Owner, who may not), a JSON body nested 5,000 levels, a multipart body claiming 2 GB (raw socket, only its first
  bytes sent), ``?task=%00`` on the history page.
- ``load``: wrk (Debian's package), 50 connections for ``--duration`` seconds on ``/api/v1/missions/`` (token, list
  cache on as configured, then off) and on the demo mission's cockpit (session cookie), after a one-connection run
  that gives one request's service time; p50/p90/p95/p99 from wrk's own histogram (a Lua ``done`` hook), and
  the CPU that gunicorn, PostgreSQL, the cluster and wrk used meanwhile, from /proc.
- ``queries``: the queries one cockpit page and one API list page make, counted in-process (Django's test client
  on the same database and settings) with their in-process render time.
- ``kill``: a chain of 8 noop tasks of 0.5 s each, launched on a fresh cluster, and 1.5 s later one process of
  the cluster SIGKILLed (the worker running the task, the idle worker, the monitor, the pusher, the sentinel) or
  every database connection of the cluster terminated; time to the mission's completion against a run with no
  fault, runs lost, and whether the cluster restarted itself. The cluster uses production timings (lease 30 s,
  sweep 5 s, stall watchdog 10 s).

Needs PostgreSQL at 127.0.0.1:5432 (trust auth); the load stage uses ``wrk`` (``apt-get install wrk``) when it is
installed, otherwise ``bench.httpload`` (the same figures, from a Python client). ``GENESIS_PROBE_DB`` and
``GENESIS_PROBE_PORT`` name another database and port (default ``genesis_probe``, 8791).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.engine import pids_where

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
# Another checkout probing at the same time names its own database and port.
DB = os.environ.get("GENESIS_PROBE_DB", "genesis_probe")
VAR = ROOT / "var" / "probe"
PORT = int(os.environ.get("GENESIS_PROBE_PORT", "8791"))
PASSWORD = "probe-password-1-not-for-production"  # noqa: S105 (a throw-away probe database)
DEMO = "Healthcare Data Pipeline (demo)"
CLK = os.sysconf("SC_CLK_TCK")


def env(**extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "genesis.settings",
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{DB}",
        "DEBUG": "0",
        "SECRET_KEY": "probe-only-secret-key-not-for-production-0123456789abcdef",
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_SSL_REDIRECT": "0",
        "SESSION_COOKIE_SECURE": "0",
        "CSRF_COOKIE_SECURE": "0",
        "DB_CONN_MAX_AGE": "600",
        "LOG_LEVEL": "WARNING",
        "GENESIS_VAR_DIR": str(VAR),
        "GENESIS_ADMIN_PASSWORD": PASSWORD,
        "GENESIS_DEMO_PASSWORD": PASSWORD,
        **extra,
    }


def manage(*args: str, capture: bool = False) -> str:
    out = subprocess.run([PYTHON, "manage.py", *args], cwd=ROOT, env=env(), check=True, text=True,
                         capture_output=capture)
    return out.stdout if capture else ""


# --- setup ------------------------------------------------------------------------------------------------------


def setup() -> None:
    import psycopg

    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DB}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{DB}"')
    VAR.mkdir(parents=True, exist_ok=True)
    manage("migrate", "--noinput", "-v", "0")
    manage("ensure_admin")
    manage("start_demo")
    tokens = {user: manage("issue_token", user, capture=True).strip() for user in ("admin", "demo_owner")}
    (VAR / "tokens.json").write_text(json.dumps(tokens))
    print("tokens for admin and demo_owner in", VAR / "tokens.json")


# --- processes --------------------------------------------------------------------------------------------------


def children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        for thread in os.listdir(f"/proc/{pid}/task"):
            try:
                found += [int(p) for p in Path(f"/proc/{pid}/task/{thread}/children").read_text().split()]
            except FileNotFoundError:
                pass
    except FileNotFoundError:
        pass
    return sorted(found)


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise TimeoutError(f"timed out waiting for {what}")


def start_gunicorn() -> subprocess.Popen:
    process = subprocess.Popen(
        [PYTHON, "-m", "gunicorn", "genesis.wsgi:application", "--workers", "4", "--timeout", "60",
         "--bind", f"127.0.0.1:{PORT}", "--backlog", "2048", "--log-level", "warning"],
        cwd=ROOT, env=env(), start_new_session=True, stderr=(VAR / "gunicorn.log").open("a"),
    )

    def listening():
        try:
            with socket.create_connection(("127.0.0.1", PORT), timeout=0.5):
                return True
        except OSError:
            return False
    wait_for(listening, 30, "gunicorn")
    return process


def start_cluster() -> subprocess.Popen:
    process = subprocess.Popen([PYTHON, "manage.py", "qcluster"], cwd=ROOT, env=env(), start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=(VAR / "cluster.log").open("a"))
    cluster_processes(process)
    return process


def cluster_processes(process: subprocess.Popen, workers: int = 2) -> tuple[int, list[int]]:
    """The sentinel and its children once all are up: workers first (spawned first), then monitor and pusher."""
    def whole():  # the command's child whose own children are all up (a restarted cluster has a new sentinel)
        for sentinel in children(process.pid):
            if len(found := children(sentinel)) == workers + 2:
                return sentinel, found
        return None
    return wait_for(whole, 60, "the cluster")


def stop(process: subprocess.Popen | None) -> None:
    """SIGTERM to the process we started, then SIGKILL to its session (its own children) if it lingers."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def cpu_ticks(pids: list[int]) -> dict[int, int]:
    ticks = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            ticks[pid] = int(fields[11]) + int(fields[12])
        except (FileNotFoundError, ProcessLookupError, IndexError):
            pass
    return ticks


def session_of(pgid: int) -> list[int]:
    def same(pid, _comm):
        try:
            return os.getsid(pid) == pgid
        except ProcessLookupError:
            return False
    return pids_where(same)


def machine_busy() -> tuple[int, int]:
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


# --- clients ----------------------------------------------------------------------------------------------------


def tokens() -> dict[str, str]:
    return json.loads((VAR / "tokens.json").read_text())


def base() -> str:
    return f"http://127.0.0.1:{PORT}"


def sign_in(username: str):
    import httpx

    client = httpx.Client(base_url=base(), timeout=120)
    page = client.get("/login/")
    csrf = client.cookies["csrftoken"]
    answer = client.post("/login/", data={"username": username, "password": PASSWORD, "csrfmiddlewaretoken": csrf},
                         headers={"Referer": f"{base()}/login/"})
    assert answer.status_code == 302 and "sessionid" in client.cookies, (page.status_code, answer.status_code)
    return client


def demo_mission_id() -> int:
    import httpx

    listed = httpx.get(f"{base()}/api/v1/missions/", headers={"Authorization": f"Token {tokens()['demo_owner']}"},
                       timeout=60).json()
    return next(m["id"] for m in listed["results"] if m["name"] == DEMO)


def raw_request(head: str, body: bytes) -> tuple[int, float, str]:
    """Send the head and the first bytes of a body over a socket, then read the answer: status, seconds, text."""
    started = time.perf_counter()
    with socket.create_connection(("127.0.0.1", PORT), timeout=120) as sock:
        sock.sendall(head.encode() + body)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        took = time.perf_counter() - started
        sock.settimeout(1)
        try:
            while chunk := sock.recv(65536):
                data += chunk
                if len(data) > 4096:
                    break
        except OSError:
            pass
    status = int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/") else 0
    return status, took, data.split(b"\r\n\r\n", 1)[-1][:300].decode(errors="replace")


def timed(send, times: int = 8) -> dict:
    statuses, seconds, sample = [], [], ""
    for _ in range(times):
        started = time.perf_counter()
        status, text = send()
        seconds.append(time.perf_counter() - started)
        statuses.append(status)
        sample = text
    return {"statuses": sorted(set(statuses)), "median_ms": 1000 * statistics.median(seconds),
            "max_ms": 1000 * max(seconds), "each_ms": [round(1000 * s, 1) for s in seconds], "answer": sample[:300]}


# --- stages -----------------------------------------------------------------------------------------------------


def stage_inputs() -> dict:
    import httpx

    sys.path.insert(0, str(ROOT))
    from tests.documents import billion_laughs_blueprint, deep_json

    laughs = billion_laughs_blueprint()
    deep = deep_json(5_000)
    admin = {"Authorization": f"Token {tokens()['admin']}"}
    owner = {"Authorization": f"Token {tokens()['demo_owner']}"}
    results: dict = {"laughs_bytes": len(laughs.encode()), "deep_json_bytes": len(deep.encode())}
    with httpx.Client(base_url=base(), timeout=120) as client:
        def post(url, headers, **kwargs):
            def send():
                response = client.post(url, headers=headers, **kwargs)
                return response.status_code, response.text
            return send
        results["billion laughs blueprint, staff (API import)"] = timed(post(
            "/api/v1/blueprints/import/", admin, json={"text": laughs, "filename": "laughs.yaml"}))
        results["billion laughs blueprint, Mission Owner without staff (API import)"] = timed(post(
            "/api/v1/blueprints/import/", owner, json={"text": laughs, "filename": "laughs.yaml"}))
        results["billion laughs blueprint as a multipart file, staff"] = timed(post(
            "/api/v1/blueprints/import/", admin, files={"file": ("laughs.yaml", laughs.encode(), "application/yaml")}))
        results["JSON nested 5,000 levels (POST /api/v1/tasks/)"] = timed(post(
            "/api/v1/tasks/", {**owner, "Content-Type": "application/json"}, content=deep))
    for label, auth in (("staff", tokens()["admin"]),):
        head = ("POST /api/v1/blueprints/import/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Authorization: Token {auth}\r\nContent-Type: multipart/form-data; boundary=x\r\n"
                f"Content-Length: {2 * 1024**3}\r\nConnection: close\r\n\r\n")

        def send(head=head):
            status, _took, text = raw_request(head, b"--x\r\nContent-Disposition: form-data; name=\"file\"; "
                                                    b"filename=\"big.yaml\"\r\n\r\nslug: big\n")
            return status, text
        results[f"multipart claiming 2 GB, {label} (API import, 60 bytes sent)"] = timed(send)
    owner_client = sign_in("demo_owner")
    csrf = owner_client.cookies["csrftoken"]
    cookie = f"csrftoken={csrf}; sessionid={owner_client.cookies['sessionid']}"
    head = ("POST /missions/launch/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Cookie: {cookie}\r\nX-CSRFToken: {csrf}\r\nReferer: {base()}/missions/launch/\r\n"
            "Content-Type: multipart/form-data; boundary=x\r\n"
            f"Content-Length: {2 * 1024**3}\r\nConnection: close\r\n\r\n")

    def send_page():
        status, _took, text = raw_request(head, b"--x\r\nContent-Disposition: form-data; name=\"spec_file\"; "
                                                b"filename=\"project.yml\"\r\n\r\nname: big\n")
        return status, text
    results["multipart claiming 2 GB, launch page (session)"] = timed(send_page)
    mission = demo_mission_id()
    for query in ("task=%00", "task_key=%00", "actor=%00&event=%00"):
        def history(query=query):
            response = owner_client.get(f"/missions/{mission}/history/?{query}")
            return response.status_code, response.text[:300]
        results[f"history page ?{query} (PostgreSQL)"] = timed(history)
    # The server is still whole afterwards: every worker answers at once.
    with httpx.Client(base_url=base(), timeout=30) as client:
        started = time.perf_counter()
        statuses = [client.get("/api/v1/missions/", headers=owner).status_code for _ in range(8)]
        results["after: 8 API list requests"] = {"statuses": sorted(set(statuses)),
                                                 "total_ms": 1000 * (time.perf_counter() - started)}
    owner_client.close()
    return results


WRK_LUA = """
done = function(summary, latency, requests)
  for _, p in pairs({50, 90, 95, 99}) do
    io.write(string.format("PCT %d %d\\n", p, latency:percentile(p)))
  end
  io.write(string.format("STATUS errors=%d non2xx=%d timeouts=%d\\n", summary.errors.status + summary.errors.read
    + summary.errors.write + summary.errors.connect, summary.errors.status, summary.errors.timeout))
end
"""


def wrk(url: str, header: str, *, connections: int, duration: int, threads: int = 2) -> dict:
    gunicorn = session_of(gunicorn_process.pid)
    cluster = session_of(cluster_process.pid)
    pg = pids_where(lambda _p, comm: comm.startswith("postgres"))
    if shutil.which("wrk") is None:
        return _python_load(url, header, connections=connections, duration=duration, pids=(gunicorn, cluster, pg))
    script = Path(tempfile.mkdtemp(prefix="genesis-probe-")) / "done.lua"
    script.write_text(WRK_LUA)
    before = cpu_ticks(gunicorn + cluster + pg)
    reaped = resource.getrusage(resource.RUSAGE_CHILDREN)
    busy0, total0 = machine_busy()
    load = os.getloadavg()[0]
    process = subprocess.Popen(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--timeout", "10s", "-s", str(script),
         "-H", header, url], stdout=subprocess.PIPE, text=True)
    out, _ = process.communicate()
    busy1, total1 = machine_busy()
    after = cpu_ticks(gunicorn + cluster + pg)
    now = resource.getrusage(resource.RUSAGE_CHILDREN)
    wrk_cpu = (now.ru_utime + now.ru_stime) - (reaped.ru_utime + reaped.ru_stime)
    seconds = duration

    def share(pids):  # % of one core over the run
        return 100 * sum(max(after.get(p, 0) - before.get(p, 0), 0) for p in pids) / CLK / seconds
    pct = {int(p): int(v) / 1000 for p, v in re.findall(r"^PCT (\d+) (\d+)", out, re.M)}
    result = {
        "url": url, "connections": connections, "duration": duration, "load_at_start": load,
        "p50_ms": pct.get(50), "p90_ms": pct.get(90), "p95_ms": pct.get(95), "p99_ms": pct.get(99),
        "requests_per_s": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "requests": int(re.search(r"(\d+) requests in", out).group(1)),
        "non_2xx": int(m.group(1)) if (m := re.search(r"Non-2xx or 3xx responses: (\d+)", out)) else 0,
        "socket_errors": m.group(1) if (m := re.search(r"Socket errors: (.*)", out)) else "",
        "machine_busy_pct": 100 * (busy1 - busy0) / max(total1 - total0, 1),
        "cpu_pct_of_a_core": {"gunicorn": share(gunicorn), "cluster": share(cluster), "postgres": share(pg),
                              "wrk": 100 * wrk_cpu / seconds},
    }
    print(out, json.dumps(result, indent=1), flush=True)
    return result


def _python_load(url: str, header: str, *, connections: int, duration: int, pids: tuple) -> dict:
    """As ``wrk`` measures, with ``bench.httpload`` (wrk is not installed): the same percentiles and CPU shares, the
    load generator's own CPU from this process's usage."""
    from bench import httpload

    gunicorn, cluster, pg = pids
    before = cpu_ticks(gunicorn + cluster + pg)
    own = resource.getrusage(resource.RUSAGE_SELF)
    busy0, total0 = machine_busy()
    load = os.getloadavg()[0]
    measured = httpload.run(url, connections=connections, duration=duration, headers=[header])
    busy1, total1 = machine_busy()
    after = cpu_ticks(gunicorn + cluster + pg)
    now = resource.getrusage(resource.RUSAGE_SELF)

    def share(group):  # % of one core over the run
        return 100 * sum(max(after.get(p, 0) - before.get(p, 0), 0) for p in group) / CLK / duration
    result = {
        "url": url, "connections": connections, "duration": duration, "load_at_start": load,
        "load_at_end": os.getloadavg()[0], "client": "bench.httpload",
        "p50_ms": measured["p50_ms"], "p90_ms": measured["p90_ms"], "p95_ms": measured["p95_ms"],
        "p99_ms": measured["p99_ms"], "requests_per_s": measured["requests_per_s"], "requests": measured["requests"],
        "non_2xx": sum(n for status, n in measured["statuses"].items() if not 200 <= status < 400),
        "socket_errors": f"timeouts {measured['timeouts']}, errors {measured['errors']}",
        "machine_busy_pct": 100 * (busy1 - busy0) / max(total1 - total0, 1),
        "cpu_pct_of_a_core": {"gunicorn": share(gunicorn), "cluster": share(cluster), "postgres": share(pg),
                              "load client": 100 * ((now.ru_utime + now.ru_stime) - (own.ru_utime + own.ru_stime))
                              / duration},
    }
    print(json.dumps(result, indent=1), flush=True)
    return result


def stage_load(connections: int, duration: int) -> dict:
    global gunicorn_process
    owner_token = tokens()["demo_owner"]
    mission = demo_mission_id()
    client = sign_in("demo_owner")
    cookie = f"Cookie: sessionid={client.cookies['sessionid']}"
    client.close()
    token = f"Authorization: Token {owner_token}"
    api, cockpit = f"{base()}/api/v1/missions/", f"{base()}/missions/{mission}/"
    results: dict = {"mission": mission}
    wrk(api, token, connections=4, duration=3, threads=1)  # warm-up: every worker loaded and connected
    wrk(cockpit, cookie, connections=4, duration=3, threads=1)
    results["api list, 1 client"] = wrk(api, token, connections=1, duration=8, threads=1)
    results["api list, cache on"] = wrk(api, token, connections=connections, duration=duration)
    results["cockpit, 1 client"] = wrk(cockpit, cookie, connections=1, duration=8, threads=1)
    results["cockpit"] = wrk(cockpit, cookie, connections=connections, duration=duration)
    # The list cache off (every request builds the page): gunicorn restarted with GENESIS_API_LIST_CACHE_SECONDS=0.
    stop(gunicorn_process)
    os.environ["GENESIS_API_LIST_CACHE_SECONDS"] = "0"
    try:
        gunicorn_process = start_gunicorn()
        wrk(api, token, connections=4, duration=3, threads=1)
        results["api list, cache off, 1 client"] = wrk(api, token, connections=1, duration=8, threads=1)
        results["api list, cache off"] = wrk(api, token, connections=connections, duration=duration)
    finally:
        os.environ.pop("GENESIS_API_LIST_CACHE_SECONDS")
    # The cockpit's panel cache off (every page builds every panel): gunicorn restarted with
    # GENESIS_COCKPIT_CACHE_SECONDS=0.
    stop(gunicorn_process)
    os.environ["GENESIS_COCKPIT_CACHE_SECONDS"] = "0"
    try:
        gunicorn_process = start_gunicorn()
        wrk(cockpit, cookie, connections=4, duration=3, threads=1)
        results["cockpit, panel cache off, 1 client"] = wrk(cockpit, cookie, connections=1, duration=8, threads=1)
        results["cockpit, panel cache off"] = wrk(cockpit, cookie, connections=connections, duration=duration)
    finally:
        os.environ.pop("GENESIS_COCKPIT_CACHE_SECONDS")
    return results


QUERIES = """
import json, statistics, time
import django
django.setup()
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from missions.models import Mission
from rest_framework.authtoken.models import Token

owner = get_user_model().objects.get(username="demo_owner")
mission = Mission.objects.get(name="Healthcare Data Pipeline (demo)")
page = Client(HTTP_HOST="127.0.0.1")
page.force_login(owner)
api = Client(HTTP_HOST="127.0.0.1", HTTP_AUTHORIZATION="Token " + Token.objects.get(user=owner).key)
out = {}
for label, client, url in [("cockpit", page, f"/missions/{mission.pk}/"), ("api list", api, "/api/v1/missions/"),
                           ("live, nothing new", page, f"/missions/{mission.pk}/live/")]:
    client.get(url)
    times = []
    for _ in range(10):
        with CaptureQueriesContext(connection) as queries:
            started = time.perf_counter()
            response = client.get(url)
            times.append(1000 * (time.perf_counter() - started))
    out[label] = {"status": response.status_code, "queries": len(queries), "median_ms": statistics.median(times),
                  "bytes": len(response.content), "sql": [q["sql"][:160] for q in queries.captured_queries]}
print("RESULT " + json.dumps(out))
"""


def stage_queries() -> dict:
    out = subprocess.run([PYTHON, "-c", QUERIES], cwd=ROOT, env=env(GENESIS_API_LIST_CACHE_SECONDS="0"),
                         check=True, capture_output=True, text=True).stdout
    return json.loads(next(line for line in out.splitlines() if line.startswith("RESULT "))[7:])


KILL_ROLES = ("none", "running worker", "idle worker", "monitor", "pusher", "sentinel", "db connections",
              "none (again)")


def stage_kill(roles: list[str]) -> dict:
    global cluster_process
    os.environ.update(env())
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django_q.conf import Conf

    from agents.models import Agent
    from missions.choices import MissionMode, MissionStatus
    from missions.models import Mission
    from missions.services import mission_create
    from tasks import services
    from tasks.models import Run
    from workflows import missions as mission_workflows

    Conf.SYNC = False
    user = get_user_model().objects.get(username="demo_owner")
    agent, _ = Agent.objects.get_or_create(name="ProbeNoop", defaults={"kind": "noop"})
    results: dict = {}

    def syscall(pid: int) -> str:
        try:
            return Path(f"/proc/{pid}/syscall").read_text().split()[0]
        except (FileNotFoundError, ProcessLookupError, IndexError):
            return ""

    for role in roles:
        stop(cluster_process)
        cluster_process = None
        cluster_process = start_cluster()
        sentinel, found = cluster_processes(cluster_process)
        workers, monitor, pusher = found[:2], found[2], found[3]
        time.sleep(1)
        mission = mission_create(name=f"probe kill {role}", objective="Probe: a worker fault mid-mission.",
                                 owner=user, mode=MissionMode.CONTINUOUS)
        tasks = [services.task_create(mission=mission, key=f"t{i}", title=f"t{i}", owner_agent=agent,
                                      config={"sleep_ms": 500}) for i in range(8)]
        for a, b in zip(tasks[1:], tasks, strict=False):
            services.dependency_add(task=a, depends_on=b)
        started = time.monotonic()
        mission_workflows.mission_launch(mission=mission, actor=user)
        time.sleep(1.5)
        running = Run.objects.filter(task__mission=mission, status="running").values_list("worker", flat=True).first()
        busy = int(running.rsplit(":", 1)[1]) if running else None
        victim = None
        if role == "running worker":
            victim = busy
        elif role == "idle worker":
            victim = next((p for p in workers if p != busy), None)
        elif role in {"monitor", "pusher", "sentinel"}:
            victim = {"monitor": monitor, "pusher": pusher, "sentinel": sentinel}[role]
        killed_at = time.monotonic() - started
        note = ""
        if role == "db connections":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = "
                               "current_database() AND pid <> pg_backend_pid()")
                note = f"{len(cursor.fetchall())} connections of the cluster terminated"
        elif victim:
            note = f"pid {victim}, syscall {syscall(victim)} before the kill"
            os.kill(victim, signal.SIGKILL)
        status = None
        deadline = started + 240
        while time.monotonic() < deadline:
            status = Mission.objects.values_list("status", flat=True).get(pk=mission.pk)
            if status in {MissionStatus.COMPLETED, MissionStatus.FAILED}:
                break
            time.sleep(0.1)
        took = time.monotonic() - started
        runs = list(Run.objects.filter(task__mission=mission).values_list("status", flat=True))
        try:
            new_sentinel = children(cluster_process.pid)
        except Exception:  # noqa: BLE001
            new_sentinel = []
        results[role] = {
            "mission": status, "seconds_to_end": round(took, 2), "killed_at_s": round(killed_at, 2), "note": note,
            "runs": {s: runs.count(s) for s in sorted(set(runs))},
            "cluster_restarted": bool(new_sentinel) and new_sentinel[0] != sentinel,
        }
        print(role, json.dumps(results[role]), flush=True)
    return results


gunicorn_process: subprocess.Popen | None = None
cluster_process: subprocess.Popen | None = None


def settle(timeout: float = 180) -> None:
    """Wait until the demo mission has no queued or running run (it stops at the owner's approvals)."""
    code = ("import django; django.setup()\nfrom tasks.models import Run\n"
            "print(Run.objects.filter(status__in=['queued', 'running']).count())")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = subprocess.run([PYTHON, "-c", code], cwd=ROOT, env=env(), capture_output=True, text=True).stdout
        if out.strip() == "0":
            return
        time.sleep(3)
    print("the demo mission did not settle", flush=True)


def run(stages: list[str], connections: int, duration: int, roles: list[str]) -> None:
    global gunicorn_process, cluster_process
    results: dict = {"started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cores": os.cpu_count()}
    path = VAR / "results.json"
    if path.exists():
        results = {**json.loads(path.read_text()), **results}
    try:
        gunicorn_process = start_gunicorn()
        cluster_process = start_cluster()
        settle()
        for stage in stages:
            print(f"== {stage} at {time.strftime('%H:%M:%S', time.gmtime())} load {os.getloadavg()[0]:.2f}",
                  flush=True)
            if stage == "inputs":
                results["inputs"] = stage_inputs()
            elif stage == "load":
                results["load"] = stage_load(connections, duration)
            elif stage == "queries":
                results["queries"] = stage_queries()
            elif stage == "kill":
                stop(gunicorn_process)
                gunicorn_process = None
                results["kill"] = stage_kill(roles)
            path.write_text(json.dumps(results, indent=2))
    finally:
        stop(gunicorn_process)
        stop(cluster_process)
    print(json.dumps(results, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["setup", "run"])
    parser.add_argument("--stages", default="inputs,load,queries,kill")
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--duration", type=int, default=30)
    parser.add_argument("--roles", default=",".join(KILL_ROLES), help="the kill stage's faults, in order")
    args = parser.parse_args()
    VAR.mkdir(parents=True, exist_ok=True)
    if args.command == "setup":
        setup()
    else:
        run(args.stages.split(","), args.connections, args.duration, args.roles.split(","))


if __name__ == "__main__":
    main()
