"""Turn a training checkpoint into an inference weights file with its SHA-256 beside it.

    python -m b2v_rnn.export runs/small/best.pt --out b2v_rnn/weights/default.pt

Keeps what `predict` and `evaluate` need (the model's weights and config, the T it was
trained for) plus the step and the training arguments for the record, and drops the
discriminator, the optimisers and the RNG states. Writes `OUT` and `OUT.sha256`
(`sha256sum` format), both atomically; `b2v_rnn.checkpoint.default_checkpoint` checks the
hash before the shipped weights are used.

    python -m b2v_rnn.export path/to/official --out jin2018.pt

converts a folder of the authors' four pretrained files (`b2v_rnn.official`) once into one such
file, which loads like any other and records the four files' SHA-256 under `source`.

    python -m b2v_rnn.export runs/small/best.pt --middle-gate 0.008 --out weights.pt

sets the model's gates (`BlurToVideo.still_gate`, `middle_gate`, `frame_gate`, `sharp_gate`) in
the written config: they have no weights, so a gate measured with `suite --middle-gate` ships
without retraining.

    python -m b2v_rnn.export runs/a/checkpoint.pt --generator-from runs/b/checkpoint.pt --out weights.pt

takes φm from the first checkpoint and G from the second (of the same architecture). Teacher
forcing trains G on the true middle frame, never on φm's, so the two networks of different runs
fit together; the file records where G came from (``generator_from``: path, step, SHA-256).
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

from .atomic import atomic_path
from .checkpoint import load_checkpoint, model_from_checkpoint, save_checkpoint, sha256_of
from .cli import HelpFormatter, run_main
from .errors import UserError, check_gate
from .models import GATES
from .official import holds_official_files, input_files, read_folder
from .outputs import check_writable, refuse_inputs_among_outputs

KEPT = ("model", "model_config", "T", "step", "args", "source", "generator_from")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m b2v_rnn.export", description=__doc__.split("\n\n")[0],
                                formatter_class=HelpFormatter)
    p.add_argument("checkpoint", type=Path,
                   help="training checkpoint (e.g. runs/NAME/best.pt), or a folder of the authors' four pretrained files")
    p.add_argument("--out", type=Path, required=True, help="weights file to write")
    p.add_argument("--overwrite", action="store_true", help="replace an existing weights file")
    p.add_argument("--generator-from", type=Path, metavar="CHECKPOINT",
                   help="take G's weights from this checkpoint (same G architecture) instead of the first one")
    for gate in GATES:
        p.add_argument("--" + gate.replace("_", "-"), type=float, metavar="TAU",
                       help=f"set the model's {gate.replace('_', ' ')} (BlurToVideo.{gate}; 0 = off; default: "
                            "the checkpoint's)")
    return p.parse_args(argv)


def with_generator_of(state: dict, checkpoint: Path, donor: Path) -> dict:
    """`state` (of `checkpoint`) with G's weights taken from the checkpoint at `donor`."""
    try:
        other = load_checkpoint(donor)
    except UserError as e:
        raise UserError(f"--generator-from: {e}") from None
    for path, config in ((checkpoint, state["model_config"]), (donor, other["model_config"])):
        if config.get("kind") != "BlurToVideo":
            raise UserError(f"--generator-from: {path} holds the authors' pretrained networks, whose G is "
                            "not this package's recurrent generator")
    mine, theirs = state["model_config"]["generator"], other["model_config"]["generator"]
    if mine != theirs:
        differ = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
        raise UserError(f"--generator-from {donor}: its G differs from {checkpoint}'s in {', '.join(differ)}")
    weights = {k: v for k, v in state["model"].items() if not k.startswith("generator.")}
    weights.update({k: v for k, v in other["model"].items() if k.startswith("generator.")})
    origin = {"path": str(donor), "step": other.get("step"), "sha256": sha256_of(donor)}
    return {**state, "model": weights, "generator_from": origin}


def export(checkpoint: Path, out: Path, gates: dict[str, float] | None = None,
           generator_from: Path | None = None) -> str:
    """Writes the slim weights file and its hash file; returns the SHA-256. ``gates``: the
    model's gates to set ({"middle_gate": 0.008}); the checkpoint's stay otherwise.
    ``generator_from``: a checkpoint whose G replaces this one's."""
    state = read_folder(checkpoint, hashes=True) if holds_official_files(checkpoint) else load_checkpoint(checkpoint)
    if generator_from is not None:
        state = with_generator_of(state, checkpoint, generator_from)
    if gates:
        if state["model_config"].get("kind") != "BlurToVideo":
            raise UserError(f"{checkpoint} holds the authors' pretrained networks, which have no gates")
        state = {**state, "model_config": {**state["model_config"], **gates}}
    model_from_checkpoint(state, checkpoint)  # refuse to ship weights that do not rebuild (or a bad gate)
    out.parent.mkdir(parents=True, exist_ok=True)  # check_writable found that it can be created
    save_checkpoint({key: state[key] for key in KEPT if key in state}, out)
    digest = sha256_of(out)
    hash_file = out.with_name(out.name + ".sha256")
    with atomic_path(hash_file) as tmp:
        tmp.write_text(f"{digest}  {out.name}\n")
    return digest


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    if args.out.is_dir():
        raise UserError(f"--out {args.out}: is a folder; give the weights file to write (e.g. {args.out}/default.pt)")
    inputs = input_files(args.checkpoint) + ([args.generator_from] if args.generator_from else [])
    refuse_inputs_among_outputs([args.out, args.out.with_name(args.out.name + ".sha256")], inputs)
    check_writable(args.out.parent, option="--out", remedy="choose another --out")
    if args.out.exists() and not args.overwrite:
        raise UserError(f"{args.out} exists; pass --overwrite to replace it")
    gates = {gate: getattr(args, gate) for gate in GATES if getattr(args, gate) is not None}
    for gate, tau in gates.items():
        check_gate(tau, "--" + gate.replace("_", "-"))
    digest = export(args.checkpoint, args.out, gates, args.generator_from)
    print(f"{args.checkpoint} -> {args.out} ({args.out.stat().st_size / 2**20:.1f} MiB, sha256 {digest})")


if __name__ == "__main__":
    run_main(main)
