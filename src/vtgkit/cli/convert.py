"""``vtgkit convert``: official checkpoints ↔ vtgkit's format (safetensors weights + JSON config).

Examples::

    vtgkit convert --model r2tuning --input r2_tuning_qvhighlights-ed516355.pth --output ckpt/qvhighlights
    vtgkit convert --model r2tuning --input ckpt/qvhighlights --output r2_qv.pth --to official
"""

from __future__ import annotations

import argparse

# model name → module with load_official_checkpoint / save_vtgkit / load_vtgkit / save_official_checkpoint.
# Another model joins by adding its convert module here.
_CONVERTERS = {"r2tuning": "vtgkit.models.r2tuning.convert"}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "convert",
        help="convert an official checkpoint to vtgkit's format, or back",
        description="Official .pth (loaded with weights_only=True) → DIR with model.safetensors + config.json "
        "(or OUT.safetensors + OUT.json); with --to official, vtgkit's format → an official {'state_dict', 'meta'} "
        ".pth. Keys are checked by name and shape; any missing or unexpected key is an error.",
    )
    parser.add_argument("--model", required=True, choices=sorted(_CONVERTERS), help="model family")
    parser.add_argument("--input", required=True, help="checkpoint to read")
    parser.add_argument("--output", required=True, help="directory or .safetensors file (vtgkit) / .pth (official)")
    parser.add_argument("--preset", help="preset whose non-shape settings (loss weights, dropout) to record; "
                        "default: inferred from the weights (qvhighlights, or youtube for models without boundaries)")
    parser.add_argument("--to", choices=("vtgkit", "official"), default="vtgkit", help="target format (default vtgkit)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import importlib

    converter = importlib.import_module(_CONVERTERS[args.model])
    if args.to == "vtgkit":
        model = converter.load_official_checkpoint(args.input, preset=args.preset)
        weights, config = converter.save_vtgkit(model, args.output)
        print(f"wrote {weights} and {config} ({sum(p.numel() for p in model.parameters()):,} parameters)")
    else:
        model = converter.load_vtgkit(args.input)
        path = converter.save_official_checkpoint(model, args.output)
        print(f"wrote {path}")
    return 0
