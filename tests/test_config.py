import pytest

from scsam_lite import config as C
from scsam_lite.errors import ConfigError


def test_preset_then_fields_then_overrides():
    cfg = C.build_config(
        "quick", {"train.lr": "0.02", "seed": "3"}, **{"train.method": "unet", "data.labeled": 44}
    )
    assert cfg.preset == "quick"
    assert cfg.train.iterations == C.PRESETS["quick"]["train.iterations"]
    assert cfg.train.lr == 0.02 and cfg.train.seed == 3 and cfg.data.labeled == 44


def test_types_are_converted_and_none_accepted():
    cfg = C.build_config(
        "quick", {"data.resolution": "none", "train.deterministic": "yes", "data.batch_labeled": "4"}
    )
    assert cfg.train.deterministic is True and cfg.data.batch_labeled == 4
    # "none" means the dataset's own resolution, made explicit so the saved and hashed config is what runs
    assert cfg.data.resolution == 64
    assert C.build_config("quick", {"data.dataset": "kvasir-seg"}).data.resolution == 256
    with pytest.raises(ConfigError, match="not a valid int"):
        C.build_config("quick", {"train.iterations": "many"})


def test_unknown_and_ambiguous_keys_name_the_fix():
    with pytest.raises(ConfigError) as e:
        C.build_config("quick", {"train.lrr": "1"})
    assert "train.lr" in str(e.value)
    with pytest.raises(ConfigError, match="did you mean 'quick'"):
        C.build_config("quik")
    with pytest.raises(ConfigError, match="key=value"):
        C.parse_overrides(["train.lr"])


def test_bad_values_are_rejected():
    with pytest.raises(ConfigError):
        C.build_config("quick", {"data.labeled": "0"})
    with pytest.raises(ConfigError):
        C.build_config("quick", {"data.labeled": "4.5"})
    with pytest.raises(ConfigError):
        C.build_config("quick", {"train.lr_schedule": "cosine"})


def test_hash_ignores_paths_and_device_but_not_science():
    a = C.build_config("quick")
    b = C.build_config("quick", {"data.data_root": "/elsewhere", "train.device": "cpu"})
    c = C.build_config("quick", {"train.lr": "0.5"})
    assert C.config_hash(a) == C.config_hash(b) != C.config_hash(c)
    assert C.diff(a, c) == {"train.lr": (a.train.lr, 0.5)}


def test_round_trip_through_dict():
    cfg = C.build_config("paper", {"train.seed": "7"})
    again = C.config_from_dict(cfg.to_dict())
    assert again == cfg
