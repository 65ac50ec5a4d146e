"""Headless Chromium for UI tests: Debian's chromium and chromedriver, driven by Selenium, offline.

Selenium is given chromedriver's path and ``SE_OFFLINE=true`` (Selenium Manager never downloads anything),
and Chromium resolves no host name but 127.0.0.1. ``login`` signs in on the Simple auth manager's form.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import missing

CHROMIUM = os.environ.get("CHROMIUM_BIN", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER_BIN", "/usr/bin/chromedriver")
WAIT = 60  # seconds for any one thing to appear in the browser


@contextmanager
def chromium(profile: Path, shots: Path, *, performance_log: bool = False) -> Iterator[Any]:
    """A headless Chromium session (``driver.shots`` is where failure screenshots go); ``performance_log``
    keeps the network events for ``driver.get_log("performance")``."""
    if not (Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK)):
        missing("Chromium", f"{CHROMIUM} not found; `make system` installs Debian's chromium")
    if not (Path(CHROMEDRIVER).is_file() and os.access(CHROMEDRIVER, os.X_OK)):
        missing("chromedriver", f"{CHROMEDRIVER} not found; `make system` installs Debian's chromium-driver")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError as exc:
        missing("selenium", f"{exc}; `make venv` installs the test extras")
    previous = os.environ.get("SE_OFFLINE")
    os.environ["SE_OFFLINE"] = "true"
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        "--window-size=1600,1000",
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    ):
        options.add_argument(arg)
    if performance_log:
        options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(WAIT)
    driver.shots = shots
    try:
        yield driver
    finally:
        driver.quit()
        if previous is None:
            os.environ.pop("SE_OFFLINE", None)
        else:
            os.environ["SE_OFFLINE"] = previous


def wait(driver: Any, condition: Callable[[Any], Any], what: str, timeout: float = WAIT) -> Any:
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, timeout).until(condition)
    except TimeoutException:
        shots: Path = driver.shots
        shots.mkdir(parents=True, exist_ok=True)
        shot = shots / f"failed-{re.sub(r'[^a-z0-9]+', '-', what.lower()).strip('-')}.png"
        driver.save_screenshot(str(shot))
        pytest.fail(f"timed out after {timeout}s waiting for {what} at {driver.current_url} (screenshot {shot})")


def login(driver: Any, base_url: str, user: str, password: str) -> None:
    """Sign in on the Simple auth manager's login page and wait for Airflow's home page."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec

    driver.get(base_url + "/")
    wait(driver, ec.presence_of_element_located((By.NAME, "username")), "the login form").send_keys(user)
    driver.find_element(By.NAME, "password").send_keys(password)
    wait(driver, ec.element_to_be_clickable((By.CSS_SELECTOR, "button[type=submit]")), "the sign-in button").click()
    wait(driver, lambda d: "/auth/login" not in d.current_url, "the login to complete")
    wait(driver, ec.presence_of_element_located((By.CSS_SELECTOR, "[data-testid=nav-dags-link]")), "the home page")
