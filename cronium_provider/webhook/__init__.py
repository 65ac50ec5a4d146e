"""Cronium's workflow webhook, ``POST /api/workflows/webhook/<webhookKey>``, served by the Airflow api-server.

An Airflow plugin (:mod:`cronium_provider.webhook.plugin`, entry point ``airflow.plugins``) mounts a small
FastAPI app at ``/cronium`` under the api-server, so a Cronium caller changes only its base URL. The key
selects an ACTIVE ``WEBHOOK`` workflow of the records folder (:mod:`.keys`); the JSON body becomes the
run's input (conf ``{"input": <body>}``, i.e. ``cronium.input()``); the answers are Cronium's own
(:mod:`.app`); calls are rate limited per key (:mod:`.ratelimit`); and the key never reaches a log line:
a root middleware (:mod:`.redaction`) hides it from the api-server's access log.
"""
