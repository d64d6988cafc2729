#!/usr/bin/env python3
"""bench/screen_pop_bench.py — INVITE → customer card rendered, in the real desktop app
(a benchmark, not a test).

The app runs registered with Kamailio (shared/peers/kamailio, user agent01) and configured as
IT would for a contact center: platform = 127.0.0.1, a CRM lookup against a local CRM that
answers in 50 ms (CRM_DELAY_MS). sipp plays the ACD: CALLS times, an INVITE asking for
auto-answer with an X-Customer-Id. For each call: from the INVITE leaving sipp (its message
trace's wall-clock stamp) to the first card row of that call in the webview's DOM (WebDriver
polling without pause, a few ms per poll: the figure is an upper bound).

  python3 bench/screen_pop_bench.py          CALLS=20 CRM_DELAY_MS=50
Needs Xvfb, tauri-driver, WebKitWebDriver, sipp, kamailio and a built homeagent-desktop
(HOMEAGENT_DESKTOP_BIN, default target/debug or CARGO_TARGET_DIR).
"""
import http.server
import json
import os
import pathlib
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import desktop_bench as d  # noqa: E402  (same folder: the WebDriver and Kamailio helpers)

CALLS = int(os.environ.get("CALLS", "20"))
CRM_DELAY_MS = float(os.environ.get("CRM_DELAY_MS", "50"))
SIP_PORT = 15270
SCENARIO = d.REPO / "tests/scenarios/acd_autoanswer.xml"


class Crm(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's naming)
        time.sleep(CRM_DELAY_MS / 1000)
        body = json.dumps({"nom": "Jeanne Martin", "contrat": "C-42", "offre": "Fibre"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def invite_sent_at(trace):
    """Wall-clock time (s) sipp sent the INVITE, from its -trace_msg file."""
    stamp = None
    for line in pathlib.Path(trace).read_text(errors="replace").splitlines():
        if line.startswith("-----"):
            parts = line.split()
            stamp = datetime.strptime(f"{parts[-2]} {parts[-1]}", "%Y-%m-%d %H:%M:%S.%f").timestamp()
        elif line.startswith("INVITE ") and stamp is not None:
            return stamp
    raise RuntimeError(f"no INVITE in {trace}")


def main():
    tmp = tempfile.mkdtemp(prefix="ha-screen-pop.")
    crm = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Crm)
    threading.Thread(target=crm.serve_forever, daemon=True).start()
    kamailio = d.start_kamailio()
    system = pathlib.Path(tmp) / "system.toml"
    system.write_text(
        'registrar = "sip:127.0.0.1:15260"\nuser = "agent01"\n'
        f'bind = "127.0.0.1:{SIP_PORT}"\nrtp_ports = "15300-15399"\ncodecs = "pcmu"\n'
        'audio_in = "silence"\naudio_out = "null"\nplatform = "127.0.0.1"\n'
        f'context_url = "http://127.0.0.1:{crm.server_port}/customers?id={{header:X-Customer-Id}}"\n')
    env = dict(os.environ, DISPLAY=":87", LANG="fr_FR.UTF-8", HOMEAGENT_PASSWORD="agent01pw",
               HOMEAGENT_SYSTEM_CONFIG=str(system), HOMEAGENT_USER_CONFIG=f"{tmp}/user.toml",
               HOMEAGENT_INSTANCE_SOCKET=f"{tmp}/instance.sock")
    xvfb = subprocess.Popen(["Xvfb", ":87", "-screen", "0", "1280x900x24", "-nolisten", "tcp"])
    time.sleep(1)
    driver = subprocess.Popen(["tauri-driver", "--port", str(d.PORT), "--native-port", str(d.NATIVE)],
                              env=env, start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1)
    caps = {"capabilities": {"alwaysMatch": {"browserName": "wry",
                                             "tauri:options": {"application": d.APP}}}}
    delays = []
    try:
        session = d.request("POST", "/session", caps)["sessionId"]
        status = d.wait_for(session, "registration-status")
        deadline = time.monotonic() + 20
        while d.request("GET", f"/session/{session}/element/{status}/attribute/data-status") != "registered":
            if time.monotonic() > deadline:
                raise TimeoutError("not registered")
            time.sleep(0.2)
        for call in range(1, CALLS + 1):
            trace = f"{tmp}/sipp-{call}.msg"
            sipp = subprocess.Popen(
                ["sipp", "-sf", str(SCENARIO), "-i", "127.0.0.1", "-p", str(15400 + call),
                 "-m", "1", "-s", "agent01", "-nostdin", "-trace_msg", "-message_file", trace,
                 f"127.0.0.1:{SIP_PORT}"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            row = (f'[data-testid="customer-card"][data-call-id="{call}"] '
                   '[data-testid="customer-field"]')
            seen = None
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                found = d.request("POST", f"/session/{session}/elements",
                                  {"using": "css selector", "value": row})
                if found:
                    seen = time.time()
                    break
            sipp.wait(timeout=30)
            if seen is None:
                raise TimeoutError(f"no card for call {call}")
            delays.append((seen - invite_sent_at(trace)) * 1000)
        d.request("DELETE", f"/session/{session}")
    finally:
        os.killpg(driver.pid, signal.SIGTERM)
        xvfb.kill()
        crm.shutdown()
        subprocess.run(["bash", str(kamailio[0]), "stop", kamailio[1]], capture_output=True)
    print(f"app: {d.APP}")
    print(f"INVITE → customer card in the DOM ({CALLS} calls, CRM answering in "
          f"{CRM_DELAY_MS:.0f} ms): median {statistics.median(delays):.0f} ms "
          f"(min {min(delays):.0f}, max {max(delays):.0f}; goal ≤ 250 ms)")


if __name__ == "__main__":
    main()
