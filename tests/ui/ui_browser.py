"""Selenium helpers of the inspection page's browser tests (importable by test modules)."""

from __future__ import annotations

from typing import Any

WAIT_S = 20


def wait_for(driver: Any, condition: Any, message: str) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, WAIT_S).until(condition, message)


def css(driver: Any, selector: str) -> list[Any]:
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, selector)


def open_page(driver: Any, url: str) -> None:
    driver.get(url)
    driver.execute_script("sessionStorage.clear()")
    driver.get(url)


def select_model(driver: Any, name: str) -> None:
    from selenium.webdriver.support.ui import Select

    wait_for(driver, lambda d: any(o.get_attribute("value") == name for o in css(d, "#model option")), f"model {name} listed")
    Select(css(driver, "#model")[0]).select_by_value(name)
    wait_for(driver, lambda d: name in (css(d, "#card-body")[0].text or ""), f"card of {name}")


def neighbours(driver: Any) -> list[dict[str, Any]]:
    """The neighbours shown, read in one script call (the page may redraw between two Selenium calls)."""
    return driver.execute_script("""
        return Array.from(document.querySelectorAll('#neighbors .neighbor')).map((n) => ({
            id: Number(n.dataset.id), label: Number(n.dataset.label), distance: Number(n.dataset.distance),
            text: n.innerText, image: n.querySelector('img') !== null}));""")


def answer_for(driver: Any, what: str) -> None:
    wait_for(driver, lambda d: what in (css(d, "#query-what")[0].text if css(d, "#query-what") else ""), f"an answer for {what}")


def pick_test_row(driver: Any, row: int) -> None:
    wait_for(driver, lambda d: css(d, f'.test-thumb[data-row="{row}"]'), f"test row {row} shown")
    css(driver, f'#test-grid .test-thumb[data-row="{row}"]')[0].click()
    answer_for(driver, f"test row {row},")


def set_value(driver: Any, selector: str, value: str) -> None:
    """Type into an input and fire its change event, as a user leaving the field does."""
    element = css(driver, selector)[0]
    element.clear()
    element.send_keys(value)
    driver.execute_script("arguments[0].dispatchEvent(new Event('change'))", element)
