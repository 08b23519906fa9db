"""`gankit export`."""

from __future__ import annotations

import argparse
from typing import Any


def add_export_parser(subparsers: Any) -> None:
    from gankit.export import FORMATS

    p = subparsers.add_parser(
        "export", help="write a run's generator as ONNX, a torch.export program or safetensors"
    )
    p.add_argument("run", help="run folder")
    p.add_argument("--format", required=True, choices=sorted(FORMATS), help="the model format")
    p.add_argument("--out", required=True, help="export folder to create")
    p.add_argument("--checkpoint", default="latest", help="latest (default), best, or a path")
    p.add_argument(
        "--overwrite", action="store_true", help="replace an earlier export (only an export)"
    )
    p.add_argument(
        "--no-eval",
        action="store_true",
        help="skip the fresh evaluation (5,000 samples) that the model card reports",
    )
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (for the evaluation)")
    p.set_defaults(handler=cmd_export)


def cmd_export(args: argparse.Namespace) -> int:
    from gankit.export import export_run

    out = export_run(
        args.run,
        args.format,
        args.out,
        checkpoint=args.checkpoint,
        overwrite=args.overwrite,
        evaluate=not args.no_eval,
        device=args.device,
    )
    print(f"exported {args.format} to {out}: see {out / 'model_card.md'}")
    return 0
