"""The config at the edge: keys that cannot work together are errors naming the key and a fix."""

import sys

import pytest

from progan_tf import config as config_lib
from progan_tf.networks import Architecture


def test_config_builds_the_typed_arguments_without_importing_tensorflow():
    import subprocess  # noqa: PLC0415

    build = (
        "import sys; from progan_tf import config as c; k = c.get_config(); "
        "k.conditional = False; c.architecture(k, resolution=32, channels=3, num_labels=0); "
        "c.trainer_options(k); c.schedule(k, resolution=32, num_replicas=1); "
        "print('tensorflow' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", build],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.stdout.strip() == "False", out.stderr


def test_the_typed_options_take_every_config_key_of_their_names_and_its_default():
    """Catches an option added to options.py without its config key, or the two defaults
    disagreeing (a library user and a command-line user would train different runs)."""
    import dataclasses  # noqa: PLC0415

    from progan_tf.options import StepOptions, TrainerOptions  # noqa: PLC0415

    c = config_lib.get_config()
    c.conditional = False
    built = {
        Architecture: config_lib.architecture(c, resolution=32, channels=3, num_labels=0),
        StepOptions: config_lib.trainer_options(c).step,
        TrainerOptions: config_lib.trainer_options(c),
    }
    differs = []
    for typed, value in built.items():
        for field in dataclasses.fields(typed):
            if field.default is dataclasses.MISSING:
                continue  # resolution, step: given, not defaulted
            if getattr(value, field.name) != field.default:
                differs.append(f"{typed.__name__}.{field.name}")
    assert differs == []
    assert built[TrainerOptions].tick_images == 10_000  # from tick_kimg


def test_zero_feature_maps_names_fmap_base_and_a_value_that_works():
    with pytest.raises(
        ValueError,
        match=r"--config.fmap_base=64 gives 0 feature maps at 1024x1024; "
        r"use --config.fmap_base=512",
    ):
        Architecture(resolution=1024, fmap_base=64)
    Architecture(resolution=1024, fmap_base=512)  # the suggested value builds


@pytest.mark.parametrize("group,batch,works", [(4, 6, 3), (8, 12, 6), (3, 8, 2)])
def test_mbstd_group_that_does_not_divide_the_per_replica_batch_is_named(group, batch, works):
    c = config_lib.get_config()
    c.mbstd_group_size, c.minibatch_preset, c.minibatch_default = group, "", batch
    schedule = config_lib.schedule(c, resolution=8, num_replicas=1)
    with pytest.raises(
        ValueError,
        match=rf"mbstd_group_size={group} does not divide the per-replica batch {batch}.*"
        rf"--config.mbstd_group_size={works}",
    ):
        config_lib.validate(c, schedule)
    c.mbstd_group_size = works
    config_lib.validate(c, schedule)


def test_group_larger_than_the_batch_uses_the_whole_batch():
    c = config_lib.get_config()
    c.mbstd_group_size, c.minibatch_preset, c.minibatch_default = 16, "paper", 16
    # 14, 6, 3: min(16, b) = b
    config_lib.validate(c, config_lib.schedule(c, resolution=1024, num_replicas=1))


def test_image_counts_below_one_image_are_refused():
    c = config_lib.get_config()
    c.tick_kimg = 0.0001
    with pytest.raises(ValueError, match="tick_kimg"):
        config_lib.validate(c, config_lib.schedule(c, resolution=8, num_replicas=1))


@pytest.mark.parametrize("balance", [-0.5, 1.5])
def test_class_balance_outside_0_to_1_is_refused(balance):
    c = config_lib.get_config()
    c.class_balance = balance
    with pytest.raises(ValueError, match=f"class_balance={balance}"):
        config_lib.validate(c, config_lib.schedule(c, resolution=8, num_replicas=1))
    c.class_balance = 1.0
    config_lib.validate(c, config_lib.schedule(c, resolution=8, num_replicas=1))


def test_a_penalty_interval_below_one_is_refused():
    c = config_lib.get_config()
    c.gp_interval = 0
    with pytest.raises(ValueError, match=r"--config.gp_interval=0; use 1 \(the penalty on every"):
        config_lib.validate(c, config_lib.schedule(c, resolution=8, num_replicas=1))
    c.gp_interval = 16
    config_lib.validate(c, config_lib.schedule(c, resolution=8, num_replicas=1))


def test_an_8gpu_preset_on_one_replica_warns_about_its_learning_rates():
    c = config_lib.get_config()
    c.minibatch_preset = "8gpu"
    one = config_lib.schedule(c, resolution=1024, num_replicas=1)
    (warning,) = config_lib.preset_warnings(c, one)
    assert (
        "written for 8 replicas and runs on 1" in warning
        and "1024x1024: batch 4 instead of 32, lr 0.003" in warning
    )
    assert (
        config_lib.preset_warnings(c, config_lib.schedule(c, resolution=1024, num_replicas=8)) == []
    )
    c.minibatch_preset = "1gpu"
    assert config_lib.preset_warnings(c, one) == []


def test_conditional_and_class_balance_follow_the_dataset_unless_set():
    c = config_lib.get_config()
    assert c.conditional is None  # unset: follows the dataset
    c.class_balance = 1.0
    config_lib.resolve_labels(c, 10, "data/emoji")
    assert c.conditional is True and c.class_balance == 1.0
    c = config_lib.get_config()
    c.class_balance = 1.0
    config_lib.resolve_labels(c, 0, "data/photos")
    assert c.conditional is False and c.class_balance == 0  # nothing to balance
    c = config_lib.get_config()
    c.conditional = False
    config_lib.resolve_labels(c, 10, "data/emoji")  # an explicit False on labelled data stays
    assert c.conditional is False
    c.conditional = True
    with pytest.raises(ValueError, match="conditional=True needs labels and data/photos has none"):
        config_lib.resolve_labels(c, 0, "data/photos")
