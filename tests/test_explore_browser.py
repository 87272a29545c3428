"""`convscope explore` in a real browser: headless Chromium driven by Selenium.

The page is loaded from a server on port 0; the tests change stride and padding, click output
cells and compare the explain panel with the engine's output (and PyTorch's), open the network
view, hover a cell and check its receptive field, open a layer of the trained network in the
playground and drop an image.  Screenshots are written to each test's tmp_path (and copied to
$EXPLORE_SCREENSHOTS when set).  With CI=true a missing browser or driver fails the tests.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import convscope as cs
from convscope.cli.explain import build
from convscope.explore import make_server, network
from convscope.explore.options import parse_query

CI = os.environ.get("CI", "").lower() == "true"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,1000",
)


def _missing(what: str):
    message = f"{what} (install: apt-get install -y chromium chromium-driver; pip install selenium)"
    if CI:
        pytest.fail(f"CI=true but {message}")
    pytest.skip(message)


def _find(*names: str) -> str | None:
    for name in names:
        found = shutil.which(name) or (name if os.path.isfile(name) else None)
        if found:
            return found
    return None


@pytest.fixture(scope="module")
def server():
    network.configure(None)  # the bundled trained network
    srv = make_server(port=0)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture(scope="module")
def driver():
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _missing("selenium is not installed")
    binary = _find("chromium", "chromium-browser", "google-chrome")
    chromedriver = _find("chromedriver", "/usr/lib/chromium/chromedriver")
    if binary is None or chromedriver is None:
        _missing("Chromium or chromedriver is not installed")
    profile = tempfile.mkdtemp(prefix="explore-chromium-")
    options = webdriver.ChromeOptions()
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.binary_location = binary
    browser = webdriver.Chrome(options=options, service=Service(chromedriver))
    browser.set_page_load_timeout(60)
    yield browser
    browser.quit()
    shutil.rmtree(profile, ignore_errors=True)


def shot(driver, tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.png"
    driver.save_screenshot(str(path))
    target = os.environ.get("EXPLORE_SCREENSHOTS")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(target) / path.name)
    assert path.stat().st_size > 10_000
    return path


def settle(driver, timeout: float = 90.0) -> None:
    """Wait until the page has started and no API request is in flight."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        done = driver.execute_script(
            "return document.body.dataset.ready === '1' && document.body.dataset.pending === '0'"
        )
        if done:
            time.sleep(0.05)
            if driver.execute_script("return document.body.dataset.pending") == "0":
                return
        time.sleep(0.05)
    raise AssertionError("the page did not settle")


def until(condition, timeout: float = 90.0, what: str = "condition"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def by_id(driver, name: str):
    from selenium.webdriver.common.by import By

    return driver.find_element(By.ID, name)


def css(driver, selector: str):
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, selector)


def type_into(driver, name: str, text: str) -> None:
    field = by_id(driver, name)
    field.clear()
    field.send_keys(text)


def open_page(driver, server) -> None:
    driver.get(server.url)
    settle(driver)
    assert driver.title == "convscope explore"


def engine_output(query: dict, index: tuple[int, ...]) -> float:
    """The layer explain builds for these options, run by the engine, at ``index``."""
    args = parse_query("explain", {key: [value] for key, value in query.items()})
    layer, x, _ = build(args)
    with cs.no_grad():
        y = layer(x)
    return y.numpy()[index], layer, x


def test_playground_stride_padding_and_explain(driver, server, tmp_path, reference):
    open_page(driver, server)
    assert "= 5 + 2*0 - 1*(3-1) = 3" in by_id(driver, "formula").text
    assert len(css(driver, "#output .cell")) == 9
    shot(driver, tmp_path, "1_playground_start")
    type_into(driver, "f-stride", "2")
    type_into(driver, "f-padding", "1")
    until(lambda: "stride=(2, 2), padding=(1, 1)" in by_id(driver, "formula").text, what="layer")
    settle(driver)
    assert (
        "floor((5 + 2*1 - 1*(3-1) - 1) / 2) + 1 = floor(4 / 2) + 1 = 3"
        in by_id(driver, "formula").text
    )
    grid = css(driver, "#grid .cell")
    assert len(grid) == 49  # 5x5 padded by 1 on every side
    css(driver, "#output .cell")[5].click()  # y[0, 0, 1, 2]
    settle(driver)
    total = by_id(driver, "explain-total")
    query = {
        "dim": "2",
        "input-size": "5,5",
        "in-channels": "1",
        "out-channels": "1",
        "kernel-size": "3",
        "stride": "2",
        "padding": "1",
        "dilation": "1",
        "groups": "1",
        "seed": "0",
        "dtype": "int64",
    }
    expected, layer, x = engine_output(query, (0, 0, 1, 2))
    assert int(total.get_attribute("data-value")) == int(expected)
    assert int(by_id(driver, "explain-actual").get_attribute("data-value")) == int(expected)
    assert by_id(driver, "explain-verdict").text.startswith("MATCH")
    torch = reference
    with torch.no_grad():
        reference_y = torch.nn.functional.conv2d(
            torch.tensor(x.numpy()),
            torch.tensor(layer.weight.numpy()),
            torch.tensor(layer.bias.numpy()),
            stride=2,
            padding=1,
        )
    assert int(reference_y[0, 0, 1, 2]) == int(expected)
    # the window drawn for that position: the 3x3 cells the engine's tap map names
    shaded = driver.execute_script(
        "return [...document.querySelectorAll('#grid .cell')]"
        ".filter((c) => getComputedStyle(c).color === 'rgb(255, 255, 255)')"
        ".map((c) => Number(c.dataset.i))"
    )
    assert shaded == [r * 7 + c for r in (2, 3, 4) for c in (4, 5, 6)]
    shot(driver, tmp_path, "2_playground_explained")
    # float numbers: the panel's total agrees with the engine's output to float32 rounding
    from selenium.webdriver.support.ui import Select

    Select(by_id(driver, "f-dtype")).select_by_value("float32")
    until(lambda: css(driver, "#explain[hidden]"), what="a new layer")
    settle(driver)
    css(driver, "#output .cell")[3].click()  # y[0, 0, 1, 0]
    settle(driver)
    expected, _, _ = engine_output({**query, "dtype": "float32"}, (0, 0, 1, 0))
    shown = float(by_id(driver, "explain-total").get_attribute("data-value"))
    assert shown == pytest.approx(float(expected), rel=1e-6, abs=1e-6)
    assert float(by_id(driver, "explain-actual").get_attribute("data-value")) == float(expected)


def test_impossible_combination_shows_pytorchs_error(driver, server, tmp_path):
    open_page(driver, server)
    type_into(driver, "f-kernel-size", "9")
    error = until(lambda: by_id(driver, "error").is_displayed() and by_id(driver, "error"))
    assert "Kernel size can't be greater than actual input size" in error.text
    assert error.text.startswith("RuntimeError: Calculated padded input size per channel: (5 x 5)")
    shot(driver, tmp_path, "3_error_in_place")
    type_into(driver, "f-groups", "2")  # still impossible, now for another reason
    until(lambda: "in_channels must be divisible by groups" in by_id(driver, "error").text)
    type_into(driver, "f-groups", "1")
    type_into(driver, "f-kernel-size", "2")
    until(lambda: not by_id(driver, "error").is_displayed(), what="the error to go")
    settle(driver)
    assert len(css(driver, "#output .cell")) == 16  # the page kept working: 4x4 output


def test_presets_transposed_and_player(driver, server, tmp_path):
    from selenium.webdriver.support.ui import Select

    open_page(driver, server)
    Select(by_id(driver, "preset")).select_by_visible_text("transposed, strides, padding")
    until(lambda: "ConvTranspose2d" in by_id(driver, "formula").text, what="the preset")
    settle(driver)
    formula = by_id(driver, "formula").text
    assert "(3 - 1)*2 - 2*1 + 1*(3-1) + 0 + 1 = 5" in formula
    kinds = {c.get_attribute("title").split(" ")[0] for c in css(driver, "#grid .cell")}
    assert {"input", "inserted", "padding"} <= kinds
    by_id(driver, "play").click()
    until(lambda: "position 3 of 25" in by_id(driver, "step-text").text, what="playing")
    by_id(driver, "play").click()  # pause
    by_id(driver, "step-back").click()
    shot(driver, tmp_path, "4_transposed_playing")
    css(driver, "#output .cell")[12].click()
    settle(driver)
    assert by_id(driver, "explain-verdict").text.startswith("MATCH")
    assert "receives input j where" in by_id(driver, "explain").text
    Select(by_id(driver, "preset")).select_by_visible_text("1-d causal, dilated")
    until(lambda: "Conv1d" in by_id(driver, "formula").text, what="the 1-d preset")
    settle(driver)
    assert len(css(driver, "#output .cell")) == 10


def test_network_view_hover_and_open_layer(driver, server, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains

    open_page(driver, server)
    by_id(driver, "tab-network").click()
    until(lambda: css(driver, "#network-columns .column"), what="the network")
    settle(driver)
    names = [c.text.split("\n")[0] for c in css(driver, "#network-columns .column h4")]
    assert names[:6] == ["input", "conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1"]
    assert names[-1] == "class probabilities"
    net = network.current()
    _, image = net.samples[0]
    run = net.run(net.prepare(image))
    best = int(np.argmax(run.probabilities))
    assert css(driver, ".prob.top .name")[0].text == net.classes[best]
    assert f"prediction: {net.classes[best]}" in by_id(driver, "network-status").text
    # hover the centre of channel 1 of pool1 (14x14): cell (7, 7)
    target = css(driver, '.map[data-layer="5"] canvas')[1]
    ActionChains(driver).move_to_element_with_offset(target, 2, 2).perform()  # 30 px of 56
    until(lambda: css(driver, '.map[data-layer="0"] .rf'), what="the receptive field")
    settle(driver)
    info = by_id(driver, "hover-info").text
    assert info.startswith("pool1 channel 1 (7, 7) = "), info
    # pool1 (7,7) <- conv1_2 rows 14..15 <- conv1_1 rows 13..16 <- input rows 12..17
    assert "receptive field in the input: rows 12..17, columns 12..17 (6x6)" in info
    value = float(info.split(" = ")[1].split(";")[0])
    assert value == pytest.approx(float(run.records[4].output[0, 1, 7, 7]), abs=6e-5)
    box = css(driver, '.map[data-layer="0"] .rf')[0]
    size = box.size
    assert size["width"] == pytest.approx(6 / 28 * 56, abs=1.5)
    assert len(css(driver, '.map[data-layer="1"] .rf')) == 16  # every shown conv1_1 channel
    shot(driver, tmp_path, "5_network_hover")
    # click conv2_1 (column 6), channel 3: the playground opens that layer and element
    target = css(driver, '.map[data-layer="6"] canvas')[3]
    ActionChains(driver).move_to_element_with_offset(target, -20, -20).click().perform()
    until(lambda: by_id(driver, "network-banner").is_displayed(), what="the playground")
    settle(driver)
    assert "conv2_1" in by_id(driver, "network-banner-text").text
    assert by_id(driver, "formula").text.startswith("Conv2d(16, 32, kernel_size=(3, 3)")
    heading = by_id(driver, "explain").text.split("\n")[0]
    i, j = (int(v) for v in heading[heading.index("[") + 1 : heading.index("]")].split(", ")[2:])
    conv = next(r for r in run.records if r.name == "conv2_1")
    shown = float(by_id(driver, "explain-total").get_attribute("data-value"))
    assert shown == pytest.approx(float(conv.output[0, 3, i, j]), rel=1e-5, abs=1e-5)
    assert by_id(driver, "explain-verdict").text.startswith("MATCH")
    assert i < 4 and j < 4  # near the top-left corner where the click was
    shot(driver, tmp_path, "6_network_layer_in_playground")
    by_id(driver, "leave-network").click()
    until(lambda: by_id(driver, "layer-form").is_displayed(), what="the free playground")
    settle(driver)


def test_dropped_image(driver, server, tmp_path):
    from PIL import Image, ImageDraw

    picture = Image.new("RGB", (60, 80), "black")
    ImageDraw.Draw(picture).rectangle((15, 10, 45, 70), fill="white")  # a bright upright shape
    path = tmp_path / "shape.png"
    picture.save(path)
    open_page(driver, server)
    by_id(driver, "tab-network").click()
    until(lambda: css(driver, "#network-columns .column"), what="the network")
    settle(driver)
    by_id(driver, "file").send_keys(str(path))
    until(lambda: "your image" in by_id(driver, "network-status").text, what="the upload")
    settle(driver)
    net = network.current()
    run = net.run(net.prepare(picture))
    best = net.classes[int(np.argmax(run.probabilities))]
    assert f"prediction: {best}" in by_id(driver, "network-status").text
    shot(driver, tmp_path, "7_dropped_image")
    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    by_id(driver, "file").send_keys(str(text))
    until(lambda: "not an image" in by_id(driver, "network-status").text, what="the refusal")


def test_typed_in_numbers_match_the_command_line(driver, server, tmp_path, capsys):
    """Seed 003's integer example typed into the page gives explain's own numbers."""
    import json

    from convscope.cli import main

    image = "[[1,2,0,3,1],[0,1,2,3,1],[1,2,1,0,0],[5,2,3,1,1],[2,1,0,1,1]]"
    kernel = "[[1,2,1],[0,1,0],[2,1,0]]"
    open_page(driver, server)
    css(driver, "#controls details summary")[0].click()
    type_into(driver, "f-padding", "1")
    by_id(driver, "f-bias").click()  # no bias
    type_into(driver, "f-input", image)
    type_into(driver, "f-weight", kernel)
    until(lambda: "bias=False" in by_id(driver, "formula").text, what="the typed layer")
    settle(driver)
    until(lambda: len(css(driver, "#output .cell")) == 25, what="a 5x5 output")
    css(driver, "#output .cell")[6].click()  # y[0, 0, 1, 1]
    settle(driver)
    argv = ["explain", "--json", "--input", image, "--weight", kernel, "--no-bias"]
    assert main([*argv, "--padding", "1", "--at", "0,0,1,1"]) == 0
    expected = json.loads(capsys.readouterr().out)
    assert int(by_id(driver, "explain-total").get_attribute("data-value")) == expected["total"]
    assert expected["total"] == expected["actual"] == 10
    products = [
        t.text for t in css(driver, "#explain .grids table")[2].find_elements("css selector", "td")
    ]
    assert products == [str(t["product"]) for t in expected["channels"][0]["taps"]]
    shot(driver, tmp_path, "8_typed_in_numbers")
