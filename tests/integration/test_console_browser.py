"""The console in a real headless Chromium (Debian's chromium and chromium-driver, driven by Selenium; nothing is
downloaded): a transaction streamed through the real pipeline becomes an alert in the live queue, an analyst opens
it and marks it fraud, the label is on the labels topic and the verdict in the audit trail. A wrong password, a form
without its CSRF token and an analyst on an admin page are refused. Screenshots go to docs/screenshots/."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from console.db import session_factory
from console.schema import AuditEvent, VerdictRow
from console.server import Console, build_console
from fraudstream.clock import SystemClock
from fraudstream.contracts import Label, Transaction
from fraudstream.settings import Settings
from tests.console_support import PASSWORDS, add_users
from tests.streamer_kafka_support import EngineThread, isolated_settings, publish, read_all, wait_until
from tests.streamer_support import publish_tiny_model

pytestmark = pytest.mark.integration

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
DEFAULT_PORT = 29080  # the suite's console port unless FRAUD_CONSOLE__PORT says otherwise


class ServerThread:
    """uvicorn serving the console app in a thread of the test process, on 127.0.0.1:port."""

    def __init__(self, app: Any, port: int) -> None:
        import uvicorn

        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None,
                                                    access_log=False, lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, name="console-server", daemon=True)

    def __enter__(self) -> ServerThread:
        self.thread.start()
        wait_until(lambda: self.server.started or not self.thread.is_alive(), 30, "the console server")
        assert self.server.started, "the console server did not start (is the port taken?)"
        return self

    def __exit__(self, *_exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(30)


@pytest.fixture
def browser(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    for binary in (CHROMIUM, CHROMEDRIVER):
        assert binary.exists(), f"{binary} is missing: install Debian's chromium and chromium-driver (scripts/setup.sh)"
    monkeypatch.setenv("SE_OFFLINE", "true")  # Selenium Manager must never download a driver or a browser
    options = Options()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--window-size=1440,960", "--disable-extensions", "--no-first-run"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.implicitly_wait(0)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def live_console(stack_settings: Settings, unique_name: str, tmp_path: Path) -> Iterator[tuple[Console, Settings]]:
    publish_tiny_model(tmp_path / "registry")
    port = stack_settings.console.port if "FRAUD_CONSOLE__PORT" in os.environ else DEFAULT_PORT
    settings = isolated_settings(stack_settings, unique_name, tmp_path / "registry").with_overrides(
        database={"url": f"sqlite:///{tmp_path / 'console.db'}"},
        embedded={"state_dir": str(tmp_path / "state")},
        console={"consumer_group": f"{unique_name}-console", "scores_consumer_group": f"{unique_name}-scores",
                 "port": port},
    )
    console = build_console(settings, clock=SystemClock())
    add_users(console, SystemClock())  # type: ignore[arg-type]
    yield console, settings
    console.engine.dispose()


def _wait(driver: Any, seconds: float, condition: Any, what: str) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, seconds, poll_frequency=0.25).until(condition, message=f"waiting for {what}")


def _log_in(driver: Any, base: str, username: str, password: str) -> None:
    from selenium.webdriver.common.by import By

    driver.get(f"{base}/login")
    driver.find_element(By.ID, "username").send_keys(username)
    driver.find_element(By.ID, "password").send_keys(password)
    driver.find_element(By.ID, "login-button").click()


def test_an_alert_streamed_through_the_pipeline_is_marked_fraud_in_the_browser(
    live_console: tuple[Console, Settings], browser: Any, unique_name: str
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec

    console, settings = live_console
    base = f"http://127.0.0.1:{settings.console.port}"
    now = datetime.now(UTC).replace(microsecond=0)
    big = Transaction(transaction_id=f"TX-{unique_name[-8:]}", user_id="card-4711",
                      timestamp=now - timedelta(minutes=1), amount=5000.0, merchant_id="merchant-electronics-9",
                      merchant_category="electronics", country="FR", latitude=48.85, longitude=2.35)
    with ServerThread(console.app, settings.console.port):
        worker = EngineThread(settings, "browser").start()
        try:
            _log_in(browser, base, "ana", "not-her-password")
            refused = _wait(browser, 10, ec.presence_of_element_located((By.ID, "login-error")), "the refusal")
            assert "Wrong user name or password" in refused.text
            _log_in(browser, base, "ana", PASSWORDS["ana"])
            _wait(browser, 10, ec.presence_of_element_located((By.ID, "queue-rows")), "the queue")
            publish(settings, [big])  # through the streamer: features, score, alert, the console's consumer
            row = f'tr[data-transaction-id="{big.transaction_id}"]'
            _wait(browser, 60, ec.presence_of_element_located((By.CSS_SELECTOR, row)), "the alert in the live queue")
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            browser.save_screenshot(str(SCREENSHOTS / "queue.png"))
            browser.find_element(By.CSS_SELECTOR, f"{row} a.open-alert").click()
            _wait(browser, 10, ec.presence_of_element_located((By.ID, "verdict-fraud")), "the alert detail")
            assert "5,000.00 EUR" in browser.page_source and "merchant-electronics-9" in browser.page_source
            detail_url = browser.current_url
            # a form whose CSRF token is gone is refused, and nothing is sent
            browser.execute_script("document.querySelector('form.verdict input[name=csrf_token]').remove();")
            browser.find_element(By.ID, "verdict-legit").click()
            title = _wait(browser, 10, ec.presence_of_element_located((By.ID, "error-title")), "the CSRF refusal")
            assert title.text == "Form refused"
            browser.get(detail_url)
            browser.find_element(By.ID, "note").send_keys("customer confirms the card was stolen")
            browser.save_screenshot(str(SCREENSHOTS / "alert.png"))
            browser.find_element(By.ID, "verdict-fraud").click()
            _wait(browser, 20, ec.presence_of_element_located((By.ID, "verdict-done")), "the verdict recorded")
            assert browser.find_element(By.ID, "alert-status").text == "fraud"
            # an analyst on an admin page
            browser.get(f"{base}/users")
            title = _wait(browser, 10, ec.presence_of_element_located((By.ID, "error-title")), "the role refusal")
            assert title.text == "Forbidden"
        finally:
            worker.stop()
    labels = [m for m in read_all(settings, settings.topics.labels)
              if Label.model_validate_json(m.value()).transaction_id == big.transaction_id]
    assert len(labels) == 1, "exactly one label: the refused form sent none"
    label = Label.model_validate_json(labels[0].value())
    assert (label.is_fraud, label.user_id, label.merchant_id, label.transaction_timestamp) == (
        True, "card-4711", "merchant-electronics-9", big.timestamp)
    headers = dict(labels[0].headers())
    assert headers["analyst"] == b"ana" and headers["note"] == b"customer confirms the card was stolen"
    with session_factory(console.engine)() as db:
        verdict = db.scalars(select(AuditEvent).where(AuditEvent.action == "verdict")).one()
        assert (verdict.actor, verdict.source) == ("ana", "127.0.0.1") and big.transaction_id in verdict.detail
        failed = db.scalars(select(AuditEvent).where(AuditEvent.action == "login.failed")).one()
        assert failed.actor == "ana"
        assert [v.verdict for v in db.scalars(select(VerdictRow))] == ["fraud"]
