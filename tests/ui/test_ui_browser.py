"""The inspection page in headless Chromium (Selenium, Debian's chromedriver) against a real server.

Screenshots go to $KNNSERVE_ARTIFACTS (or pytest's temporary folder): see the ``artifacts`` fixture.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from knnserve.ui.images import png_bytes
from knnserve_client import Client
from ui_browser import answer_for, css, neighbours, open_page, pick_test_row, select_model, set_value, wait_for
from ui_fixtures import TOKEN, UiFactory, UiModels

@pytest.fixture(scope="module")
def page(start_ui: UiFactory, grpc_target: str) -> str:
    return start_ui(grpc_target)


def test_a_test_image_shows_the_servers_answer_and_neighbours(browser: Any, page: str, grpc_target: str,
                                                              ui_models: UiModels, artifacts: Path) -> None:
    open_page(browser, page)
    select_model(browser, "tiny")
    pick_test_row(browser, 5)
    row = ui_models.dataset.x_test[5:6]
    with Client(grpc_target, timeout=10) as client:
        k = client.model("tiny").defaults.k
        expected = client.classify("tiny", row, heads=["knn", "linear"])
        searched = client.search("tiny", row, k=k)
    shown = neighbours(browser)
    assert len(shown) == k
    assert [n["id"] for n in shown] == searched.ids[0].tolist()
    assert np.allclose([n["distance"] for n in shown], searched.distances[0], rtol=1e-6)
    names = ui_models.dataset.class_names
    for n, label in zip(shown, searched.labels[0]):
        assert n["image"] and n["label"] == label and names[label] in n["text"] and "d=" in n["text"]
    knn = css(browser, ".head-knn .prediction")[0]
    assert int(knn.get_attribute("data-class")) == int(expected.knn.predictions[0])
    assert knn.text == names[int(expected.knn.predictions[0])]
    assert int(css(browser, ".head-linear .prediction")[0].get_attribute("data-class")) == int(expected.linear.predictions[0])
    assert "Tie rule:" in css(browser, "#tie-rule")[0].text
    assert css(browser, "#latency")[0].text.endswith("ms")
    assert len(css(browser, ".template img")) == 3 and css(browser, "img.plot")  # the card: templates, CV curve
    browser.save_screenshot(str(artifacts / "ui-test-image.png"))


def test_changing_k_and_weighting_changes_the_answer(browser: Any, page: str, ui_models: UiModels, artifacts: Path) -> None:
    open_page(browser, page)
    select_model(browser, "tiny")
    pick_test_row(browser, 2)
    for k in (3, 9):
        set_value(browser, "#k", str(k))
        wait_for(browser, lambda d, k=k: len(neighbours(d)) == k, f"{k} neighbours")
    assert "k=9" in css(browser, "#answer")[0].text
    from selenium.webdriver.support.ui import Select

    Select(css(browser, "#weights")[0]).select_by_value("distance")
    wait_for(browser, lambda d: "Votes (distance)" in css(d, "#answer")[0].text, "distance-weighted votes")
    browser.save_screenshot(str(artifacts / "ui-k9-distance.png"))


def test_nprobe_is_offered_for_ivf_and_reaches_the_server(browser: Any, page: str) -> None:
    open_page(browser, page)
    select_model(browser, "tiny-ivf")
    assert css(browser, "#nprobe")[0].is_displayed() and not css(browser, "#ef-search")[0].is_displayed()
    pick_test_row(browser, 1)
    set_value(browser, "#nprobe", "4")
    wait_for(browser, lambda d: "nprobe=4" in css(d, "#answer")[0].text, "nprobe=4 in the answer")
    set_value(browser, "#nprobe", "40")
    wait_for(browser, lambda d: "nlist=4" in css(d, "#message")[0].text, "the server's message on nprobe above nlist")


def test_an_upload_is_classified(browser: Any, page: str, grpc_target: str, ui_models: UiModels, tmp_path: Path,
                                 artifacts: Path) -> None:
    image = ui_models.dataset.x_test[13]
    path = tmp_path / "row13.png"
    path.write_bytes(png_bytes(image))
    open_page(browser, page)
    select_model(browser, "tiny")
    css(browser, '.tab[data-tab="upload"]')[0].click()
    css(browser, "#upload")[0].send_keys(str(path))
    answer_for(browser, "uploaded image")
    with Client(grpc_target, timeout=10) as client:
        expected = client.classify("tiny", image[None])
        searched = client.search("tiny", image[None])
    assert int(css(browser, ".head-knn .prediction")[0].get_attribute("data-class")) == int(expected.knn.predictions[0])
    assert [n["id"] for n in neighbours(browser)] == searched.ids[0].tolist()
    browser.save_screenshot(str(artifacts / "ui-upload.png"))


def test_a_bad_upload_shows_a_readable_message(browser: Any, page: str, tmp_path: Path, artifacts: Path) -> None:
    open_page(browser, page)
    select_model(browser, "tiny")
    css(browser, '.tab[data-tab="upload"]')[0].click()
    not_an_image = tmp_path / "notes.png"
    not_an_image.write_text("these are notes, not pixels")
    css(browser, "#upload")[0].send_keys(str(not_an_image))
    wait_for(browser, lambda d: css(d, "#message")[0].is_displayed(), "a message")
    message = css(browser, "#message")[0].text
    assert "expected a PNG or JPEG file" in message and "Traceback" not in browser.page_source
    wrong_size = tmp_path / "big.png"
    wrong_size.write_bytes(png_bytes(np.zeros((40, 30), dtype=np.uint8)))
    css(browser, "#upload")[0].send_keys(str(wrong_size))
    wait_for(browser, lambda d: "got a 30x40 image" in css(d, "#message")[0].text, "the size message")
    browser.save_screenshot(str(artifacts / "ui-bad-upload.png"))
    css(browser, "#resize")[0].click()  # sends the chosen file again, resized this time
    answer_for(browser, "uploaded image")
    assert not css(browser, "#message")[0].is_displayed()


def test_a_drawing_is_classified(browser: Any, page: str) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    open_page(browser, page)
    select_model(browser, "tiny")
    css(browser, '.tab[data-tab="draw"]')[0].click()
    canvas = css(browser, "#canvas")[0]
    ActionChains(browser).move_to_element_with_offset(canvas, -60, -80).click_and_hold().move_by_offset(0, 160).release().perform()
    css(browser, "#draw-send")[0].click()
    answer_for(browser, "uploaded image")
    assert neighbours(browser)


def test_worst_pairs_open_their_examples(browser: Any, page: str, ui_models: UiModels, artifacts: Path) -> None:
    open_page(browser, page)
    select_model(browser, "tiny")
    css(browser, "#confusion-run")[0].click()
    wait_for(browser, lambda d: css(d, "table.confusion") and css(d, "a.pair"), "the confusion matrix")
    css(browser, "a.pair")[0].click()
    wait_for(browser, lambda d: css(d, "#examples .test-thumb"), "examples of the worst pair")
    example = css(browser, "#examples .test-thumb")[0]
    row = int(example.get_attribute("data-row"))
    example.click()
    answer_for(browser, f"test row {row},")
    predicted = int(css(browser, ".head-knn .prediction")[0].get_attribute("data-class"))
    assert predicted != int(ui_models.dataset.y_test[row])  # a confused example is misclassified
    browser.save_screenshot(str(artifacts / "ui-confusion.png"))


def test_the_token_is_asked_for_when_auth_is_on(browser: Any, start_ui: UiFactory, grpc_auth_target: str,
                                                artifacts: Path) -> None:
    page = start_ui(grpc_auth_target)
    open_page(browser, page)
    wait_for(browser, lambda d: css(d, "#message")[0].is_displayed(), "a message")
    assert "missing bearer token" in css(browser, "#message")[0].text
    assert css(browser, "#token-form")[0].is_displayed() and not css(browser, ".test-thumb")
    browser.save_screenshot(str(artifacts / "ui-token-asked.png"))
    css(browser, "#token")[0].send_keys("wrong")
    css(browser, "#token-save")[0].click()
    wait_for(browser, lambda d: "wrong bearer token" in css(d, "#message")[0].text, "the wrong token refused")
    css(browser, "#token")[0].clear()
    css(browser, "#token")[0].send_keys(TOKEN)
    css(browser, "#token-save")[0].click()
    select_model(browser, "tiny")
    pick_test_row(browser, 0)
    assert neighbours(browser)


def test_the_test_split_pages_and_filters_by_class(browser: Any, page: str, ui_models: UiModels) -> None:
    from selenium.webdriver.support.ui import Select

    open_page(browser, page)
    select_model(browser, "tiny")
    wait_for(browser, lambda d: css(d, '.test-thumb[data-row="0"]'), "the first page")
    assert css(browser, "#test-range")[0].text == "1–24 of 60"
    css(browser, "#test-next")[0].click()
    wait_for(browser, lambda d: css(d, '#test-grid .test-thumb[data-row="24"]'), "the second page")
    Select(css(browser, "#test-label")[0]).select_by_value("2")
    rows = np.flatnonzero(ui_models.dataset.y_test == 2)
    wait_for(browser, lambda d: css(d, "#test-range")[0].text == f"1–{min(24, rows.size)} of {rows.size}", "class 2 only")
    shown = [int(t.get_attribute("data-row")) for t in css(browser, "#test-grid .test-thumb")]
    assert shown == rows[:24].tolist()
