#!/usr/bin/env python3
"""A scraper in Python that drives rtcv_scraper_client in mock mode (nothing is sent anywhere).

    python3 examples/mock_scraper.py

The client is a child process: write one JSON command per line to its stdin, read one JSON answer per line
from its stdout. Its first line is the ready line. With the command installed (`deno task install`) or the
compiled binary, start ["rtcv_scraper_client"] instead of deno; here the deno is $DENO, else deno on PATH,
else `npx -y deno@2.9.6` (Deno from the npm registry).
"""
import json
import os
import shutil
import subprocess
import sys

MAIN_TS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "main.ts")


def client_command():
    if os.environ.get("DENO"):
        deno = [os.environ["DENO"]]
    elif shutil.which("deno"):
        deno = ["deno"]
    else:
        deno = ["npx", "-y", "deno@2.9.6"]
    return deno + ["run", "-A", MAIN_TS]


class ClientError(Exception):
    """The client answered an error line; the message says what was wrong."""


class Client:
    def __init__(self):
        env = dict(os.environ, RTCV_SCRAPER_CLIENT_KV=":memory:")
        self.process = subprocess.Popen(
            client_command(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, text=True, bufsize=1
        )
        ready = json.loads(self.process.stdout.readline())
        if ready.get("type") != "ready":
            raise RuntimeError(f"expected the ready line, got {ready}")

    def call(self, type_, content=None):
        """Sends one command and returns the content of its answer (raises ClientError on an error answer)."""
        line = {"type": type_} if content is None else {"type": type_, "content": content}
        self.process.stdin.write(json.dumps(line) + "\n")
        self.process.stdin.flush()
        answer = json.loads(self.process.stdout.readline())
        if answer["type"] == "error":
            raise ClientError(answer["content"])
        return answer.get("content")

    def close(self):
        """Ends the client's input: it answers what is in flight, closes its store and exits."""
        self.process.stdin.close()
        return self.process.wait()


def main():
    # A real scraper would fetch these from a website.
    scraped = [
        {"referenceNumber": "vacancy-1", "presentation": "Experienced welder", "driversLicenses": ["B"]},
        {"referenceNumber": "vacancy-2", "presentation": "Junior developer"},
        {"referenceNumber": "vacancy-1", "presentation": "Experienced welder (seen again)"},
    ]
    client = Client()
    client.call("set_mock", {"secrets": {"login": {"username": "scraper", "password": "hunter2"}}})
    login = client.call("get_user_secret", {"key": "login", "encryption_key": "not used in mock mode"})
    print(f"login: {login['username']}")
    for cv in scraped:
        if client.call("has_cached_reference", cv["referenceNumber"]):
            print(f"skip {cv['referenceNumber']}: already scraped")
            continue
        matched = client.call("send_cv", cv)
        print(f"sent {cv['referenceNumber']}: {'matched' if matched else 'no match'}")
    try:
        client.call("send_cv", {"referenceNumber": ""})
    except ClientError as error:
        print(f"rejected: {error}")
    client.call("ping")
    print(f"client exited with code {client.close()}")


if __name__ == "__main__":
    sys.exit(main())
