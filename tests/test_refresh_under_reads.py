"""A refresh in its own process while gunicorn serves reads: no errors, no half one."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

import accounts
from etl import pipeline

ROOT = Path(__file__).resolve().parent.parent
LEICS = "crime/police_uk/leicestershire"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def months(shared_data: Path, tmp_path: Path, name: str, wanted: list[str]) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    for month in wanted:
        source = shared_data / LEICS / f"{month}-leicestershire-street.csv.gz"
        (folder / source.name).symlink_to(source)
    return folder


def wait_until_serving(url: str, auth, process) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"server exited: {process.stderr.read()}")
        try:
            if requests.get(url, auth=auth, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            time.sleep(0.3)
    raise AssertionError("server did not start within 60 s")


@pytest.mark.real_data
def test_reads_during_a_refresh_see_old_or_new_data_and_never_fail(
    shared_data, tmp_path
):
    url = f"duckdb:///{tmp_path / 'warehouse.duckdb'}"
    first = pipeline.run(
        url, "police-uk-street",
        months(shared_data, tmp_path, "old", ["2020-01", "2020-02"]),
    )
    assert first.status == "succeeded"
    users = tmp_path / "users.toml"
    password = accounts.write_demo_users(users)["analyst"]
    auth = ("analyst", password)
    port = free_port()
    env = {
        **os.environ,
        "BLUELAMP_WAREHOUSE_URL": url,
        "BLUELAMP_USERS_FILE": str(users),
        "BLUELAMP_SECRET_KEY": "test-secret",
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-w", "2", "--threads", "4",
         "-b", f"127.0.0.1:{port}", "app:server"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    seen: list[tuple[int, int]] = []
    failures: list[str] = []
    stop = threading.Event()

    def read_forever():
        session = requests.Session()
        while not stop.is_set():
            try:
                response = session.get(f"{base}/api/freshness", auth=auth, timeout=10)
                page = session.get(f"{base}/data-status", auth=auth, timeout=10)
            except requests.RequestException as exc:
                failures.append(repr(exc))
                continue
            if response.status_code != 200 or page.status_code != 200:
                failures.append(f"{response.status_code} {page.status_code}")
                continue
            body = response.json()
            seen.append((body["run_id"], body["facts"]["fct_crime"]))

    try:
        wait_until_serving(f"{base}/api/freshness", auth, server)
        readers = [threading.Thread(target=read_forever) for _ in range(3)]
        for reader in readers:
            reader.start()
        time.sleep(1)
        refresh = subprocess.run(
            [sys.executable, "-m", "etl", "run", "police-uk-street", "--path",
             str(months(shared_data, tmp_path, "new", ["2020-03", "2020-04"]))],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
        )
        assert refresh.returncode == 0, refresh.stdout + refresh.stderr
        time.sleep(2)
        stop.set()
        for reader in readers:
            reader.join(timeout=30)
    finally:
        stop.set()
        server.terminate()
        server.wait(timeout=30)

    old = (first.run_id, first.rows_loaded)
    new_run = [line for line in refresh.stdout.splitlines() if " run " in line][0]
    new_run_id = int(new_run.split(" run ")[1].split()[0])
    assert failures == []
    assert seen[0] == old
    assert set(seen) <= {old, (new_run_id, seen[-1][1])}
    assert seen[-1][0] == new_run_id and seen[-1][1] > old[1]
    assert len(seen) > 20
