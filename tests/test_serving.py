"""The web demo's API with FastAPI's TestClient: each endpoint, bad inputs, concurrency."""

import io
import json
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from conftest import tiny_config
from gankit.serving.app import create_app
from gankit.training.loop import train


@pytest.fixture(scope="module")
def runs(tmp_path_factory, module_npz):
    folder = tmp_path_factory.mktemp("serve")
    train(tiny_config(module_npz, iterations=2), folder / "cgan")
    train(tiny_config(module_npz, preset="seed-gan", iterations=2), folder / "gan")
    return folder


@pytest.fixture(scope="module")
def client(runs):
    return TestClient(create_app(runs / "cgan"))


def png_size(response):
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    with Image.open(io.BytesIO(response.content)) as image:
        return image.size


def test_page_and_info(client):
    page = client.get("/")
    assert page.status_code == 200 and "<script>" in page.text
    # self-contained: no resource from another host (a CDN, a font service, an analytics tag)
    import re

    linked = re.findall(r"""(?:src|href|url)\s*[=(]\s*["']?([^"')\s>]+)""", page.text)
    assert linked == [u for u in linked if not re.match(r"(https?:)?//", u)], linked
    assert not re.search(r"""fetch\(\s*["'](https?:)?//""", page.text)
    info = client.get("/api/info").json()
    assert info["num_classes"] == 10 and info["iterations"] == 2
    assert info["architecture"] == "mlp" and info["conditioning"] == "multiply"
    schema = client.get("/openapi.json").json()
    assert {"/api/generate", "/api/info", "/api/interpolate", "/api/morph"} <= set(schema["paths"])
    assert info["evaluation"] is None and info["floor"] is None  # never evaluated:
    assert info["evaluate_command"].startswith("gankit evaluate ")  # the page shows how


def test_generate_and_interpolate(client):
    one_class = png_size(client.get("/api/generate", params={"label": 7, "n": 16, "seed": 1}))
    assert one_class == png_size(client.get("/api/generate", params={"label": 3, "n": 16}))
    first = client.get("/api/generate", params={"label": 7, "n": 4, "seed": 1}).content
    assert first == client.get("/api/generate", params={"label": 7, "n": 4, "seed": 1}).content
    assert first != client.get("/api/generate", params={"label": 7, "n": 4, "seed": 2}).content
    width, _ = png_size(
        client.get("/api/interpolate", params={"seed_a": 1, "seed_b": 2, "steps": 6})
    )
    narrow, _ = png_size(client.get("/api/interpolate", params={"steps": 3}))
    assert width > narrow
    png_size(client.get("/api/generate", params={"truncation": 0.5}))


@pytest.mark.parametrize(
    "path, params, name",
    [
        ("/api/generate", {"label": 10}, "label"),
        ("/api/generate", {"label": -1}, "label"),
        ("/api/generate", {"n": 0}, "n"),
        ("/api/generate", {"n": 257}, "n"),
        ("/api/generate", {"seed": "abc"}, "seed"),
        ("/api/generate", {"truncation": 0}, "truncation"),
        ("/api/interpolate", {"steps": 1}, "steps"),
        ("/api/interpolate", {"steps": 33}, "steps"),
        ("/api/interpolate", {"label": 11}, "label"),
    ],
)
def test_bad_inputs_are_422_naming_the_parameter(client, path, params, name):
    response = client.get(path, params=params)
    assert response.status_code == 422
    assert any(detail["loc"][-1] == name for detail in response.json()["detail"])


def test_label_for_an_unconditional_model(runs):
    gan = TestClient(create_app(runs / "gan"))
    response = gan.get("/api/generate", params={"label": 1})
    assert response.status_code == 422 and "unconditional" in response.text
    assert gan.get("/api/info").json()["num_classes"] == 0
    png_size(gan.get("/api/generate", params={"n": 9}))


def test_concurrent_requests_are_all_correct(client):
    def params(seed):
        return {"n": 8, "seed": seed, "label": seed % 10}

    expected = {seed: client.get("/api/generate", params=params(seed)).content for seed in range(8)}

    def fetch(i):
        seed = i % 8
        response = client.get("/api/generate", params=params(seed))
        return response.status_code == 200 and response.content == expected[seed]

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(fetch, range(200)))
    assert all(results)


def test_the_lock_lets_one_forward_run_at_a_time(runs, monkeypatch):
    """PyTorch modules are not safe to call from several threads: the app serialises them.
    Each forward here holds the CPU a moment (a sleep), so that without the lock eight
    threads would overlap at once."""
    import threading
    import time

    import gankit.serving.app as app_module

    inside, most, guard = [0], [0], threading.Lock()

    def enter(module, args):
        with guard:
            inside[0] += 1
            most[0] = max(most[0], inside[0])
        time.sleep(0.005)

    def leave(module, args, output):
        with guard:
            inside[0] -= 1

    real_load = app_module.load_generator

    def watched_load(*args, **kwargs):
        loaded = real_load(*args, **kwargs)
        loaded.model.register_forward_pre_hook(enter)
        loaded.model.register_forward_hook(leave)
        return loaded

    monkeypatch.setattr(app_module, "load_generator", watched_load)
    client = TestClient(create_app(runs / "cgan"))
    paths = ["/api/generate", "/api/interpolate", "/api/morph"]
    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(lambda i: client.get(paths[i % 3]).status_code, range(48)))
    assert codes == [200] * 48 and most[0] == 1


HOSTILE = {  # value -> why it is hostile (each parameter gets every one that is not in range)
    "99999999999999999999999": "huge",
    "-1": "negative",
    "-99999999999999999999999": "hugely negative",
    "nan": "NaN",
    "inf": "inf",
    "-inf": "-inf",
    "1e-30": "tiny",
    "": "empty",
    "x" * 10_000: "10 kB string",
    "3</script><script>alert(1)</script>": "markup",
}
PARAMETERS = {  # endpoint -> parameter -> values in its range
    "/api/generate": {"n": {"1", "256"}, "seed": {"0"}, "label": {"0"}, "truncation": set()},
    "/api/interpolate": {
        "seed_a": {"0"},
        "seed_b": {"0"},
        "steps": set(),
        "label": {"0"},
        "linear": set(),
    },
    "/api/morph": {
        "class_a": {"0"},
        "class_b": {"0"},
        "seed": {"0"},
        "t": {"1e-30"},
        "steps": set(),
    },
}
CASES = [
    (path, name, value)
    for path, names in PARAMETERS.items()
    for name, fine in names.items()
    for value in HOSTILE
    if value not in fine
]


@pytest.mark.parametrize("path, name, value", CASES, ids=lambda x: str(x)[:20])
def test_hostile_values_are_422_and_the_server_still_answers(client, path, name, value):
    response = client.get(path, params={name: value})
    assert response.status_code == 422, (name, HOSTILE[value], response.text[:200])
    assert any(detail["loc"][-1] == name for detail in response.json()["detail"])
    png_size(client.get("/api/generate", params={"n": 2, "label": 1}))


@pytest.mark.parametrize("value", ["0.04", "2.01", "0"])
def test_truncation_range(client, value):
    assert client.get("/api/generate", params={"truncation": value}).status_code == 422


def test_the_largest_valid_requests_answer(client):
    """The most work one request may ask for (their times are benchmarks/bench_serve.py's)."""
    for params in ({"n": 256, "truncation": 0.05, "seed": 2**63 - 1}, {"n": 256, "truncation": 2}):
        assert png_size(client.get("/api/generate", params=params)) == png_size(
            client.get("/api/generate", params={**params, "seed": 0})
        )
    png_size(client.get("/api/interpolate", params={"steps": 32, "seed_a": 2**63 - 1}))


def test_serve_binds_a_free_port_and_prints_it(tmp_path, module_npz):
    import re
    import subprocess
    import sys
    import urllib.request

    from gankit.training.loop import train

    train(tiny_config(module_npz, iterations=2), tmp_path / "run")
    command = [sys.executable, "-m", "gankit", "serve", str(tmp_path / "run"), "--port", "0"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()
        url = re.search(r"on (http://127\.0\.0\.1:(\d+))/", line)
        assert url and int(url.group(2)) > 0, (line, process.stderr.read() if not line else "")
        with urllib.request.urlopen(url.group(1) + "/api/info", timeout=30) as response:
            assert json.loads(response.read())["num_classes"] == 10
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_run_info_in_the_page_cannot_close_its_script(tmp_path, module_npz):
    from gankit.serving.app import script_json

    text = script_json({"run": "</script><script>alert(1)</script><!--", "x": "a&b"})
    assert "</" not in text and "<!--" not in text and "&" not in text
    import json

    assert json.loads(text) == {"run": "</script><script>alert(1)</script><!--", "x": "a&b"}
    data = tmp_path / "a<" / "script><b>x" / "tiny.npz"  # the path reads a</script><b>x/...
    data.parent.mkdir(parents=True)
    data.write_bytes(module_npz.read_bytes())
    train(tiny_config(data, preset="seed-gan", iterations=2), tmp_path / "run")
    client = TestClient(create_app(tmp_path / "run"))
    assert "</script><b>" in client.get("/api/info").json()["dataset"]
    page = client.get("/").text
    assert "</script><b>" not in page and page.count("</script>") == page.count("<script")


def pixels(response):
    assert response.status_code == 200, response.text
    with Image.open(io.BytesIO(response.content)) as image:
        return np.asarray(image.convert("L"), dtype=np.int16)


def test_morph_mixes_two_classes_on_one_noise(client):
    strip = pixels(client.get("/api/morph", params={"class_a": 3, "class_b": 8, "steps": 5}))
    one = pixels(client.get("/api/morph", params={"class_a": 3, "class_b": 8, "t": 0.5}))
    assert strip.shape[1] > 4 * one.shape[1] and strip.shape[0] == one.shape[0]
    # t = 0 is class 3 itself: the image /api/generate draws for label 3 with the same seed
    start = pixels(client.get("/api/morph", params={"class_a": 3, "class_b": 8, "t": 0, "seed": 5}))
    plain = pixels(client.get("/api/generate", params={"label": 3, "n": 1, "seed": 5}))
    assert start.shape == plain.shape and np.abs(start - plain).max() <= 1
    end = pixels(client.get("/api/morph", params={"class_a": 3, "class_b": 8, "t": 1, "seed": 5}))
    assert (end != start).any()  # the class changed the image (a 2-iteration model: a little)
    for name, value in (("class_b", 10), ("class_a", 12), ("t", 1.5), ("steps", 40)):
        response = client.get("/api/morph", params={name: value})
        assert response.status_code == 422
        assert any(detail["loc"][-1] == name for detail in response.json()["detail"])


def test_morph_on_an_unconditional_model_is_a_422(runs):
    response = TestClient(create_app(runs / "gan")).get("/api/morph")
    assert response.status_code == 422 and "unconditional" in response.text


def test_the_latest_evaluation_comes_with_its_floor(tmp_path, tiny_npz):
    """`gankit evaluate RUN` records its figures and floor in the run; the page's info shows
    them, unless an evaluation during training is of a later iteration (it has no floor)."""
    import json

    from gankit.cli import main
    from gankit.run import RunFolder

    config = tiny_config(tiny_npz, iterations=2).with_overrides({"data.dataset": "mnist-sample"})
    run = tmp_path / "run"
    train(config, run)
    assert main(["evaluate", str(run), "--n", "100"]) == 0
    record = RunFolder(run).read_evaluation()
    assert record["step"] == 2 and record["result"]["n"] == 100 and record["floor"]["n"] == 100
    info = TestClient(create_app(run)).get("/api/info").json()
    assert info["evaluation"]["fid"] == record["result"]["fid"] and info["evaluation"]["step"] == 2
    assert info["floor"]["fid"] == record["floor"]["fid"]
    later = {"step": 4, "kind": "eval", "fid": 1.5, "n": 2000, "extractor": "mnist-cnn"}
    with open(run / "metrics.jsonl", "a") as rows:
        rows.write(json.dumps(later) + "\n")
    info = TestClient(create_app(run)).get("/api/info").json()
    assert info["evaluation"]["fid"] == 1.5 and info["floor"] is None
    (run / "evaluation.json").write_text("{torn")  # unreadable: ignored, with a warning
    assert TestClient(create_app(run)).get("/api/info").json()["evaluation"]["fid"] == 1.5
