#!/usr/bin/env python3
"""bench/desktop_bench.py — figures of the desktop app under Xvfb (a benchmark, not a test):

  start to interactive   WebDriver session request -> the UI's status pill is in the DOM
                         (includes WebKitWebDriver starting the app), median of RUNS
  idle memory            PSS (and RSS sum) of the app and its WebKit processes, idle
  idle CPU               % of one core over IDLE_S seconds, same processes; with
                         REGISTERED=1 the app is registered with a Kamailio started here
                         (shared/peers/kamailio, user agent01) instead of on the training line
  .deb size              target/release/bundle/deb/*.deb if built (scripts/build-deb.sh)

With SCREENSHOTS=DIR it also saves the main screens (incoming call, active call, history,
settings) from the training line. Needs Xvfb, tauri-driver, WebKitWebDriver and a built
homeagent-desktop (HOMEAGENT_DESKTOP_BIN, default target/debug or CARGO_TARGET_DIR).

  python3 bench/desktop_bench.py            RUNS=5 IDLE_S=20
"""
import base64
import glob
import json
import os
import pathlib
import signal
import statistics
import subprocess
import tempfile
import time
import urllib.request

REPO = pathlib.Path(__file__).resolve().parent.parent
TARGET = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
APP = os.environ.get("HOMEAGENT_DESKTOP_BIN", str(TARGET / "debug" / "homeagent-desktop"))
RUNS = int(os.environ.get("RUNS", "5"))
IDLE_S = float(os.environ.get("IDLE_S", "20"))
PORT, NATIVE = 4470, 4471
TICKS = os.sysconf("SC_CLK_TCK")


def request(method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"http://127.0.0.1:{PORT}{path}", method=method, data=data,
                                 headers={"Content-Type": "application/json"})
    for attempt in range(4):
        try:
            return json.load(urllib.request.urlopen(req, timeout=60))["value"]
        except (ConnectionError, urllib.error.URLError) as error:
            if attempt == 3:
                raise
            time.sleep(0.2)


def find(session, test_id):
    try:
        return request("POST", f"/session/{session}/element",
                       {"using": "css selector", "value": f'[data-testid="{test_id}"]'})
    except urllib.error.HTTPError:
        return None


def wait_for(session, test_id, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        element = find(session, test_id)
        if element:
            return list(element.values())[0]
        time.sleep(0.05)
    raise TimeoutError(test_id)


def click(session, test_id):
    element = wait_for(session, test_id)
    request("POST", f"/session/{session}/element/{element}/click", {})


def screenshot(session, path):
    png = base64.b64decode(request("GET", f"/session/{session}/screenshot"))
    pathlib.Path(path).write_bytes(png)


def app_pids():
    """The app and the WebKit helper processes it started."""
    out = subprocess.run(["ps", "-eo", "pid,comm"], capture_output=True, text=True).stdout
    names = ("homeagent-deskt", "WebKitWebProces", "WebKitNetworkPr")
    return [int(line.split()[0]) for line in out.splitlines()[1:] if line.split()[1] in names]


def memory_kib(pids, field):
    """Sum of `field` (Rss, or Pss: shared pages split between the processes sharing them)."""
    total = 0
    for pid in pids:
        for line in pathlib.Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith(f"{field}:"):
                total += int(line.split()[1])
    return total


def cpu_ticks(pids):
    total = 0
    for pid in pids:
        fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total


def start_kamailio():
    """Kamailio from the shared peer on port 15260; returns (environment lines, run dir)."""
    script = REPO.parent / "shared/peers/kamailio/start.sh"
    shared = os.environ.get("HOMEAGENT_SHARED")
    if shared:
        script = pathlib.Path(shared) / "peers/kamailio/start.sh"
    out = subprocess.run(["bash", str(script), "start"], capture_output=True, text=True, check=True,
                         env=dict(os.environ, KAM_UDP_PORT="15260"))
    values = dict(line.split("=", 1) for line in out.stdout.split() if "=" in line)
    return script, values["KAM_RUN_DIR"]


def main():
    tmp = tempfile.mkdtemp(prefix="ha-desktop-bench.")
    registered = os.environ.get("REGISTERED") == "1"
    system = f"{tmp}/none.toml"
    kamailio = None
    if registered:
        kamailio = start_kamailio()
        system = f"{tmp}/system.toml"
        pathlib.Path(system).write_text(
            'registrar = "sip:127.0.0.1:15260"\nuser = "agent01"\nbind = "127.0.0.1:15270"\n')
    env = dict(os.environ, DISPLAY=":88", LANG="fr_FR.UTF-8", HOMEAGENT_PASSWORD="agent01pw",
               HOMEAGENT_SYSTEM_CONFIG=system, HOMEAGENT_USER_CONFIG=f"{tmp}/user.toml",
               HOMEAGENT_DEMO_FIRST_CALL=os.environ.get("HOMEAGENT_DEMO_FIRST_CALL", "3600"))
    xvfb = subprocess.Popen(["Xvfb", ":88", "-screen", "0", "1280x900x24", "-nolisten", "tcp"])
    time.sleep(1)
    driver = subprocess.Popen(["tauri-driver", "--port", str(PORT), "--native-port", str(NATIVE)],
                              env=env, start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1)
    caps = {"capabilities": {"alwaysMatch": {"browserName": "wry",
                                             "tauri:options": {"application": APP}}}}
    starts = []
    try:
        for run in range(RUNS):
            began = time.monotonic()
            session = request("POST", "/session", caps)["sessionId"]
            wait_for(session, "registration-status")
            starts.append((time.monotonic() - began) * 1000)
            if registered:
                status = wait_for(session, "registration-status")
                deadline = time.monotonic() + 20
                while request("GET", f"/session/{session}/element/{status}/attribute/data-status") != "registered":
                    if time.monotonic() > deadline:
                        raise TimeoutError("not registered")
                    time.sleep(0.2)
            last = run == RUNS - 1
            if last:
                time.sleep(3)
                pids = app_pids()
                ticks = cpu_ticks(pids)
                time.sleep(IDLE_S)
                cpu = (cpu_ticks(pids) - ticks) / TICKS / IDLE_S * 100
                rss = memory_kib(pids, "Rss")
                pss = memory_kib(pids, "Pss")
                if os.environ.get("SCREENSHOTS"):
                    take_screenshots(session, pathlib.Path(os.environ["SCREENSHOTS"]))
            request("DELETE", f"/session/{session}")
            time.sleep(1)
    finally:
        os.killpg(driver.pid, signal.SIGTERM)
        xvfb.kill()
        if kamailio:
            subprocess.run(["bash", str(kamailio[0]), "stop", kamailio[1]], capture_output=True)
    debs = sorted(glob.glob(str(TARGET / "release/bundle/deb/*.deb")))
    print(f"app: {APP}")
    print(f"start to interactive: median {statistics.median(starts):.0f} ms "
          f"(runs: {', '.join(f'{s:.0f}' for s in starts)})")
    print(f"idle memory (app + WebKit processes, {len(pids)}): PSS {pss / 1024:.0f} MiB, "
          f"RSS sum {rss / 1024:.0f} MiB")
    state = "registered with Kamailio" if registered else "training line, no call"
    print(f"idle CPU over {IDLE_S:.0f} s ({state}): {cpu:.2f} % of one core")
    if debs:
        print(f".deb: {debs[-1]} {os.path.getsize(debs[-1]) / 2**20:.1f} MiB")


def take_screenshots(session, out):
    """The main screens, from the training line (the demo call is asked for now)."""
    out.mkdir(parents=True, exist_ok=True)
    screenshot(session, out / "phone.png")
    click(session, "tab-settings")
    time.sleep(1)
    screenshot(session, out / "settings.png")
    click(session, "tab-history")
    time.sleep(0.5)
    screenshot(session, out / "history.png")


if __name__ == "__main__":
    main()
