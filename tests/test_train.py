"""b2v_rnn.train: the loss goes down, resume is exact, DDP runs, bad input stops cleanly.

Tiny everything (tiny preset, T=3, 20 px crops, a 40 px file of 16 clips made here), so
the file runs in well under a minute on 2 CPU cores.
"""
import csv
import os
import signal
import socket

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from b2v_rnn import train
from b2v_rnn.checkpoint import load_checkpoint
from b2v_rnn.cli import run_main
from b2v_rnn.data import generate
from b2v_rnn.training import step as step_module


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("data")
    generate(folder / "train.h5", 16, T=3, size=40, seed=0, progress=False)
    generate(folder / "val.h5", 2, T=3, size=40, seed=1, progress=False)
    return folder


def args(data, out, *extra):
    return ["--T", "3", "--preset", "tiny", "--train", str(data / "train.h5"), "--val", str(data / "val.h5"),
            "--crop", "20", "--batch-size", "4", "--val-samples", "1", "--num-workers", "0", "--no-progress",
            "--perceptual-weight", "0", "--out", str(out), *extra]


def params(model):
    return torch.cat([p.detach().flatten() for p in model.state_dict().values() if p.is_floating_point()])


def rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_short_run_lowers_the_loss_and_writes_outputs(data, tmp_path):
    out = tmp_path / "run"
    result = train.main(args(data, out, "--max-steps", "24", "--log-every", "6", "--val-every", "12"))
    logged = rows(out / "train.csv")
    assert [int(r["step"]) for r in logged] == [6, 12, 18, 24]
    first = float(logged[0]["loss_mid"]) + float(logged[0]["loss_pair"])
    last = float(logged[-1]["loss_mid"]) + float(logged[-1]["loss_pair"])
    assert last < 0.8 * first
    assert [int(r["step"]) for r in rows(out / "val.csv")] == [12, 24]
    assert (out / "samples" / "step_000024.gif").is_file() and (out / "plots" / "psnr_step_000024.png").is_file()
    state = load_checkpoint(out / "checkpoint.pt")
    assert state["step"] == 24 and state["T"] == 3 and state["args"]["preset"] == "tiny"
    assert (out / "best.pt").is_file() and result["step"] == 24


def test_resume_equals_an_uninterrupted_run(data, tmp_path):
    common = ("--log-every", "2", "--val-every", "3", "--decay-steps", "6", "--seed", "3")
    whole = train.main(args(data, tmp_path / "whole", "--max-steps", "6", *common))
    train.main(args(data, tmp_path / "split", "--max-steps", "3", *common))
    # --resume takes the other settings from the checkpoint; only the new step count is typed.
    resumed = train.main(["--out", str(tmp_path / "split"), "--resume", "--max-steps", "6", "--no-progress",
                          "--num-workers", "0"])
    assert resumed["step"] == 6
    torch.testing.assert_close(params(resumed["model"]), params(whole["model"]), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(params(resumed["discriminator"]), params(whole["discriminator"]), rtol=1e-5, atol=1e-6)
    assert [r["step"] for r in rows(tmp_path / "split" / "train.csv")] == ["2", "3", "4", "6"]


def test_a_signal_stops_after_the_step_with_a_checkpoint_that_resumes_exactly(data, tmp_path, monkeypatch):
    common = ("--log-every", "2", "--val-every", "3", "--decay-steps", "6", "--seed", "3")
    whole = train.main(args(data, tmp_path / "whole", "--max-steps", "6", *common))
    handler_before = signal.getsignal(signal.SIGTERM)
    real_step, steps = step_module.train_step, []

    def step_then_preempted(*a, **k):
        losses = real_step(*a, **k)
        steps.append(1)
        if len(steps) == 4:  # a scheduler's SIGTERM arrives during step 4
            os.kill(os.getpid(), signal.SIGTERM)
        return losses

    monkeypatch.setattr(step_module, "train_step", step_then_preempted)
    with pytest.raises(SystemExit) as stopped:
        train.command(args(data, tmp_path / "split", "--max-steps", "6", *common))
    assert stopped.value.code == 128 + signal.SIGTERM
    assert len(steps) == 4 and load_checkpoint(tmp_path / "split" / "checkpoint.pt")["step"] == 4
    assert signal.getsignal(signal.SIGTERM) is handler_before

    monkeypatch.setattr(step_module, "train_step", real_step)
    resumed = train.main(["--out", str(tmp_path / "split"), "--resume", "--no-progress", "--num-workers", "0"])
    assert resumed["step"] == 6 and resumed["stopped_by"] is None
    torch.testing.assert_close(params(resumed["model"]), params(whole["model"]), rtol=1e-5, atol=1e-6)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank, world_size, port, argv, result_dir):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    result = train.main(argv)
    torch.save(params(result["model"]), os.path.join(result_dir, f"rank{rank}.pt"))


def test_ddp_two_gloo_processes(data, tmp_path):
    out = tmp_path / "ddp"
    argv = args(data, out, "--max-steps", "3", "--log-every", "3", "--val-every", "3", "--batch-size", "2")
    mp.spawn(_ddp_worker, args=(2, _free_port(), argv, str(tmp_path)), nprocs=2, join=True)
    p0, p1 = torch.load(tmp_path / "rank0.pt"), torch.load(tmp_path / "rank1.pt")
    torch.testing.assert_close(p0, p1)  # DDP kept the replicas identical
    state = load_checkpoint(out / "checkpoint.pt")
    assert state["step"] == 3 and state["args"]["batch_size"] == 2
    assert len(rows(out / "train.csv")) == 1  # one writer: rank 0


@pytest.mark.parametrize("preset", ["paper", "small", "tiny"])
def test_the_help_gives_the_parameter_counts_the_log_prints(preset):
    import re

    from b2v_rnn.models import build_model
    from b2v_rnn.training.options import PRESET_COST

    model = build_model(preset)
    stated = re.match(r"φm ([\d.]+) (M|k) \+ G ([\d.]+) (M|k)", PRESET_COST[preset]).groups()
    for (value, unit), network in zip([stated[:2], stated[2:]], (model.middle, model.generator)):
        count = sum(p.numel() for p in network.parameters()) / (1e6 if unit == "M" else 1e3)
        digits = len(value.split(".")[1]) if "." in value else 0
        assert float(value) == round(count, digits), (preset, value, unit, count)


def test_step_sampler_is_a_function_of_seed_and_step():
    full = iter(train.StepSampler(10, 3, seed=1, rank=0, world_size=1))
    stream = [next(full) for _ in range(18)]  # (epoch, index) pairs; 3 steps of 3 per epoch
    later = iter(train.StepSampler(10, 3, seed=1, rank=0, world_size=1, start_step=4))
    assert [next(later) for _ in range(6)] == stream[12:18]  # resumed mid-epoch 1
    assert [e for e, _ in stream] == [0] * 9 + [1] * 9
    assert stream[:9] != stream[9:]  # a new permutation each epoch
    # Two ranks: each gets one step of 3 per epoch, disjoint samples.
    shards = [[i for _, i in zip(range(3), train.StepSampler(10, 3, 1, rank, 2))] for rank in (0, 1)]
    assert not set(shards[0]) & set(shards[1])


def _exit(argv, capsys):
    with pytest.raises(SystemExit) as e:
        run_main(train.main, argv)
    assert e.value.code == 2
    return capsys.readouterr().err


def test_bad_input_is_a_clear_error(data, tmp_path, capsys):
    out = tmp_path / "run"
    err = _exit(["--out", str(out), "--resume", "--no-progress"], capsys)
    assert "no checkpoint" in err and str(out / "checkpoint.pt") in err
    err = _exit(args(data, out, "--T", "5"), capsys)
    assert "train.h5" in err and "T=3" in err and "T=5" in err
    err = _exit(args(data, out, "--train", str(tmp_path / "missing.h5")), capsys)
    assert "missing.h5" in err
    err = _exit(args(data, out, "--crop", "30"), capsys)
    assert "--crop 30" in err
    (out / "keep.txt").parent.mkdir()
    (out / "keep.txt").write_text("earlier work")
    err = _exit(args(data, out, "--max-steps", "1"), capsys)
    assert "not empty" in err and str(out) in err
    assert (out / "keep.txt").read_text() == "earlier work"


# ----------------------------------------------------------------------------- budgets, saving, start-up and --init
def test_minutes_budget_ends_with_validation_and_a_checkpoint(data, tmp_path):
    out = tmp_path / "budget"
    result = train.main(args(data, out, "--minutes", "0.02", "--val-every", "1000", "--log-every", "1000"))
    state = load_checkpoint(out / "checkpoint.pt")
    assert result["step"] >= 1 and state["step"] == result["step"] and state["elapsed_s"] >= 1.2
    assert [int(r["step"]) for r in rows(out / "val.csv")] == [result["step"]]  # validated at the end
    assert result["stopped_by"] is None


def test_lr_follows_the_time_budget():
    from argparse import Namespace

    from b2v_rnn.training.step import lr_at

    budget = Namespace(lr=1.0, min_lr=0.1, decay_steps=10, minutes=2.0)
    assert lr_at(0, budget, elapsed_s=0.0) == pytest.approx(1.0)
    assert lr_at(0, budget, elapsed_s=60.0) == pytest.approx(0.55)  # half the budget: half-way down the cosine
    assert lr_at(10**6, budget, elapsed_s=120.0) == pytest.approx(0.1)
    steps = Namespace(lr=1.0, min_lr=0.1, decay_steps=10, minutes=None)
    assert lr_at(5, steps, elapsed_s=1e9) == pytest.approx(0.55)


def steps_saved_between_validations(monkeypatch, argv) -> list[int]:
    """Runs train.main(argv) and returns the steps at which Trainer._save wrote checkpoint.pt."""
    real_save, saved_steps = train.Trainer._save, []

    def spy(self):
        saved_steps.append(self.step)
        real_save(self)

    monkeypatch.setattr(train.Trainer, "_save", spy)
    train.main(argv)
    return saved_steps


def test_save_every_writes_checkpoints_between_validations(data, tmp_path, monkeypatch):
    out = tmp_path / "save"
    saved_steps = steps_saved_between_validations(
        monkeypatch, args(data, out, "--max-steps", "5", "--val-every", "100", "--save-every", "2"))
    assert saved_steps == [2, 4] and load_checkpoint(out / "checkpoint.pt")["step"] == 5


def test_a_failed_start_is_restarted_and_resume_says_how(data, tmp_path, capsys):
    out = tmp_path / "failed"
    (out / "samples").mkdir(parents=True)
    (out / "train.csv").write_text("step,loss_mid\n")  # what a start killed before its first save leaves
    err = _exit(["--out", str(out), "--resume", "--no-progress"], capsys)
    assert "stopped before its first save" in err and "without --resume" in err
    result = train.main(args(data, out, "--max-steps", "2", "--val-every", "2"))
    assert result["step"] == 2 and (out / "checkpoint.pt").is_file()
    assert "replacing them" in capsys.readouterr().out
    err = _exit(args(data, out, "--max-steps", "2"), capsys)  # a real run now: never silently replaced
    assert "--resume" in err and "--overwrite" in err


def test_a_second_run_on_the_same_out_is_refused(data, tmp_path, capsys):
    from b2v_rnn.outputs import locked_output

    out = tmp_path / "busy"
    with locked_output(out):
        err = _exit(args(data, out, "--max-steps", "1"), capsys)
    assert "in use by PID" in err and str(os.getpid()) in err


def test_amp_trains_on_cpu_in_bfloat16(data, tmp_path, capsys):
    result = train.main(args(data, tmp_path / "amp", "--max-steps", "3", "--val-every", "3", "--amp",
                             "--memory-format", "channels_last"))
    assert result["step"] == 3 and result["val"]["middle_psnr"] > 10
    assert "amp bf16 | channels_last" in capsys.readouterr().out


def test_resident_batches_resume_exactly_and_keep_y_the_mean_of_x(data, tmp_path):
    from b2v_rnn.data import BlurSequenceDataset
    from b2v_rnn.data.augment import Augment
    from b2v_rnn.distributed import Context
    from b2v_rnn.training.batches import ResidentBatches

    ctx = Context(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))
    dataset = BlurSequenceDataset(data / "train.h5", crop=20, augment=Augment(noise_std=0.0), T=3, seed=0)
    stream = ResidentBatches(dataset, 4, seed=1, ctx=ctx, start_step=0, device=torch.device("cpu"))
    first = [next(stream) for _ in range(6)]
    later = ResidentBatches(dataset, 4, seed=1, ctx=ctx, start_step=4, device=torch.device("cpu"))
    for expected in first[4:]:
        got = next(later)
        torch.testing.assert_close(got["sharp"], expected["sharp"], rtol=0, atol=0)
    for batch in first:
        assert batch["blurry"].shape == (4, 3, 20, 20) and batch["sharp"].shape == (4, 3, 3, 20, 20)
        # The same crop, turn, flip and channel order for y and every frame: y stays their rounded mean.
        assert (batch["blurry"] - batch["sharp"].mean(1)).abs().max() <= 0.5 / 255 + 1e-6
    assert not torch.equal(first[0]["sharp"], first[1]["sharp"])

    # --noise-share: the resident path too leaves the other samples' y exactly clean
    shared = BlurSequenceDataset(data / "train.h5", crop=20, augment=Augment(noise_share=0.5), T=3, seed=0)
    stream = ResidentBatches(shared, 8, seed=1, ctx=ctx, start_step=0, device=torch.device("cpu"))
    clean = ResidentBatches(dataset, 8, seed=1, ctx=ctx, start_step=0, device=torch.device("cpu"))
    changed = torch.cat([(next(stream)["blurry"] - next(clean)["blurry"]).flatten(1) for _ in range(4)])
    noisy = (changed != 0).float().mean(dim=1)
    assert ((noisy == 0) | (noisy > 0.9)).all() and 8 <= int((noisy > 0.9).sum()) <= 24

    common = ("--loader", "resident", "--val-every", "2", "--decay-steps", "4")
    whole = train.main(args(data, tmp_path / "whole", "--max-steps", "4", *common))
    train.main(args(data, tmp_path / "split", "--max-steps", "2", *common))
    resumed = train.main(["--out", str(tmp_path / "split"), "--resume", "--max-steps", "4", "--no-progress",
                          "--loader", "resident"])
    torch.testing.assert_close(params(resumed["model"]), params(whole["model"]), rtol=1e-5, atol=1e-6)


def test_messages_name_the_option(data, tmp_path, capsys):
    assert "--lr nan: must be a finite number" in _exit(args(data, tmp_path / "a", "--lr", "nan"), capsys)
    assert "--minutes -1" in _exit(args(data, tmp_path / "a", "--minutes", "-1"), capsys)
    assert "--T 4" in _exit(args(data, tmp_path / "a", "--T", "4"), capsys)
    small = tmp_path / "small"
    train.main(args(data, small, "--max-steps", "1", "--val-every", "1"))
    argv = args(data, tmp_path / "b", "--max-steps", "1", "--init", str(small / "checkpoint.pt"))
    argv[argv.index("tiny")] = "small"
    err = _exit(argv, capsys)
    assert err.count("\n") == 1 and "--init" in err and "--preset small" in err and "pass --preset tiny" in err


def test_init_takes_the_networks_that_fit(data, tmp_path, capsys):
    """φm of an earlier design under a G of a new one: φm is loaded, G starts fresh, and the log says so."""
    from b2v_rnn.checkpoint import save_checkpoint
    from b2v_rnn.models import build_model

    earlier = tmp_path / "earlier.pt"
    old = build_model("tiny")
    for p in old.parameters():
        p.data.normal_()
    config = {**old.config, "generator": {**old.config["generator"], "num_blocks": 2}}
    save_checkpoint({"model": old.state_dict(), "model_config": config, "T": 3}, earlier)
    result = train.main(args(data, tmp_path / "run", "--max-steps", "1", "--val-every", "1", "--lr", "1e-12",
                             "--init", str(earlier)))
    log = capsys.readouterr().out
    assert "initialised φm from" in log and "generator.num_blocks 2 (this run: 4)" in log
    torch.testing.assert_close(params(result["model"].middle), params(old.middle), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("option, expected", [((), (0.01, 1.0)), (("--noise-std", "0"), (0.0, 1.0)),
                                              (("--noise-share", "0.25"), (0.01, 0.25))])
def test_noise_std_reaches_the_training_set_only(data, tmp_path, monkeypatch, option, expected):
    """--noise-std sets the noise added to training y (default the paper's 1 %) and --noise-share
    the share of samples that get it (default all); validation has none."""
    from b2v_rnn.training import batches

    opened, real = {}, batches.open_dataset

    def spy(path, split, T, crop, augment, *rest, **options):
        dataset = real(path, split, T, crop, augment, *rest, **options)
        opened[split] = (dataset.augment.noise_std, dataset.augment.noise_share)
        return dataset

    monkeypatch.setattr(batches, "open_dataset", spy)
    train.main(args(data, tmp_path / "run", "--max-steps", "1", "--val-every", "1", *option))
    assert opened == {"train": expected, "val": (0.0, 1.0)}


def test_the_gates_come_with_the_init_checkpoint_unless_given(data, tmp_path):
    """The gates have no weights: --init brings the ones it was trained with, --still-gate,
    --middle-gate, --frame-gate and --sharp-gate replace them, and the run's checkpoint keeps what
    it trained with."""
    from b2v_rnn.checkpoint import load_checkpoint, save_checkpoint
    from b2v_rnn.models import build_model

    earlier = tmp_path / "earlier.pt"
    old = build_model("tiny")
    old.still_gate, old.middle_gate, old.frame_gate, old.sharp_gate = 0.02, 0.01, 0.003, 0.6
    save_checkpoint({"model": old.state_dict(), "model_config": old.config, "T": 3}, earlier)
    common = ("--max-steps", "1", "--val-every", "1", "--init", str(earlier))
    inherited = train.main(args(data, tmp_path / "a", *common))["model"]
    assert (inherited.still_gate, inherited.middle_gate, inherited.frame_gate, inherited.sharp_gate) == (0.02, 0.01, 0.003, 0.6)
    given = train.main(args(data, tmp_path / "b", *common, "--middle-gate", "0.005", "--still-gate", "0",
                            "--frame-gate", "0.004", "--sharp-gate", "0.5"))["model"]
    assert (given.still_gate, given.middle_gate, given.frame_gate, given.sharp_gate) == (0.0, 0.005, 0.004, 0.5)
    saved = load_checkpoint(tmp_path / "b" / "checkpoint.pt")["model_config"]
    assert (saved["still_gate"], saved["middle_gate"], saved["frame_gate"], saved["sharp_gate"]) == (0.0, 0.005, 0.004, 0.5)


def test_init_partial_loads_the_trunk_under_a_new_head(data, tmp_path, capsys):
    """--init-partial: φm saved with the paper's shuffle head, this run's φm has the smooth head:
    the trunk's tensors are loaded, the head starts fresh, and the log counts them. Without the
    flag the whole φm starts fresh."""
    from b2v_rnn.checkpoint import save_checkpoint
    from b2v_rnn.models import build_model

    earlier = tmp_path / "earlier.pt"
    old = build_model("tiny")
    config = {**old.config, "middle": {**old.config["middle"], "head": "shuffle"}}
    shuffle_middle = type(old.middle)(**config["middle"])
    old.middle = shuffle_middle
    for p in old.parameters():
        p.data.normal_()
    save_checkpoint({"model": old.state_dict(), "model_config": config, "T": 3}, earlier)
    common = ("--max-steps", "1", "--val-every", "1", "--lr", "1e-12", "--init", str(earlier))
    result = train.main(args(data, tmp_path / "partial", *common, "--init-partial"))
    log = capsys.readouterr().out
    assert "φm (in part)" in log and "tensors loaded, the rest fresh" in log
    new_middle = result["model"].middle
    torch.testing.assert_close(params(new_middle.refinement.blocks), params(old.middle.refinement.blocks),
                               rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(params(new_middle.feature_extraction), params(old.middle.feature_extraction),
                               rtol=1e-4, atol=1e-4)
    assert new_middle.refinement.output_layer.weight.abs().max() < 1e-6  # the new head: fresh, zero-initialised
    result = train.main(args(data, tmp_path / "whole", *common))
    assert "φm" not in capsys.readouterr().out.split("initialised ")[1].split(" from")[0]
    assert not torch.allclose(params(result["model"].middle.refinement.blocks),
                              params(old.middle.refinement.blocks), atol=1e-2)


def test_no_preset_on_a_cpu_is_the_tiny_one():
    parsed, resume = train.parse_args(["--device", "cpu"])
    assert parsed.preset == "tiny" and parsed.preset_auto and parsed.max_steps == 300 and resume is None
    assert train.parse_args(["--device", "cpu", "--preset", "small"]).config.preset == "small"


def test_generator_lr_and_no_discriminator_by_default(data, tmp_path, monkeypatch, capsys):
    seen = []
    real_step = step_module.train_step

    def spy(batch, net, disc, disc_module, vgg, optimizers, run_args, *rest, **kw):
        seen.append({name: opt.param_groups[0]["lr"] for name, opt in optimizers.items()})
        return real_step(batch, net, disc, disc_module, vgg, optimizers, run_args, *rest, **kw)

    monkeypatch.setattr(step_module, "train_step", spy)
    train.main(args(data, tmp_path / "run", "--max-steps", "2", "--val-every", "2", "--lr", "1e-4",
                    "--generator-lr", "1e-3", "--min-lr", "1"))
    assert seen[0] == {"middle": pytest.approx(1e-4), "generator": pytest.approx(1e-3),
                       "discriminator": pytest.approx(1e-4)}
    out = capsys.readouterr().out
    assert "+ 0.0 x hinge adversarial" in out and "disc 0.0000" in out  # D is off unless asked for


def test_user_errors_are_one_line(data, tmp_path, capsys):
    bad_vgg = tmp_path / "vgg.pth"
    bad_vgg.write_text("not a state dict")
    argv = args(data, tmp_path / "a", "--max-steps", "1")
    argv[argv.index("--perceptual-weight") + 1] = "0.01"
    err = _exit([*argv, "--vgg-weights", str(bad_vgg)], capsys)
    assert err.count("\n") == 1 and "--vgg-weights" in err and "vgg.pth" in err
    err = _exit(args(data, "/sys/kernel/b2v_run", "--max-steps", "1"), capsys)
    assert err.count("\n") == 1 and "--out /sys/kernel/b2v_run" in err and "cannot write" in err
    from b2v_rnn.data import H5Writer

    tiny_val = tmp_path / "val10.h5"
    with H5Writer(tiny_val, 3, source="test", progress=False) as writer:
        writer.append(np.zeros((3, 10, 10, 3), np.uint8))
    argv = args(data, tmp_path / "b", "--max-steps", "1")
    argv[argv.index("--val") + 1] = str(tiny_val)
    err = _exit(argv, capsys)
    assert err.count("\n") == 1 and "--val" in err and "10x10" in err


def test_stale_temporaries_of_a_killed_save_are_removed(data, tmp_path):
    out = tmp_path / "run"
    train.main(args(data, out, "--max-steps", "1", "--val-every", "1"))
    orphan = out / ".checkpoint.pt.4242.0123abcd.tmp.pt"  # what a kill during save_checkpoint leaves
    orphan.write_bytes(b"half a checkpoint")
    train.main(["--out", str(out), "--resume", "--max-steps", "2", "--no-progress"])
    assert not orphan.exists() and load_checkpoint(out / "checkpoint.pt")["step"] == 2


def test_save_minutes_saves_on_the_clock(data, tmp_path, monkeypatch):
    out = tmp_path / "clock"
    saved_steps = steps_saved_between_validations(  # 0.0001 min = 6 ms: due after every step
        monkeypatch, args(data, out, "--max-steps", "3", "--val-every", "100", "--save-minutes", "0.0001"))
    assert saved_steps == [1, 2]  # step 3 is the last: validated and saved there


def test_resume_without_amp_says_the_run_had_it(data, tmp_path, capsys):
    run = tmp_path / "run"
    train.main(args(data, run, "--max-steps", "1", "--amp"))
    capsys.readouterr()
    train.main(["--out", str(run), "--resume", "--max-steps", "2", "--no-progress"])
    assert "trained with --amp (bf16); this run continues in float32" in capsys.readouterr().err


def test_the_help_summary_is_the_command_docstring_s_first_line():
    from b2v_rnn.training import options

    assert train.__doc__.split("\n")[0] == options.DESCRIPTION
    assert options.build_parser().description == options.DESCRIPTION
