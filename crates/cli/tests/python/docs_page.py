"""Loads a server's /docs (Swagger UI) in headless Chromium and reports, as
JSON on stdout: the operations the page shows, every URL the page asked
for, and where its screenshot went.

usage: docs_page.py BASE_URL SCREENSHOT_PATH EXPECTED_OPERATIONS
"""

import json
import sys
import tempfile

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

base, screenshot, expected = sys.argv[1], sys.argv[2], int(sys.argv[3])

options = webdriver.ChromeOptions()
options.binary_location = "/usr/bin/chromium"
profile = tempfile.mkdtemp(prefix="confstrata-chromium-")
for flag in (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,2400",
    f"--user-data-dir={profile}",
):
    options.add_argument(flag)
# Every request the page makes, from Chromium's own network log.
options.set_capability("goog:loggingPrefs", {"performance": "ALL"})

driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
try:
    driver.get(base + "/docs/")
    # Bounds a broken page only: the wait ends as soon as the operations show.
    WebDriverWait(driver, 120).until(
        lambda d: len(d.find_elements(By.CSS_SELECTOR, ".opblock")) >= expected
    )
    operations = [
        {
            "method": e.find_element(By.CSS_SELECTOR, ".opblock-summary-method").text,
            "path": e.find_element(By.CSS_SELECTOR, ".opblock-summary-path").get_attribute(
                "data-path"
            ),
        }
        for e in driver.find_elements(By.CSS_SELECTOR, ".opblock")
    ]
    title = driver.find_element(By.CSS_SELECTOR, ".info .title").text
    driver.save_screenshot(screenshot)
    requests = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message.get("method") == "Network.requestWillBeSent":
            requests.append(message["params"]["request"]["url"])
    print(json.dumps({"title": title, "operations": operations, "requests": requests}))
finally:
    driver.quit()
