"""Tool actions a script asks for (``send_slack_message``, ``send_email``...): carried out after the script
ends, in order, through the guarded tool-action path (connections, rate limits, retries), each result in the
XCom ``actions`` and the log. A real container run; a loopback receiver and a real SMTP server get them."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest

from tests.conftest import _free_port
from tests.support.airflow_run import run_dag
from tests.support.http_receiver import HttpReceiver, text_answer
from tests.test_script_events import _CAPFD, _task_logs, nothing_left_behind, script_dag  # noqa: F401

SCRIPT = """
cronium.send_slack_message("#ops", "deploy done")
for i in range(32):
    cronium.send_email("ops@example.test", f"Report {i}", f"<p>{i}</p>")
print("the script ended")
"""


@pytest.mark.docker
def test_a_script_sends_slack_and_email_after_it_ends_with_rate_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    from aiosmtpd.controller import Controller
    from aiosmtpd.handlers import Message

    received: list[Any] = []

    class Collect(Message):
        def handle_message(self, message: Any) -> None:
            received.append((time.time(), message))

    slack = HttpReceiver(routes={"POST /services/T0/B0/x": lambda r: text_answer("ok")}).start()
    port = _free_port()
    smtp = Controller(Collect(), hostname="127.0.0.1", port=port)
    smtp.start()
    monkeypatch.setenv(
        "AIRFLOW_CONN_CRONIUM_TOOL_SLACK",
        json.dumps({"conn_type": "slackwebhook", "password": f"{slack.url}/services/T0/B0/x"}),
    )
    monkeypatch.setenv(
        "AIRFLOW_CONN_CRONIUM_TOOL_EMAIL",
        json.dumps(
            {
                "conn_type": "smtp",
                "host": "127.0.0.1",
                "port": port,
                "extra": json.dumps({"disable_ssl": True, "disable_tls": True, "from_email": "cronium@example.test"}),
            }
        ),
    )
    try:
        dag, _ = script_dag("PYTHON", SCRIPT, event={"id": 5, "userId": f"u-{uuid.uuid4().hex[:8]}"})
        result = run_dag(dag, capfd=_CAPFD[-1])
        deadline = time.monotonic() + 10
        while len(received) < 30 and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        smtp.stop()
        slack.stop()
    text = result.log_text()
    # every request was made by the script before it ended; each was sent after that, in order
    assert text.index("the script ended") < text.index("in-script action 1 (slack slack-send-message) sent")
    [message] = [r for r in slack.requests if r.path == "/services/T0/B0/x"]
    assert json.loads(message.body)["text"] == "deploy done"
    # email's limit is 30 a minute, all at once if they come at once: Cronium applies no burst rule
    # (apps/cronium-app/src/lib/security/rate-limiter.ts:44-48, 117-198)
    assert [m["Subject"] for _, m in received] == [f"Report {i}" for i in range(30)]
    actions = result.xcom("run", "actions")
    assert [a["status"] for a in actions] == ["SUCCESS"] * 31 + ["FAILURE"] * 2
    assert all("rate limit for email tool actions" in a["error"] for a in actions[31:])
    # a request that could not be sent fails the run, naming it
    assert result.state == "failed"
    assert "Tool action(s) the script asked for failed: action 32 (email send-email)" in text
