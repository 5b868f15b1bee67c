"""b2v_rnn.export: a slim, hash-checked weights file that predict can use as its default."""
import pytest
import torch

from b2v_rnn import checkpoint as ckpt
from b2v_rnn import export
from b2v_rnn.errors import UserError
from b2v_rnn.models import build_discriminator, build_model
from model_helpers import randomize_output_layers


def training_checkpoint(path):
    torch.manual_seed(0)
    model, disc = randomize_output_layers(build_model("tiny")), build_discriminator("tiny")
    ckpt.save_checkpoint({"model": model.state_dict(), "model_config": model.config, "T": 7, "step": 12,
                          "discriminator": disc.state_dict(), "optimizers": {}}, path)
    return model


def test_export_keeps_the_model_and_its_hash_verifies(tmp_path, monkeypatch):
    model = training_checkpoint(tmp_path / "best.pt")
    out = tmp_path / "weights" / "default.pt"
    out.parent.mkdir()
    export.main([str(tmp_path / "best.pt"), "--out", str(out)])
    state = ckpt.load_checkpoint(out)
    assert "discriminator" not in state and "optimizers" not in state and state["step"] == 12
    monkeypatch.setattr(ckpt, "DEFAULT_WEIGHTS", out)
    loaded, _ = ckpt.load_model(ckpt.default_checkpoint())
    y = torch.rand(1, 3, 20, 20)
    with torch.no_grad():
        assert torch.equal(loaded.extract(y, 5), model.eval().extract(y, 5))


def test_export_refuses_to_overwrite_and_rejects_foreign_files(tmp_path):
    training_checkpoint(tmp_path / "best.pt")
    out = tmp_path / "default.pt"
    out.write_bytes(b"earlier")
    with pytest.raises(UserError, match="--overwrite"):
        export.main([str(tmp_path / "best.pt"), "--out", str(out)])
    assert out.read_bytes() == b"earlier"
    (tmp_path / "foreign.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="foreign.pt"):
        export.main([str(tmp_path / "foreign.pt"), "--out", str(tmp_path / "new.pt")])
    assert not (tmp_path / "new.pt").exists()


def test_export_creates_the_folder_of_out_and_a_damaged_export_is_refused(tmp_path):
    training_checkpoint(tmp_path / "best.pt")
    out = tmp_path / "new" / "folder" / "w.pt"
    export.main([str(tmp_path / "best.pt"), "--out", str(out)])
    assert ckpt.load_checkpoint(out)["step"] == 12
    data = bytearray(out.read_bytes())
    data[-100] ^= 0xFF  # one byte flipped after export: its .sha256 no longer matches
    out.write_bytes(bytes(data))
    with pytest.raises(ckpt.UserError, match="does not match"):
        ckpt.load_checkpoint(out)


def test_export_sets_the_gates_in_the_written_config(tmp_path):
    """The gates have no weights: --middle-gate, --still-gate, --frame-gate and --sharp-gate set
    them in the exported config, and one not given stays the checkpoint's."""
    model = build_model("tiny")
    model.still_gate = 0.02
    source = tmp_path / "c.pt"
    ckpt.save_checkpoint({"model": model.state_dict(), "model_config": model.config, "T": 3}, source)
    export.main([str(source), "--out", str(tmp_path / "w.pt"), "--middle-gate", "0.008", "--frame-gate", "0.004",
                 "--sharp-gate", "0.5"])
    loaded, _ = ckpt.load_model(tmp_path / "w.pt")
    assert (loaded.middle_gate, loaded.still_gate, loaded.frame_gate, loaded.sharp_gate) == (0.008, 0.02, 0.004, 0.5)
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), model.state_dict().values()))


def test_generator_from_takes_g_of_another_checkpoint_and_refuses_another_architecture(tmp_path):
    """φm of one run with G of another: the exported model is exactly that pair, the file says
    where G came from, and a G of a different architecture is refused by name."""
    torch.manual_seed(1)
    first, second = (randomize_output_layers(build_model("tiny")) for _ in range(2))
    for model, name in ((first, "a.pt"), (second, "b.pt")):
        ckpt.save_checkpoint({"model": model.state_dict(), "model_config": model.config, "T": 7, "step": 5},
                             tmp_path / name)
    a, b = str(tmp_path / "a.pt"), str(tmp_path / "b.pt")
    export.main([a, "--generator-from", b, "--out", str(tmp_path / "w.pt")])
    loaded, state = ckpt.load_model(tmp_path / "w.pt")
    for network, source in (("middle", first), ("generator", second)):
        for key, value in getattr(loaded, network).state_dict().items():
            assert torch.equal(value, getattr(source, network).state_dict()[key]), (network, key)
    assert not all(torch.equal(a, b) for a, b in zip(first.generator.parameters(), second.generator.parameters()))
    assert state["generator_from"]["path"] == b and state["generator_from"]["step"] == 5
    assert state["generator_from"]["sha256"] == ckpt.sha256_of(tmp_path / "b.pt")

    other = build_model("small")
    ckpt.save_checkpoint({"model": other.state_dict(), "model_config": other.config, "T": 7}, tmp_path / "c.pt")
    with pytest.raises(UserError, match="its G differs from .*a.pt's in .*num_blocks"):
        export.main([a, "--generator-from", str(tmp_path / "c.pt"), "--out", str(tmp_path / "x.pt")])
    with pytest.raises(UserError, match="--generator-from: .*no such checkpoint"):
        export.main([a, "--generator-from", str(tmp_path / "none.pt"), "--out", str(tmp_path / "x.pt")])
    assert not (tmp_path / "x.pt").exists()
