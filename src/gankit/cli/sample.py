"""`gankit sample`, `interpolate`, `morph`, `report` and `serve`."""

from __future__ import annotations

import argparse
import socket
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gankit.cli.errors import UsageError
from gankit.cli.ranges import SEED, SEED_MAX, float_in, int_in
from gankit.sampling import TRUNCATION

# --- gankit sample -------------------------------------------------------------------------------


def add_sample_parser(subparsers: Any) -> None:
    p = subparsers.add_parser("sample", help="generate images from a trained run into an .npz")
    p.add_argument("run", help="run folder")
    p.add_argument("--n", type=int_in(1, 10**6), default=100, help="number of images (default 100)")
    p.add_argument("--out", help="output .npz (default RUN/samples.npz)")
    labels = p.add_mutually_exclusive_group()
    labels.add_argument("--label", type=int_in(0, 10**4), help="one class for every image")
    labels.add_argument("--labels", help="'balanced' (default for CGANs) or a list like 0,1,2")
    p.add_argument("--grid", help="also save the first images (at most 100) as a PNG grid")
    p.add_argument("--seed", type=SEED, default=0, help="noise seed (default 0)")
    p.add_argument(
        "--truncation",
        type=float_in(*TRUNCATION),
        help="truncated noise: z from the normal cut to [-t, t]",
    )
    p.add_argument("--checkpoint", default="latest", help="latest (default), best, or a path")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.set_defaults(handler=cmd_sample)


def requested_labels(args: argparse.Namespace, num_classes: int) -> torch.Tensor | None:
    from gankit.models.conditioning import check_labels
    from gankit.sampling import balanced_labels

    if args.label is None and args.labels is None:
        return balanced_labels(args.n, num_classes) if num_classes else None
    if args.label is not None:
        labels = torch.full((args.n,), args.label, dtype=torch.int64)
    elif args.labels == "balanced":
        if not num_classes:
            raise UsageError(
                "--labels balanced needs a conditional model; this one is unconditional"
            )
        labels = balanced_labels(args.n, num_classes)
    else:
        try:
            chosen = [int(x) for x in args.labels.split(",") if x.strip()]
        except ValueError as error:
            raise UsageError(
                f"--labels must be 'balanced' or integers like 0,1,2: {args.labels!r}"
            ) from error
        if not chosen:
            raise UsageError("--labels is empty")
        labels = torch.tensor(chosen, dtype=torch.int64).repeat(-(-args.n // len(chosen)))[: args.n]
    check_labels(labels, num_classes)
    return labels


def cmd_sample(args: argparse.Namespace) -> int:
    from gankit.images import save_grid, to_uint8
    from gankit.loading import load_generator
    from gankit.sampling import sample

    if args.n < 1:
        raise UsageError(f"--n must be >= 1, got {args.n}")
    loaded = load_generator(args.run, args.checkpoint, args.device)
    labels = requested_labels(args, loaded.num_classes)
    rng = torch.Generator().manual_seed(args.seed)
    images = sample(
        loaded.model,
        args.n,
        labels=labels,
        generator=rng,
        device=args.device,
        truncation=args.truncation,
    )
    out = Path(args.out) if args.out else Path(args.run) / "samples.npz"
    arrays = {"images": to_uint8(images)}
    if labels is not None:
        arrays["labels"] = labels.numpy()
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, **arrays)
    print(
        f"wrote {args.n} images to {out} "
        f"(checkpoint {loaded.checkpoint.name}, iteration {loaded.step})"
    )
    if args.grid:
        k = min(args.n, 100)
        few = labels is not None and k <= 20  # larger balanced grids hold one class per row
        titles = [str(v) for v in labels[:k].tolist()] if few else None
        save_grid(images[:k], args.grid, ncol=10, titles=titles)
        print(f"wrote grid {args.grid}")
    return 0


# --- gankit interpolate / morph / report ---------------------------------------------------------


def add_visual_parsers(subparsers: Any) -> None:
    p = subparsers.add_parser("interpolate", help="images along the latent path between 2 seeds")
    p.add_argument("run", help="run folder")
    p.add_argument("--seeds", default="0,1", help="two noise seeds, e.g. 3,7 (default 0,1)")
    p.add_argument(
        "--steps", type=int_in(2, 256), default=10, help="images in the strip (default 10)"
    )
    p.add_argument("--label", type=int_in(0, 10**4), help="the class, for a conditional model (0)")
    p.add_argument("--linear", action="store_true", help="linear instead of spherical path")
    p.add_argument("--out", required=True, help="PNG strip to write")
    p.add_argument("--gif", help="also write an animated GIF (there and back)")
    p.add_argument("--checkpoint", default="latest", help="latest (default), best, or a path")
    p.set_defaults(handler=cmd_interpolate)
    m = subparsers.add_parser("morph", help="one noise, the class condition mixed from A to B")
    m.add_argument("run", help="run folder of a conditional model")
    m.add_argument("--classes", required=True, help="two classes, e.g. 3,8")
    m.add_argument("--seed", type=SEED, default=0, help="noise seed (default 0)")
    m.add_argument(
        "--steps", type=int_in(2, 256), default=10, help="images in the strip (default 10)"
    )
    m.add_argument("--out", required=True, help="PNG strip to write")
    m.add_argument("--gif", help="also write an animated GIF (there and back)")
    m.add_argument("--checkpoint", default="latest", help="latest (default), best, or a path")
    m.set_defaults(handler=cmd_morph)
    r = subparsers.add_parser("report", help="a self-contained HTML report of a run")
    r.add_argument("run", help="run folder")
    r.add_argument(
        "--n", type=int_in(2, 10**6), default=10_000, help="samples for the evaluation (10000)"
    )
    r.add_argument("--out", help="HTML file (default RUN/report.html)")
    r.add_argument("--checkpoint", default="latest", help="latest (default), best, or a path")
    r.set_defaults(handler=cmd_report)


def _two_ints(text: str, flag: str, high: int = SEED_MAX) -> tuple[int, int]:
    try:
        a, b = (int(x) for x in text.split(","))
    except ValueError as error:
        raise UsageError(f"{flag} expects two integers like 3,7, got {text[:40]!r}") from error
    if not (0 <= a <= high and 0 <= b <= high):
        raise UsageError(f"{flag}: each must be in 0..{high}, got {text[:40]}")
    return a, b


def _write_strip(images: torch.Tensor, out: str, gif: str | None) -> None:
    from gankit.visuals import save_gif, save_strip

    print(f"wrote {save_strip(images, out)}")
    if gif:
        there_and_back = torch.cat([images, images.flip(0)[1:-1]])  # no repeated end frames
        print(f"wrote {save_gif(there_and_back, gif)}")


def cmd_interpolate(args: argparse.Namespace) -> int:
    from gankit.loading import load_generator
    from gankit.visuals import interpolate

    seed_a, seed_b = _two_ints(args.seeds, "--seeds")
    loaded = load_generator(args.run, args.checkpoint)
    if args.label is not None and not loaded.num_classes:
        raise UsageError("--label needs a conditional model; this one is unconditional")
    label = args.label if args.label is not None else (0 if loaded.num_classes else None)
    images = interpolate(loaded.model, seed_a, seed_b, args.steps, label, not args.linear)
    _write_strip(images, args.out, args.gif)
    return 0


def cmd_morph(args: argparse.Namespace) -> int:
    from gankit.loading import load_generator
    from gankit.visuals import class_morph

    label_a, label_b = _two_ints(args.classes, "--classes")
    loaded = load_generator(args.run, args.checkpoint)
    if not loaded.num_classes:
        raise UsageError("morph needs a conditional model; this one is unconditional")
    if args.steps < 2:
        raise UsageError(f"--steps must be >= 2, got {args.steps}")
    images = class_morph(loaded.model, args.seed, label_a, label_b, args.steps)
    _write_strip(images, args.out, args.gif)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from gankit.report import write_report

    if args.n < 2:
        raise UsageError(f"--n must be >= 2, got {args.n}")
    print(write_report(args.run, args.out, args.n, args.checkpoint))
    return 0


# --- gankit serve --------------------------------------------------------------------------------


def add_serve_parser(subparsers: Any) -> None:
    p = subparsers.add_parser("serve", help="web demo and PNG/JSON API for a trained run")
    p.add_argument("run", help="run folder")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument(
        "--port",
        type=int_in(0, 65535),
        default=8000,
        help="port (default 8000; 0: a free one, printed)",
    )
    p.add_argument("--checkpoint", default="latest", help="latest (default), best, or a path")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.set_defaults(handler=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from gankit.serving.app import create_app
    except ImportError as error:
        raise UsageError(
            f"gankit serve needs the serve extra: pip install 'gankit[serve]' ({error})"
        ) from error
    app = create_app(args.run, args.checkpoint, args.device)
    # the socket is bound here, so that the URL printed names the port really bound (with
    # --port 0, a free one the system picks: nothing can take it between choice and bind)
    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((args.host, args.port))
        listener.listen(128)  # connections queue from now on, before uvicorn accepts them
    except OSError as error:
        listener.close()
        raise UsageError(f"cannot listen on {args.host}:{args.port}: {error.strerror}") from None
    port = listener.getsockname()[1]
    print(f"serving {args.run} on http://{args.host}:{port}/ (Ctrl-C stops)", flush=True)
    # every request is bounded, and shutdown waits at most 3 s for those in flight
    config = uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=3)
    uvicorn.Server(config).run(sockets=[listener])
    return 0
