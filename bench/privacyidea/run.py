"""Drive privacyIDEA 3.14's push token in poll-only mode with the load `tapgate bench` uses.

Run with the tapgate virtual environment's Python (it reuses tapgate.bench's statistics and
report format); privacyIDEA itself runs from its own virtual environment under gunicorn:

    bench/privacyidea/setup.sh
    /work/venv/bin/python bench/privacyidea/run.py --output bench-results/privacyidea

Each simulated user has one push token enrolled the real way: the administrator calls
/token/init, and the simulated smartphone finishes the second step at /ttype/push with its own
RSA key, pinning the server key it gets back. A login follows what an application does with a
poll-only push token. First /validate/check with the PIN creates the challenge. The phone polls
/ttype/push with a signed timestamp, checks the server's signature on the challenge and posts
its signed approval. The application polls /validate/polltransaction and then completes the
login with /validate/check and the transaction id.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tapgate.bench.report import write_reports
from tapgate.bench.runner import machine_info
from tapgate.bench.server import free_port, machine_busy_seconds
from tapgate.bench.stats import LoginSample, level_from_samples

sys.path.insert(0, str(Path(__file__).resolve().parent))
from picfg import write_settings  # noqa: E402 - the sibling script, not a package

HERE = Path(__file__).resolve().parent
ADMIN = ("benchadmin", "bench-admin-2026")
PIN = "Bench-Pin-2026"
REALM = "bench"
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Phone:
    """A simulated smartphone: its token serial, its RSA key and the pinned server key."""

    username: str
    serial: str
    key: rsa.RSAPrivateKey
    server_key: Any


def b32(data: bytes) -> str:
    return base64.b32encode(data).decode()


def sign(key: rsa.RSAPrivateKey, text: str) -> str:
    return b32(key.sign(text.encode(), padding.PKCS1v15(), hashes.SHA256()))


def public_key_body(key: rsa.RSAPrivateKey) -> str:
    """Return the smartphone's public key as privacyIDEA expects it: the PEM body without its
    header lines."""
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return "".join(pem.decode().splitlines()[1:-1])


def load_server_key(body: str) -> Any:
    """Load the server key of enrollment step 2: a PEM body (possibly base64url) of either a
    SubjectPublicKeyInfo or a PKCS #1 RSAPublicKey."""
    der = base64.b64decode(body.strip().replace("-", "+").replace("_", "/"))
    try:
        return serialization.load_der_public_key(der)
    except ValueError:
        pem = base64.encodebytes(der).decode()
        text = "-----BEGIN RSA PUBLIC KEY-----\n" + pem + "-----END RSA PUBLIC KEY-----\n"
        return serialization.load_pem_public_key(text.encode())


# ---- the server under test -------------------------------------------------------------------


class Gunicorn:
    def __init__(self, venv: Path, workdir: Path, port: int, workers: int) -> None:
        self.venv = venv
        self.workdir = workdir
        self.port = port
        self.workers = workers
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = dict(os.environ, PRIVACYIDEA_CONFIGFILE=str(self.workdir / "pi.cfg"))
        log = open(self.workdir / "gunicorn.log", "ab")  # noqa: SIM115 - lives as long as the server
        # S603: the command is gunicorn from the given virtual environment.
        self.process = subprocess.Popen(  # noqa: S603
            [
                str(self.venv / "bin" / "gunicorn"),
                "--workers",
                str(self.workers),
                "--bind",
                f"127.0.0.1:{self.port}",
                "--chdir",
                str(HERE),
                "--timeout",
                "120",
                "wsgi:application",
            ],
            stdout=log,
            stderr=log,
            env=env,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited; see {self.workdir / 'gunicorn.log'}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{self.port}/healthz/", timeout=2).status_code < 500:
                    return
            time.sleep(0.3)
        raise RuntimeError(
            "gunicorn did not respond within 60 s; see gunicorn.log in the work directory"
        )

    def pids(self) -> list[int]:
        assert self.process is not None
        found = [self.process.pid]
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                with contextlib.suppress(OSError):
                    stat = (entry / "stat").read_text()
                    if int(stat[stat.rindex(")") + 2 :].split()[1]) == self.process.pid:
                        found.append(int(entry.name))
        return found

    def sample(self) -> tuple[float, int]:
        """CPU seconds and RSS bytes summed over the master and its workers."""
        cpu = 0.0
        rss = 0
        for pid in self.pids():
            with contextlib.suppress(OSError):
                stat = Path(f"/proc/{pid}/stat").read_text()
                fields = stat[stat.rindex(")") + 2 :].split()
                cpu += (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        rss += int(line.split()[1]) * 1024
        return cpu, rss

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


# ---- setup through the API -----------------------------------------------------------------


async def admin_token(client: httpx.AsyncClient) -> str:
    response = await client.post("/auth", data={"username": ADMIN[0], "password": ADMIN[1]})
    response.raise_for_status()
    return str(response.json()["result"]["value"]["token"])


_NO_PIN_POLICY = "benchnopin"


async def configure(
    client: httpx.AsyncClient, headers: dict[str, str], workdir: Path, users: int, port: int
) -> None:
    users_file = workdir / "users.txt"
    users_file.write_text(
        "".join(
            f"bench{i:04d}:x:{2000 + i}:2000:Bench User {i}:/nonexistent:/bin/false\n"
            for i in range(users)
        )
    )
    steps = [
        ("/resolver/benchfile", {"type": "passwdresolver", "fileName": str(users_file)}),
        (f"/realm/{REALM}", {"resolvers": "benchfile"}),
        (f"/defaultrealm/{REALM}", {}),
        (
            "/policy/pushenroll",
            {
                "scope": "enrollment",
                "action": f"push_firebase_configuration=poll only, push_registration_url=http://127.0.0.1:{port}/ttype/push",
                "active": True,
            },
        ),
    ]
    for path, body in steps:
        response = await client.post(path, json=body, headers=headers)
        if response.status_code != 200 or not response.json()["result"]["status"]:
            raise RuntimeError(f"POST {path} failed: {response.text[:300]}")


async def set_pin_check(client: httpx.AsyncClient, headers: dict[str, str], check: bool) -> None:
    """Turn privacyIDEA's PIN check on or off (the `otppin=none` authentication policy).

    Without the check a login hashes no PIN, the counterpart of `tapgate bench --hash none`.
    """
    if check:
        response = await client.delete(f"/policy/{_NO_PIN_POLICY}", headers=headers)
        # 404 when the policy was never set; anything else is a failure.
        if response.status_code not in (200, 404):
            raise RuntimeError(f"DELETE /policy/{_NO_PIN_POLICY} failed: {response.text[:300]}")
        return
    body = {"scope": "authentication", "action": "otppin=none", "active": True}
    response = await client.post(f"/policy/{_NO_PIN_POLICY}", json=body, headers=headers)
    if response.status_code != 200 or not response.json()["result"]["status"]:
        raise RuntimeError(f"POST /policy/{_NO_PIN_POLICY} failed: {response.text[:300]}")


async def enroll(client: httpx.AsyncClient, headers: dict[str, str], username: str) -> Phone:
    init = await client.post(
        "/token/init",
        json={"type": "push", "genkey": 1, "user": username, "realm": REALM, "pin": PIN},
        headers=headers,
    )
    detail = init.json()["detail"]
    key = rsa.generate_private_key(65537, 2048)
    step2 = await client.post(
        "/ttype/push",
        data={
            "enrollment_credential": detail["enrollment_credential"],
            "serial": detail["serial"],
            "fbtoken": "poll-only",
            "pubkey": public_key_body(key),
        },
    )
    if step2.status_code != 200:
        raise RuntimeError(f"enrollment step 2 for {username} failed: {step2.text[:300]}")
    return Phone(
        username, detail["serial"], key, load_server_key(step2.json()["detail"]["public_key"])
    )


async def set_pins(client: httpx.AsyncClient, headers: dict[str, str], phones: list[Phone]) -> None:
    """Store every PIN again, so it is hashed with the hash settings now in force."""
    for phone in phones:
        response = await client.post(
            f"/token/setpin/{phone.serial}", json={"otppin": PIN}, headers=headers
        )
        response.raise_for_status()


async def enroll_all(
    client: httpx.AsyncClient, headers: dict[str, str], users: int, parallel: int
) -> list[Phone]:
    gate = asyncio.Semaphore(parallel)

    async def enroll_one(index: int) -> Phone:
        async with gate:
            return await enroll(client, headers, f"bench{index:04d}")

    return list(await asyncio.gather(*(enroll_one(i) for i in range(users))))


def save_phones(workdir: Path, phones: list[Phone]) -> None:
    """Keep the enrolled phones, so a later run skips enrollment (RSA-4096 server keys make
    it take about two seconds per token)."""
    records = [
        {
            "username": p.username,
            "serial": p.serial,
            "key": p.key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ).decode(),
            "server_key": p.server_key.public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            ).decode(),
        }
        for p in phones
    ]
    (workdir / "phones.json").write_text(json.dumps(records))


def load_phones(workdir: Path, users: int) -> list[Phone]:
    path = workdir / "phones.json"
    if not path.exists():
        return []
    records = json.loads(path.read_text())
    if len(records) < users:
        return []
    return [
        Phone(
            r["username"],
            r["serial"],
            serialization.load_pem_private_key(r["key"].encode(), None),  # type: ignore[arg-type]
            serialization.load_pem_public_key(r["server_key"].encode()),
        )
        for r in records[:users]
    ]


# ---- one login -------------------------------------------------------------------------------


@dataclass
class Timing:
    challenge_at: float | None = None
    answer_sent_at: float | None = None


async def phone_answers(
    client: httpx.AsyncClient, phone: Phone, timing: Timing, interval: float, give_up: float
) -> None:
    """Poll until a challenge is there, check the server's signature, and approve it."""
    while time.monotonic() < give_up:
        timestamp = datetime.now(UTC).isoformat()
        response = await client.get(
            "/ttype/push",
            params={
                "serial": phone.serial,
                "timestamp": timestamp,
                "signature": sign(phone.key, f"{phone.serial}|{timestamp}"),
            },
        )
        challenges = response.json()["result"].get("value") or []
        if challenges:
            timing.challenge_at = time.monotonic()
            for challenge in challenges:
                signed = "{nonce}|{url}|{serial}|{question}|{title}|{sslverify}".format(**challenge)
                try:
                    phone.server_key.verify(
                        base64.b32decode(challenge["signature"]),
                        signed.encode(),
                        padding.PKCS1v15(),
                        hashes.SHA256(),
                    )
                except InvalidSignature:
                    continue
                timing.answer_sent_at = time.monotonic()
                await client.post(
                    "/ttype/push",
                    data={
                        "serial": phone.serial,
                        "nonce": challenge["nonce"],
                        "signature": sign(phone.key, f"{challenge['nonce']}|{phone.serial}"),
                    },
                )
            return
        await asyncio.sleep(interval)


async def login(
    client: httpx.AsyncClient, phone: Phone, interval: float, pin: str
) -> tuple[str | None, Timing]:
    timing = Timing()
    started = await client.post("/validate/check", data={"user": phone.username, "pass": pin})
    detail = started.json().get("detail") or {}
    transaction_id = detail.get("transaction_id")
    if not transaction_id:
        return f"trigger {started.status_code}", timing
    give_up = time.monotonic() + 60
    device = asyncio.create_task(phone_answers(client, phone, timing, interval, give_up))
    try:
        while time.monotonic() < give_up:
            polled = await client.get(
                "/validate/polltransaction", params={"transaction_id": transaction_id}
            )
            if polled.json()["result"].get("value"):
                break
            await asyncio.sleep(interval)
        else:
            return "timeout", timing
        final = await client.post(
            "/validate/check",
            data={"user": phone.username, "pass": "", "transaction_id": transaction_id},
        )
        if not final.json()["result"].get("value"):
            return "rejected", timing
        return None, timing
    finally:
        await device


async def run_level(
    server: Gunicorn,
    client: httpx.AsyncClient,
    phones: list[Phone],
    concurrency: int,
    duration: float,
    warmup: float,
    interval: float,
    password_hash: str,
) -> dict[str, Any]:
    now = time.monotonic()
    measure_from, deadline = now + warmup, now + warmup + duration
    samples: list[LoginSample] = []
    failures: Counter[str] = Counter()

    async def worker(index: int) -> None:
        position = index
        while time.monotonic() < deadline:
            phone = phones[position % len(phones)]
            position += concurrency
            started = time.monotonic()
            try:
                # With otppin=none privacyIDEA takes a PIN check as passed only for an empty PIN.
                pin = "" if password_hash == "none" else PIN
                problem, timing = await login(client, phone, interval, pin)
            except (httpx.HTTPError, ValueError, KeyError) as exc:
                failures[f"error {type(exc).__name__}"] += 1
                continue
            finished = time.monotonic()
            if problem is not None:
                failures[problem] += 1
            elif measure_from <= finished <= deadline:
                samples.append(
                    LoginSample(started, finished, timing.challenge_at, timing.answer_sent_at)
                )

    tasks = [asyncio.create_task(worker(i)) for i in range(concurrency)]
    await asyncio.sleep(warmup)
    cpu_before, rss = server.sample()
    own_before = resource.getrusage(resource.RUSAGE_SELF)
    machine_before = machine_busy_seconds()
    peak = rss
    while time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        peak = max(peak, server.sample()[1])
    cpu_after, _ = server.sample()
    own_after = resource.getrusage(resource.RUSAGE_SELF)
    machine_after = machine_busy_seconds()
    await asyncio.gather(*tasks)
    level = level_from_samples(
        system="privacyIDEA 3.14",
        password_hash=password_hash,
        concurrency=concurrency,
        duration=duration,
        samples=samples,
        failures=dict(failures),
        think_seconds=0.0,
        server_cpu_seconds=cpu_after - cpu_before,
        loadgen_cpu_seconds=(own_after.ru_utime + own_after.ru_stime)
        - (own_before.ru_utime + own_before.ru_stime),
        machine_cpu_seconds=machine_after - machine_before,
        server_peak_rss=peak,
    )
    level.notes = (
        f"gunicorn {server.workers} sync workers; application and phone poll every {interval} s"
    )
    print(
        json.dumps(
            {
                k: level.as_dict()[k]
                for k in (
                    "password_hash",
                    "concurrency",
                    "logins_per_second",
                    "latency_ms",
                    "failed",
                )
            }
        ),
        flush=True,
    )
    return level.as_dict()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--venv", type=Path, default=Path("/work/bench-venvs/privacyidea"))
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "pi-bench")
    parser.add_argument("--users", type=int, default=200, help="users, each with one push token")
    parser.add_argument("--concurrency", default="1,10,50,200")
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds per level")
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument(
        "--hash",
        choices=("none", "fast", "default", "both"),
        default="both",
        help="PIN hash cost: none (no PIN check), fast, default, or both fast and default",
    )
    parser.add_argument("--workers", type=int, default=4, help="gunicorn sync workers")
    parser.add_argument(
        "--interval",
        type=float,
        default=0.5,
        help="seconds between polls of the application and the phone",
    )
    parser.add_argument("--output", type=Path, default=Path("bench-results/privacyidea"))
    args = parser.parse_args()

    levels = [int(part) for part in args.concurrency.split(",")]
    hashes = ("fast", "default") if args.hash == "both" else (args.hash,)
    port = free_port()
    results: dict[str, Any] = {
        "machine": machine_info(),
        "options": {k: str(v) for k, v in vars(args).items()},
        "levels": [],
        "scale": None,
    }
    phones: list[Phone] = []
    limits = httpx.Limits(
        max_connections=2 * max(levels) + 10, max_keepalive_connections=2 * max(levels) + 10
    )
    for password_hash in hashes:
        write_settings(args.workdir, "fast" if password_hash == "none" else password_hash)
        server = Gunicorn(args.venv, args.workdir, port, args.workers)
        server.start()
        try:
            async with httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{port}", timeout=120, limits=limits
            ) as client:
                headers = {"Authorization": await admin_token(client)}
                if not phones:
                    phones = load_phones(args.workdir, args.users)
                if phones:
                    await configure(client, headers, args.workdir, args.users, port)
                    await set_pins(client, headers, phones)
                else:
                    await configure(client, headers, args.workdir, args.users, port)
                    started = time.monotonic()
                    phones = await enroll_all(client, headers, args.users, args.workers)
                    print(
                        f"enrolled {len(phones)} push tokens in {time.monotonic() - started:.0f} s",
                        flush=True,
                    )
                    save_phones(args.workdir, phones)
                await set_pin_check(client, headers, check=password_hash != "none")
                for concurrency in levels:
                    results["levels"].append(
                        await run_level(
                            server,
                            client,
                            phones,
                            concurrency,
                            args.duration,
                            args.warmup,
                            args.interval,
                            password_hash,
                        )
                    )
        finally:
            server.stop()
    for path in write_reports(results, args.output, plot=False):
        print(f"wrote {path}")


if __name__ == "__main__":
    asyncio.run(main())
