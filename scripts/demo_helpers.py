"""The small programs `make demo` runs beside Airflow, and the demo's copy of the example records.

    demo_helpers.py records SRC DEST --address A --ssh-port P --ssh-port2 P2 --ssh-user U --http-port H
        copies the record files of SRC into DEST with the demo's own addresses: the servers at the template's
        demo sshd (127.0.0.80:2222 and :2223, user cronium-demo) and URLs at its HTTP endpoint
        (http://127.0.0.80:8765) get the ones given. Nothing else changes.
    demo_helpers.py smtp --address A --port P --mbox FILE
        a mail catcher (aiosmtpd): every message it receives is appended to the mbox FILE.
    demo_helpers.py http --address A --port P --log FILE
        an HTTP endpoint (http.server): every request is appended to FILE as one JSON line (time, method,
        path, headers, body); GET answers a small JSON inventory, other methods answer "ok" (as Slack's and
        Teams' webhooks do).

Each server binds the loopback address it is given and runs until SIGTERM or SIGINT. The HTTP endpoint takes
bodies of at most 1 MiB (else 413, the body unread) and drops a connection silent for 10 s.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import mailbox
import signal
import sys
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

# What the records in dags_templates/records name: the demo's defaults.
TEMPLATE_ADDRESS = "127.0.0.80"
TEMPLATE_SSH_PORTS = (2222, 2223)
TEMPLATE_SSH_USER = "cronium-demo"
TEMPLATE_HTTP = f"http://{TEMPLATE_ADDRESS}:8765"
RECORD_SUFFIXES = (".json", ".yaml", ".yml")
MAX_BODY = 1024 * 1024  # bytes of one request's body the HTTP endpoint reads and logs
IDLE_SECONDS = 10  # the HTTP endpoint drops a connection that sends nothing for this long


def loopback(value: str) -> str:
    if not ipaddress.ip_address(value).is_loopback:
        raise argparse.ArgumentTypeError(f"{value} is not a loopback address (127.0.0.0/8)")
    return value


# ------------------------------------------------------------------------------------------------ records


def _rewrite(value: Any, args: argparse.Namespace) -> Any:
    if isinstance(value, list):
        return [_rewrite(v, args) for v in value]
    if isinstance(value, str):
        return value.replace(TEMPLATE_HTTP, f"http://{args.address}:{args.http_port}")
    if not isinstance(value, dict):
        return value
    out = {k: _rewrite(v, args) for k, v in value.items()}
    if out.get("address") == TEMPLATE_ADDRESS and out.get("port") in TEMPLATE_SSH_PORTS:
        out["address"] = args.address
        out["port"] = args.ssh_port if out["port"] == TEMPLATE_SSH_PORTS[0] else args.ssh_port2
        if out.get("username") == TEMPLATE_SSH_USER:
            out["username"] = args.ssh_user
    return out


def cmd_records(args: argparse.Namespace) -> None:
    import yaml

    src, dest = Path(args.src), Path(args.dest)
    dest.mkdir(parents=True, exist_ok=True)
    wanted = set()
    for path in sorted(src.rglob("*")):
        if not (path.is_file() and path.suffix in RECORD_SUFFIXES):
            continue
        rel = path.relative_to(src)
        wanted.add(rel)
        text = path.read_text()
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
        new = _rewrite(data, args)
        if path.suffix == ".json":
            out = json.dumps(new, indent=2) + "\n"
        else:
            header = f"# The demo's copy of {path} (scripts/demo.sh): edit that file, not this one.\n"
            out = header + yaml.safe_dump(new, sort_keys=False, width=120)
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists() or target.read_text() != out:
            tmp = target.with_name(f".{target.name}.tmp")
            tmp.write_text(out)
            tmp.replace(target)
    for path in dest.rglob("*"):  # a record file removed from SRC leaves the demo's copy too
        if path.is_file() and path.suffix in RECORD_SUFFIXES and path.relative_to(dest) not in wanted:
            path.unlink()


# ------------------------------------------------------------------------------------------------ servers


def _wait_for_signal() -> None:
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.wait(3600):
        pass


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def cmd_smtp(args: argparse.Namespace) -> None:
    from aiosmtpd.controller import Controller
    from aiosmtpd.handlers import Message

    box_path = Path(args.mbox)
    lock = threading.Lock()

    class Mbox(Message):  # type: ignore[misc]
        def handle_message(self, message: Any) -> None:
            with lock:
                box = mailbox.mbox(box_path)
                box.lock()
                try:
                    box.add(message)
                    box.flush()
                finally:
                    box.unlock()
                    box.close()
            print(
                f"{_now()} mail from {message['X-MailFrom']} to {message['X-RcptTo']}: {message['Subject']}", flush=True
            )

    controller = Controller(Mbox(), hostname=args.address, port=args.port)
    controller.start()
    print(f"{_now()} mail catcher on {args.address}:{args.port}, mailbox {box_path}", flush=True)
    try:
        _wait_for_signal()
    finally:
        controller.stop()


def cmd_http(args: argparse.Namespace) -> None:
    log_path = Path(args.log)
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        server_version = "cronium-demo"
        timeout = IDLE_SECONDS  # a request line, header or body that stops coming ends the connection

        def _handle(self) -> None:
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                length = -1
            if not 0 <= length <= MAX_BODY:
                self.send_error(413 if length > MAX_BODY else 400, f"a body of 0 to {MAX_BODY} bytes only")
                self.close_connection = True
                return
            body = self.rfile.read(length).decode(errors="replace")
            entry = {
                "time": _now(),
                "method": self.command,
                "path": self.path,
                "headers": dict(self.headers.items()),
                "body": body,
            }
            with lock, log_path.open("a") as log:
                log.write(json.dumps(entry) + "\n")
            if self.command == "GET":
                answer = json.dumps(
                    {
                        "service": "inventory",
                        "path": self.path,
                        "time": entry["time"],
                        "items": [{"sku": "A-1", "stock": 12}, {"sku": "B-2", "stock": 0}],
                    }
                )
                kind = "application/json"
            else:
                answer, kind = "ok", "text/plain"
            data = answer.encode()
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

        def log_message(self, format: str, *items: Any) -> None:
            print(f"{_now()} {self.address_string()} {format % items}", flush=True)

    server = ThreadingHTTPServer((args.address, args.port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(f"{_now()} HTTP endpoint on http://{args.address}:{args.port}, requests logged to {log_path}", flush=True)
    try:
        _wait_for_signal()
    finally:
        server.shutdown()
        server.server_close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    rec = sub.add_parser("records")
    rec.add_argument("src")
    rec.add_argument("dest")
    rec.add_argument("--address", type=loopback, required=True)
    rec.add_argument("--ssh-port", type=int, required=True)
    rec.add_argument("--ssh-port2", type=int, required=True)
    rec.add_argument("--ssh-user", required=True)
    rec.add_argument("--http-port", type=int, required=True)
    for name in ("smtp", "http"):
        p = sub.add_parser(name)
        p.add_argument("--address", type=loopback, required=True)
        p.add_argument("--port", type=int, required=True)
        p.add_argument("--mbox" if name == "smtp" else "--log", required=True)
    args = parser.parse_args(argv)
    {"records": cmd_records, "smtp": cmd_smtp, "http": cmd_http}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
