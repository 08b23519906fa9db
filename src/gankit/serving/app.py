"""`gankit serve RUN`: a small web demo and a JSON + PNG API around one trained generator.

The model loads once at start-up; one lock serialises the generator's forward passes (PyTorch
modules are not safe to call from several threads at once). Every parameter has a stated range
(a 422 naming it otherwise; NaN and inf are refused) and every request's work is bounded and
free of loops that depend on random draws (`n <= MAX_IMAGES`, `steps <= MAX_STEPS`, truncated
noise by inverse CDF), so each answers in well under a second on 2 CPU cores and none can hold
the lock for long. The page is plain HTML and JavaScript served by the app itself: no build
step, no CDN, it works offline.
"""

from __future__ import annotations

import json
import shlex
import threading
from pathlib import Path
from typing import Any

import torch
from fastapi import FastAPI, HTTPException, Query
from fastapi.responses import HTMLResponse, Response

from gankit._version import __version__
from gankit.config import SEED_MAX
from gankit.images import grid_png
from gankit.loading import load_generator
from gankit.run import RunFolder
from gankit.sampling import TRUNCATION, sample
from gankit.visuals import class_morph, interpolate

MAX_IMAGES = 256
MAX_STEPS = 32
MAX_LABEL = 10_000  # above any dataset's classes; the model's own range is checked too
PAGE = (Path(__file__).parent / "page.html").read_text()


def script_json(value: Any) -> str:
    """JSON that is safe inside an HTML <script> element: `<`, `>` and `&` (so `</script>` and
    `<!--`) and the JavaScript line separators are escaped as \\u sequences."""
    text = json.dumps(value)
    for char in ("<", ">", "&", "\u2028", "\u2029"):
        text = text.replace(char, f"\\u{ord(char):04x}")
    return text


def _png(images: torch.Tensor, ncol: int) -> Response:
    return Response(grid_png(images, ncol), media_type="image/png")


def _bad(parameter: str, message: str) -> HTTPException:
    """A 422 whose detail names the parameter, in FastAPI's own validation-error shape."""
    return HTTPException(
        422, detail=[{"loc": ["query", parameter], "msg": f"{parameter}: {message}"}]
    )


def create_app(run_dir: str | Path, checkpoint: str = "latest", device: str = "cpu") -> FastAPI:
    """The app for one run (its generator loads here, once)."""
    loaded = load_generator(run_dir, checkpoint, device)
    model, classes, lock = loaded.model, loaded.num_classes, threading.Lock()
    evaluation, floor = latest_evaluation(RunFolder(run_dir))
    info = {
        "run": Path(run_dir).name,
        "preset": loaded.config.preset,
        "architecture": loaded.config.model.architecture,
        "conditioning": loaded.config.model.conditioning,
        "num_classes": classes,
        "classes": list(range(classes)),
        "image_shape": list(loaded.image_shape),
        "iterations": loaded.step,
        "dataset": loaded.config.data.dataset,
        "evaluation": evaluation,
        "floor": floor,
        "evaluate_command": f"gankit evaluate {shlex.quote(str(run_dir))}",
        "max_images": MAX_IMAGES,
        "max_steps": MAX_STEPS,
        "version": __version__,
    }
    app = FastAPI(
        title="gankit demo",
        version=__version__,
        description=f"Generate images from the gankit run {info['run']!r}.",
    )

    def check_label(label: int | None) -> torch.Tensor | None:
        if label is None:
            return None
        if not classes:
            raise _bad("label", "this model is unconditional; omit label")
        if not 0 <= label < classes:
            raise _bad("label", f"{label} is outside the model's classes 0..{classes - 1}")
        return torch.tensor(label)

    page_html = PAGE.replace("__INFO__", script_json(info))

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> str:
        return page_html

    @app.get("/api/info")
    def api_info() -> dict[str, Any]:
        """The model: classes, architecture, training iterations and its latest evaluation."""
        return info

    @app.get(
        "/api/generate", response_class=Response, responses={200: {"content": {"image/png": {}}}}
    )
    def api_generate(
        n: int = Query(16, ge=1, le=MAX_IMAGES, description="number of images, 1..256"),
        seed: int = Query(0, ge=0, le=SEED_MAX, description="noise seed, 0..2^63-1"),
        label: int | None = Query(
            None, ge=0, le=MAX_LABEL, description="class (conditional models; default: all)"
        ),
        truncation: float | None = Query(
            None,
            ge=TRUNCATION[0],
            le=TRUNCATION[1],
            allow_inf_nan=False,
            description="truncated noise: z from the normal cut to [-t, t], t in 0.05..2",
        ),
    ) -> Response:
        """A PNG grid of n images (a conditional model without label cycles through classes)."""
        chosen = check_label(label)
        labels = None
        if classes:
            labels = chosen.repeat(n) if chosen is not None else torch.arange(n) % classes
        rng = torch.Generator().manual_seed(seed)
        with lock:
            images = sample(
                model, n, labels=labels, generator=rng, device=device, truncation=truncation
            )
        return _png(images, ncol=min(n, 8 if chosen is not None or not classes else classes))

    @app.get(
        "/api/interpolate", response_class=Response, responses={200: {"content": {"image/png": {}}}}
    )
    def api_interpolate(
        seed_a: int = Query(0, ge=0, le=SEED_MAX, description="seed of the first end"),
        seed_b: int = Query(1, ge=0, le=SEED_MAX, description="seed of the last end"),
        steps: int = Query(10, ge=2, le=MAX_STEPS, description="images, ends included, 2..32"),
        label: int | None = Query(
            None, ge=0, le=MAX_LABEL, description="class (conditional models; default 0)"
        ),
        linear: bool = Query(False, description="linear instead of spherical path"),
    ) -> Response:
        """A PNG strip along the latent path between the noise of two seeds."""
        chosen = check_label(label)
        cls = int(chosen) if chosen is not None else (0 if classes else None)
        with lock:
            images = interpolate(model, seed_a, seed_b, steps, cls, spherical=not linear)
        return _png(images, ncol=steps)

    @app.get("/api/morph", response_class=Response, responses={200: {"content": {"image/png": {}}}})
    def api_morph(
        class_a: int = Query(0, ge=0, le=MAX_LABEL, description="class at t = 0"),
        class_b: int = Query(1, ge=0, le=MAX_LABEL, description="class at t = 1"),
        seed: int = Query(0, ge=0, le=SEED_MAX, description="noise seed, 0..2^63-1"),
        t: float | None = Query(
            None,
            ge=0.0,
            le=1.0,
            allow_inf_nan=False,
            description="one image with the class mixed at t in 0..1 (default: a strip)",
        ),
        steps: int = Query(10, ge=2, le=MAX_STEPS, description="strip images, ends included"),
    ) -> Response:
        """One noise vector with the class condition mixed from class_a to class_b: the image
        at `t`, or a strip of `steps` images (conditional models)."""
        if not classes:
            raise _bad("class_a", "this model is unconditional: it has no classes to morph")
        for name, value in (("class_a", class_a), ("class_b", class_b)):
            if value >= classes:
                raise _bad(name, f"{value} is outside the model's classes 0..{classes - 1}")
        weights = torch.tensor([t]) if t is not None else None
        with lock:
            images = class_morph(model, seed, class_a, class_b, steps, weights=weights)
        return _png(images, ncol=len(images))

    return app


def latest_evaluation(run: RunFolder) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The run's latest evaluation and its real-data floor: `gankit evaluate RUN`'s record
    (with its floor) unless an evaluation during training is of a later iteration (no floor)."""
    rows = [r for r in run.metrics() if r.get("kind") == "eval"]
    record = run.read_evaluation()
    if record is not None and (not rows or record.get("step", -1) >= rows[-1]["step"]):
        return {**record["result"], "step": record.get("step")}, record.get("floor")
    return (rows[-1], None) if rows else (None, None)
